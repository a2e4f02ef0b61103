"""The AHA 16-segment model on short-axis slices (DESIGN.md § Strain).

Angles are measured about the LV centre in millimetres on the image grid:
``theta = atan2(d_row_mm, d_col_mm)``, so a positive angle turns from the +column
direction towards the +row direction (clockwise on a display with row 0 at the top).

The handedness of the image (does "through the septum" mean increasing or decreasing
``theta``?) is not assumed: it is read from the two RV insertion points. The septum lies
on the short arc between them (the insertion points are 90-160 degrees apart seen from the
LV centre in any real heart), so the direction of travel from the anterior insertion
point towards the inferior one along that arc is "through the septum". Which insertion
point is the anterior one is decided by the in-plane direction of patient anterior
(:func:`order_insertion_points`).

Segments, going from the anterior insertion point through the septum:

- basal: 2 anteroseptal, 3 inferoseptal, 4 inferior, 5 inferolateral, 6 anterolateral,
  1 anterior, 60 degrees each; mid: the same + 6 (8, 9, 10, 11, 12, 7);
- apical: 90 degrees each, 14 septal centred on the mid-septum (halfway between the
  insertion points), then 15 inferior, 16 lateral, 13 anterior.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVELS = ("basal", "mid", "apical")

SEGMENT_NAMES = {
    1: "basal anterior", 2: "basal anteroseptal", 3: "basal inferoseptal",
    4: "basal inferior", 5: "basal inferolateral", 6: "basal anterolateral",
    7: "mid anterior", 8: "mid anteroseptal", 9: "mid inferoseptal",
    10: "mid inferior", 11: "mid inferolateral", 12: "mid anterolateral",
    13: "apical anterior", 14: "apical septal", 15: "apical inferior", 16: "apical lateral",
}

#: segments of each level, in the order met going from the anterior insertion point
#: through the septum
_RING = {"basal": (2, 3, 4, 5, 6, 1), "mid": (8, 9, 10, 11, 12, 7)}
_APICAL_RING = (14, 15, 16, 13)


def slice_levels(
    n_slices: int, covered: Sequence[bool] | None = None
) -> list[str | None]:
    """Level of each slice: thirds of the slices that cover the LV, base to apex.

    Parameters
    ----------
    n_slices : int
        S, slices ordered base to apex.
    covered : sequence of bool, optional
        ``[S]`` whether each slice cuts the LV (default: all). Uncovered slices get
        ``None``. When the count is not a multiple of three, the basal then the mid third
        take the extra slice.

    Returns
    -------
    list of str or None
        ``"basal"``, ``"mid"``, ``"apical"`` or ``None`` per slice.
    """
    if n_slices < 0:
        raise ValueError(f"n_slices must be >= 0, got {n_slices}")
    covered = [True] * n_slices if covered is None else [bool(c) for c in covered]
    if len(covered) != n_slices:
        raise ValueError(f"covered has {len(covered)} entries for {n_slices} slices")
    indices = [i for i, c in enumerate(covered) if c]
    out: list[str | None] = [None] * n_slices
    for level, part in zip(LEVELS, np.array_split(np.array(indices, dtype=int), 3), strict=True):
        for i in part:
            out[int(i)] = level
    return out


def _angle(point: np.ndarray, centre: np.ndarray, spacing: tuple[float, float]) -> float:
    d = (np.asarray(point, dtype=float) - np.asarray(centre, dtype=float)) * spacing
    if not np.any(d):
        raise ValueError(f"point {tuple(point)} coincides with the LV centre")
    return float(np.arctan2(d[0], d[1]))


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def order_insertion_points(
    lv_centre: np.ndarray,
    point_a: np.ndarray,
    point_b: np.ndarray,
    anterior_direction: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Tell the anterior RV insertion point from the inferior one.

    Parameters
    ----------
    lv_centre, point_a, point_b : numpy.ndarray
        ``[2]`` (row, col) pixels.
    anterior_direction : numpy.ndarray
        ``[2]`` in-plane direction of patient anterior, (row, col) components in mm.
    spacing : tuple of float
        (row, col) pixel spacing, mm.

    Returns
    -------
    tuple of numpy.ndarray
        ``(anterior, inferior)``: the point further towards patient anterior first.
    """
    c = np.asarray(lv_centre, dtype=float)
    direction = np.asarray(anterior_direction, dtype=float)
    sp = np.asarray(spacing, dtype=float)
    a, b = np.asarray(point_a, dtype=float), np.asarray(point_b, dtype=float)
    if np.dot((a - c) * sp, direction) >= np.dot((b - c) * sp, direction):
        return a, b
    return b, a


