"""Which phase is end-diastole: the one with the largest LV blood pool.

Real exports do not always start at the R-wave (the shared Sunnybrook studies have ED at
phase 18 of 20), so ED is found from the images: in a bSSFP cine the blood is bright, and
the LV blood pool is the bright connected region around the LV centre (found by
:func:`inference.heart.myocardium.segment_myocardium` on any phase: the LV hardly moves as a
whole). Its area, summed over the middle slices of the LV, is largest at end-diastole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from cinestrain.inference.heart.centres import motion_centres, normalise_intensity, otsu_threshold
from cinestrain.inference.heart.myocardium import AutomaticMyocardium, MyocardiumError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseEstimate:
    """The ED phase found, with the evidence.

    Attributes
    ----------
    ed_phase
        Index of the phase with the largest blood pool (acquisition order).
    blood_pool_mm2
        ``(T,)`` LV blood-pool area summed over the slices used, mm^2.
    reliable
        False when the areas hardly vary (no clear cycle): callers fall back to phase 0.
    """

    ed_phase: int
    blood_pool_mm2: np.ndarray
    reliable: bool


def blood_pool_area(
    frame: np.ndarray,
    centre: tuple[float, float],
    pixel_spacing: tuple[float, float],
    threshold: float,
    radius_mm: float = 40.0,
) -> float:
    """Area (mm^2) of the bright region connected to the pixel nearest ``centre``.

    Only pixels within ``radius_mm`` of the centre count, so that a bright region that
    leaks into the RV or the fat does not swamp the measure.
    """
    h, w = frame.shape
    rr, cc = np.mgrid[0:h, 0:w]
    near = np.hypot((rr - centre[0]) * pixel_spacing[0], (cc - centre[1]) * pixel_spacing[1])
    bright = (frame > threshold) & (near <= radius_mm)
    labels, _ = ndimage.label(ndimage.binary_opening(bright))
    # The label at (or brightest near) the centre is the LV blood pool.
    r0, c0 = int(round(centre[0])), int(round(centre[1]))
    r0, c0 = min(max(r0, 0), h - 1), min(max(c0, 0), w - 1)
    label = labels[r0, c0]
    if label == 0:
        window = labels[max(r0 - 3, 0) : r0 + 4, max(c0 - 3, 0) : c0 + 4]
        values = window[window > 0]
        if values.size == 0:
            return 0.0
        label = np.bincount(values).argmax()
    return float((labels == label).sum() * pixel_spacing[0] * pixel_spacing[1])


def detect_ed_phase(
    pixels: np.ndarray,
    pixel_spacing: tuple[float, float],
    centres: np.ndarray,
    lv_slices: Sequence[int] | None = None,
) -> PhaseEstimate:
    """The phase with the largest LV blood pool over the middle half of the LV's slices.

    Parameters
    ----------
    pixels
        ``(S, T, H, W)`` intensity-normalised cine.
    pixel_spacing
        (row, column) mm.
    centres
        ``(S, 2)`` LV centres in pixels: the LV blood-pool centroids where known
        (:class:`inference.heart.myocardium.MyocardiumMasks`); the temporal-variance centre
        (:func:`inference.heart.centres.find_heart_centres`) can sit on the RV.
    lv_slices
        The slices that cut the LV (default: all); the middle half of them is used, away
        from the valve plane and the apex, where the blood pool is well bounded.
    """
    s, t = pixels.shape[:2]
    chosen = np.arange(s) if lv_slices is None or not len(lv_slices) else np.sort(lv_slices)
    n = len(chosen)
    areas = np.zeros(t)
    for k in chosen[n // 4 : max(n // 4 + 1, n - n // 4)]:
        # Blood/myocardium threshold from this slice's intensities near the heart (Otsu).
        threshold = otsu_threshold(pixels[k].ravel())
        for p in range(t):
            areas[p] += blood_pool_area(pixels[k, p], tuple(centres[k]), pixel_spacing, threshold)
    ed = int(np.argmax(areas))
    spread = (areas.max() - areas.min()) / max(areas.max(), 1e-6)
    reliable = bool(areas.max() > 0 and spread > 0.1)
    log.info("ED phase %d (blood-pool area spread %.0f%%)", ed, 100 * spread)
    return PhaseEstimate(ed, areas, reliable)


def choose_ed_phase(
    pixels: np.ndarray, spacing: tuple[float, float], requested: Literal["auto"] | int,
    centres: np.ndarray, *, normalised: np.ndarray | None = None,
    segment: AutomaticMyocardium | None = None,
) -> tuple[int, str, list[str]]:
    """The ED phase, how it was chosen, and any warning.

    A fixed index wins; ``auto`` takes the phase with the largest LV blood pool, and
    falls back to phase 0 (the R-wave trigger) when the images give no clear answer. The
    blood pool is measured around the LV centres that the automatic segmentation finds on
    phase 0 (``centres``, from the temporal variance, can sit on the RV).

    Parameters
    ----------
    pixels
        ``[S, T, H, W]`` cine, phases in acquisition order.
    spacing
        (row, col) pixel spacing, mm.
    requested
        ``"auto"`` or a 0-based phase index.
    centres
        ``[S, 2]`` heart centres (:func:`inference.heart.centres.find_heart_centres`).
    normalised, segment
        The cine's :func:`normalise_intensity` and its :class:`AutomaticMyocardium`
        around ``centres``, reused when given.

    Returns
    -------
    tuple
        ``(ed_phase, source, warnings)``; source is ``"fixed"``, ``"largest-blood-pool"``
        or ``"fallback-first-phase"``.
    """
    t = pixels.shape[1]
    if requested != "auto":
        if not 0 <= int(requested) < t:
            raise ValueError(f"ed_phase {requested} is outside 0..{t - 1} for this cine")
        return int(requested), "fixed", []
    lv_slices = None
    try:
        lv = (segment or AutomaticMyocardium(pixels, spacing, centres))(0)
        centres, lv_slices = motion_centres(centres, lv.lv_centres), np.flatnonzero(lv.ring)
    except MyocardiumError as exc:
        log.info("no LV on phase 0 (%s); ED measured around the heart centre", exc)
    if normalised is None:
        normalised = normalise_intensity(pixels)
    estimate = detect_ed_phase(normalised, spacing, centres, lv_slices)
    if not estimate.reliable:
        return (
            0,
            "fallback-first-phase",
            ["ED could not be told from the blood-pool area; phase 0 (R-wave) assumed"],
        )
    return estimate.ed_phase, "largest-blood-pool", []
