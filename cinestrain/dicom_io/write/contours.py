"""Outlines of 2D masks as closed polylines, for SR image regions (TID 1410 / 1411 SCOORD).

A region of a mask (one connected component) becomes one closed polyline in DICOM 2D image
coordinates: (column, row) pairs where (0, 0) is the top left corner of the top left pixel,
so the centre of pixel (r, c) is (c + 0.5, r + 0.5) (PS3.3 C.18.6.1.2). The outline runs
through the edges between the region's pixels and the others (a marching-squares contour at
level 0.5, from contourpy, which matplotlib already brings).

A SCOORD POLYLINE cannot have holes, yet the myocardium of a short-axis slice is a ring: a
region's holes are joined to its outer outline by a zero-width cut (a "keyhole"), so that the
one polyline still encloses exactly the region.
"""

from __future__ import annotations

import contourpy
import numpy as np
from scipy import ndimage


def _signed_area(loop: np.ndarray) -> float:
    x, y = loop[:, 0], loop[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _loops(component: np.ndarray) -> list[np.ndarray]:
    """Closed contour loops (without the repeated last point) of one component, in (column,
    row) pixel-corner coordinates."""
    padded = np.pad(component.astype(float), 1)
    rows, cols = padded.shape
    # padded pixel (r, c) is pixel (r - 1, c - 1): its centre is (c - 0.5, r - 0.5)
    x = np.arange(cols, dtype=float) - 0.5
    y = np.arange(rows, dtype=float) - 0.5
    gen = contourpy.contour_generator(x, y, padded, line_type=contourpy.LineType.Separate)
    loops = []
    for line in gen.lines(0.5):
        line = np.asarray(line, float)
        if len(line) > 1 and np.allclose(line[0], line[-1]):
            line = line[:-1]
        if len(line) >= 3:
            loops.append(line)
    return loops


def _join_hole(outer: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """One loop: ``outer`` with ``hole`` spliced in at their closest points (a keyhole)."""
    # the hole runs the other way round, so that the region stays on one side of the path
    if np.sign(_signed_area(hole)) == np.sign(_signed_area(outer)):
        hole = hole[::-1]
    distance = np.linalg.norm(outer[:, None, :] - hole[None, :, :], axis=2)
    i, j = np.unravel_index(int(np.argmin(distance)), distance.shape)
    spliced = np.concatenate([hole[j:], hole[:j + 1]])
    return np.concatenate([outer[:i + 1], spliced, outer[i:]])


def mask_outlines(mask: np.ndarray, min_pixels: int = 1) -> list[np.ndarray]:
    """Closed outlines of the regions of a 2D mask.

    Parameters
    ----------
    mask : numpy.ndarray
        ``(rows, columns)`` bool.
    min_pixels : int
        Regions of fewer pixels are left out.

    Returns
    -------
    list of numpy.ndarray
        One ``(n, 2)`` float array per region, largest region first: (column, row)
        points in DICOM 2D image coordinates, the first point repeated at the end
        (closed), holes joined by a zero-width cut.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2D, got shape {mask.shape}")
    labels, n = ndimage.label(mask)
    sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, n + 1)) if n else []
    outlines = []
    for k in np.argsort(sizes)[::-1]:
        if sizes[k] < min_pixels:
            continue
        loops = _loops(labels == k + 1)
        if not loops:
            continue
        loops.sort(key=lambda loop: abs(_signed_area(loop)), reverse=True)
        outline = loops[0]
        for hole in loops[1:]:
            outline = _join_hole(outline, hole)
        outlines.append(np.concatenate([outline, outline[:1]]))
    return outlines
