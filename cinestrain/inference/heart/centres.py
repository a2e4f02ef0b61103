"""Where the heart is in a cine stack, before any model runs.

- :func:`normalise_intensity`: one scale per series (robust high percentile -> 1).
- :func:`find_heart_centres`: the heart from the temporal variance of the cine (the heart
  is what moves), one in-plane centre per slice.
- :func:`motion_centres`: the centres the motion model's grid is placed on.
- :func:`otsu_threshold`: the blood/tissue threshold the ED phase and the myocardium
  finder share.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def normalise_intensity(pixels: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a whole series so that its ``percentile`` intensity is 1 (float32)."""
    scale = float(np.percentile(pixels, percentile))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(pixels.max()) or 1.0
    return (pixels / scale).astype(np.float32)


def find_heart_centres(
    pixels: np.ndarray, pixel_spacing: tuple[float, float], search_mm: float = 40.0
) -> np.ndarray:
    """In-plane heart centre of every slice, ``(S, 2)`` in pixels (row, column).

    The temporal standard deviation of the cine, smoothed over ~10 mm, peaks on the moving
    LV blood-pool border. The stack's centre is the peak of the sum over slices; each
    slice's centre is its own peak within ``search_mm`` of that, then smoothed across
    slices (the LV axis is straight and oblique).

    Parameters
    ----------
    pixels
        ``(S, T, H, W)`` cine.
    pixel_spacing
        (row, column) spacing in mm.
    """
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (S, T, H, W), got shape {pixels.shape}")
    sigma = (10.0 / pixel_spacing[0], 10.0 / pixel_spacing[1])
    std = pixels.std(axis=1)
    smooth = np.stack([ndimage.gaussian_filter(s, sigma) for s in std])
    # Penalise the image border, where wrap-around and coil artefacts live.
    s, h, w = smooth.shape
    rows = np.hanning(h)[:, None] ** 0.5
    cols = np.hanning(w)[None, :] ** 0.5
    total = smooth.sum(axis=0) * rows * cols
    centre = np.array(np.unravel_index(np.argmax(total), total.shape), dtype=float)
    rr, cc = np.mgrid[0:h, 0:w]
    dist_mm = np.hypot((rr - centre[0]) * pixel_spacing[0], (cc - centre[1]) * pixel_spacing[1])
    window = dist_mm <= search_mm
    centres = np.empty((s, 2))
    for k in range(s):
        weights = np.where(window, smooth[k], 0.0)
        weights = np.clip(weights - np.percentile(weights[window], 75), 0, None)
        if weights.sum() <= 0:
            centres[k] = centre
        else:
            centres[k] = [
                (weights * rr).sum() / weights.sum(),
                (weights * cc).sum() / weights.sum(),
            ]
    if s >= 3:
        centres = ndimage.median_filter(centres, size=(3, 1), mode="nearest")
    return centres


def motion_centres(coarse: np.ndarray, lv_centres: np.ndarray | None) -> np.ndarray:
    """Centres of the model grid: the LV centre where the slice has one, else the nearest
    slice's, else the coarse heart centre.

    The temporal-variance centre (:func:`find_heart_centres`) can sit between the LV and
    the RV; the LV blood-pool centroid is what the model was trained around.

    Parameters
    ----------
    coarse
        ``(S, 2)`` heart centres, pixels.
    lv_centres
        ``(S, 2)`` LV centres, NaN for slices without an LV ring (or ``None``).
    """
    if lv_centres is None:
        return coarse
    lv_centres = np.asarray(lv_centres, dtype=float)
    valid = np.flatnonzero(np.all(np.isfinite(lv_centres), axis=1))
    if valid.size == 0:
        return coarse
    nearest = valid[np.abs(np.arange(len(lv_centres))[:, None] - valid[None, :]).argmin(axis=1)]
    return lv_centres[nearest]


def otsu_threshold(values: np.ndarray, bins: int = 128) -> float:
    """Otsu's threshold of a 1-D sample."""
    hist, edges = np.histogram(values, bins=bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    weight = hist.cumsum()
    total = weight[-1]
    mean = (hist * centres).cumsum()
    between = (mean[-1] * weight / total - mean) ** 2 / np.maximum(weight * (total - weight), 1)
    return float(centres[np.argmax(between)])