def segment_map(
    shape: tuple[int, int],
    lv_centre: np.ndarray,
    anterior_ip: np.ndarray,
    inferior_ip: np.ndarray,
    level: str | None,
    *,
    spacing: tuple[float, float] = (1.0, 1.0),
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """AHA segment label (1-16, 0 = none) of every pixel of one slice.

    Parameters
    ----------
    shape : tuple of int
        (H, W).
    lv_centre : numpy.ndarray
        ``[2]`` LV centre (ED blood-pool centroid), (row, col) pixels.
    anterior_ip, inferior_ip : numpy.ndarray
        ``[2]`` anterior and inferior RV insertion points, (row, col) pixels.
    level : str or None
        ``"basal"``, ``"mid"``, ``"apical"``; ``None`` gives an all-zero map.
    spacing : tuple of float
        (row, col) pixel spacing, mm (angles are measured in mm).
    mask : numpy.ndarray, optional
        ``[H, W]`` bool; pixels outside it are 0 (usually the ED myocardium).

    Returns
    -------
    numpy.ndarray
        ``[H, W]`` uint8 segment numbers.
    """
    if level is not None and level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS} or None, got {level!r}")
    if mask is not None and tuple(mask.shape) != tuple(shape):
        raise ValueError(f"mask shape {mask.shape} does not match {shape}")
    out = np.zeros(shape, dtype=np.uint8)
    if level is None:
        return out
    sp = (float(spacing[0]), float(spacing[1]))
    c = np.asarray(lv_centre, dtype=float)
    theta_ant = _angle(anterior_ip, c, sp)
    arc = float(_wrap(_angle(inferior_ip, c, sp) - theta_ant))
    if arc == 0.0:
        raise ValueError("the two insertion points lie on the same ray from the LV centre")
    sense = np.sign(arc)  # direction of travel through the septum
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    theta = np.arctan2((rows - c[0]) * sp[0], (cols - c[1]) * sp[1])
    travelled = np.mod(sense * (theta - theta_ant), 2.0 * np.pi)
    if level == "apical":
        mid_septum = abs(arc) / 2.0
        k = np.floor(np.mod(travelled - mid_septum + np.pi / 4, 2.0 * np.pi) / (np.pi / 2))
        ring = np.array(_APICAL_RING, dtype=np.uint8)
    else:
        k = np.floor(travelled / (np.pi / 3))
        ring = np.array(_RING[level], dtype=np.uint8)
    out = ring[np.clip(k.astype(int), 0, len(ring) - 1)]
    if mask is not None:
        out = np.where(mask, out, 0).astype(np.uint8)
    return out


def aha_label_map(
    lv_centres: np.ndarray,
    anterior_ips: np.ndarray,
    inferior_ips: np.ndarray,
    levels: Sequence[str | None],
    mask: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """AHA labels of a whole stack.

    Parameters
    ----------
    lv_centres, anterior_ips, inferior_ips : numpy.ndarray
        ``[S, 2]`` (row, col) pixels.
    levels : sequence of str or None
        ``[S]`` (see :func:`slice_levels`).
    mask : numpy.ndarray
        ``[S, H, W]`` bool ED myocardium.
    spacing : tuple of float
        (row, col) mm.

    Returns
    -------
    numpy.ndarray
        ``[S, H, W]`` uint8.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be [S, H, W], got shape {mask.shape}")
    n = mask.shape[0]
    for name, arr in (("lv_centres", lv_centres), ("anterior_ips", anterior_ips),
                      ("inferior_ips", inferior_ips)):
        if np.shape(arr) != (n, 2):
            raise ValueError(f"{name} must be [{n}, 2], got {np.shape(arr)}")
    if len(levels) != n:
        raise ValueError(f"levels has {len(levels)} entries for {n} slices")
    return np.stack([
        segment_map(mask.shape[1:], lv_centres[s], anterior_ips[s], inferior_ips[s],
                    levels[s], spacing=spacing, mask=mask[s])
        for s in range(n)
    ])
