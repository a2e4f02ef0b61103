"""From displacement and ED masks to what a cardiologist reads (DESIGN.md § Strain,
§ report.json): AHA segments, strain curves and peaks, LV function, warnings.

:func:`analyze_motion` takes the displacement ``u`` (from the model, a baseline or a
phantom's truth) and the ED masks (:mod:`inference.heart.myocardium`, from a SEG or found
automatically), so the analysis is testable apart from the model. :meth:`LVAnalysis.report`
and :func:`failed_report` give the ``report.json`` document.

Slices keep the stack's order (ascending position along the slice normal); which end is
the base is decided from the geometry (the slice normal against the typical LV long axis)
or, when that is not decisive, from anatomy (the ED LV cavity is larger towards the base),
and recorded in ``slice_order``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cinestrain.inference.heart.aha import (
    SEGMENT_NAMES,
    aha_label_map,
    order_insertion_points,
    slice_levels,
)
from cinestrain.inference.heart.lv_function import LVFunction, lv_function, slice_spacing
from cinestrain.inference.heart.myocardium import MyocardiumError, MyocardiumMasks
from cinestrain.inference.heart.strain import StrainResult, compute_strain

log = logging.getLogger(__name__)

#: typical LV long axis, base to apex, in patient coordinates (LPS: left, anterior,
#: inferior), as in :mod:`dicom_io.geometry`
TYPICAL_LV_LONG_AXIS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)
#: patient anterior (LPS)
PATIENT_ANTERIOR = np.array([0.0, -1.0, 0.0])
#: the slice normal decides base and apex when within this angle of the typical axis
GEOMETRY_DECIDES_DEG = 45.0

#: what the strain values mean, written into report.json
STRAIN_CONVENTION = (
    "Lagrangian engineering strain eps_n = |F n| - 1 in percent, F = I + grad u on the ED "
    "grid (mm), n the radial unit vector from the slice's ED LV blood-pool centroid or the "
    "circumferential unit vector perpendicular to it. Curves are means over the ED "
    "myocardium pixels of the region at every phase (acquisition order). Peak radial = "
    "maximum, peak circumferential = minimum over phases; time to peak = trigger time of "
    "that phase (ms)."
)

_CURVE_KEYS = ("radial_strain_pct", "circumferential_strain_pct", "peak_radial_strain_pct",
               "peak_circumferential_strain_pct", "time_to_peak_radial_ms",
               "time_to_peak_circumferential_ms")


@dataclass(frozen=True)
class SliceOrder:
    """Which end of the stack is the base.

    Attributes
    ----------
    base_first : bool
        True when slice 0 (lowest position along the normal) is the most basal.
    source : str
        ``"geometry"``, ``"anatomy"`` or ``"assumed"``.
    """

    base_first: bool
    source: str

    def to_dict(self) -> dict[str, str]:
        """The ``slice_order`` entry of ``report.json``."""
        return {"slice_0_is": "base" if self.base_first else "apex", "decided_by": self.source}


@dataclass(frozen=True)
class LVAnalysis:
    """Strain and function of one stack.

    Attributes
    ----------
    masks : MyocardiumMasks
        The ED masks used.
    levels : list of str or None
        ``[S]`` AHA level per slice (None: left out).
    aha_labels : numpy.ndarray
        ``[S, H, W]`` uint8 AHA segment per ED myocardium pixel.
    strain : StrainResult
    function : LVFunction or None
        None when volumes cannot be computed.
    slice_order : SliceOrder
    warnings : tuple of str
    """

    masks: MyocardiumMasks
    levels: list[str | None]
    aha_labels: np.ndarray
    strain: StrainResult
    function: LVFunction | None
    slice_order: SliceOrder
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def es_phase(self) -> int | None:
        """Phase of the smallest carried cavity volume."""
        return None if self.function is None else self.function.es_phase

    def report(
        self,
        *,
        series_instance_uid: str,
        model: dict[str, object],
        trigger_times: np.ndarray,
        slice_positions: np.ndarray,
        ed_phase_source: str,
        warnings: list[str] | None = None,
    ) -> dict[str, object]:
        """The ``report.json`` document (DESIGN.md § report.json, plus ``function``).

        Parameters
        ----------
        series_instance_uid : str
        model : dict
            ``{"name", "version", "pairing", "temporal"}``.
        trigger_times : numpy.ndarray
            ``[T]`` ms.
        slice_positions : numpy.ndarray
            ``[S]`` mm along the slice normal.
        ed_phase_source : str
            How ED was chosen.
        warnings : list of str, optional
            Earlier warnings (reading, ED detection), listed first.
        """
        doc = _header(series_instance_uid, model, trigger_times, slice_positions,
                      self.strain.ed_phase, ed_phase_source)
        strain = self.strain.to_dict()
        segments = dict.fromkeys(str(k) for k in range(1, 17))
        for key, value in strain["segments"].items():
            segments[key] = value
        for key in segments:
            if segments[key] is None:
                segments[key] = _null_curves()
            segments[key]["name"] = SEGMENT_NAMES[int(key)]
        slices = []
        for s, curves in enumerate(strain["slices"]):
            entry = {"position_mm": round(float(slice_positions[s]), 3), "level": self.levels[s]}
            entry.update(curves if curves is not None else _null_curves())
            slices.append(entry)
        doc.update({
            "es_phase": self.es_phase,
            "global": strain["global"] or _null_curves(),
            "segments": segments,
            "slices": slices,
            "function": self.function.to_dict() if self.function else None,
            "myocardium_source": self.masks.source,
            "slice_order": self.slice_order.to_dict(),
            "strain_convention": STRAIN_CONVENTION,
            "warnings": [*(warnings or []), *self.warnings],
        })
        return doc


def _null_curves() -> dict[str, object]:
    return {**dict.fromkeys(_CURVE_KEYS), "n_pixels": 0}


def _header(series_instance_uid: str, model: dict[str, object], trigger_times: np.ndarray,
            slice_positions: np.ndarray, ed_phase: int | None, ed_phase_source: str | None
            ) -> dict[str, object]:
    return {
        "series_instance_uid": series_instance_uid,
        "model": model,
        "trigger_times_ms": [round(float(v), 3) for v in np.ravel(trigger_times)],
        "slice_positions_mm": [round(float(v), 3) for v in np.ravel(slice_positions)],
        "ed_phase": ed_phase,
        "ed_phase_source": ed_phase_source,
    }


def failed_report(
    *,
    series_instance_uid: str,
    model: dict[str, object],
    trigger_times: np.ndarray,
    slice_positions: np.ndarray,
    ed_phase: int | None,
    ed_phase_source: str | None,
    warnings: list[str],
) -> dict[str, object]:
    """A ``report.json`` with every value null and the reason in ``warnings``.

    For a stack that cannot be analysed (not short axis, no LV found): the document keeps
    its keys so that readers do not break, and invents no number.
    """
    doc = _header(series_instance_uid, model, trigger_times, slice_positions, ed_phase,
                  ed_phase_source)
    doc.update({
        "es_phase": None,
        "global": _null_curves(),
        "segments": {str(k): {**_null_curves(), "name": SEGMENT_NAMES[k]} for k in range(1, 17)},
        "slices": [{"position_mm": round(float(p), 3), "level": None, **_null_curves()}
                   for p in np.ravel(slice_positions)],
        "function": None,
        "myocardium_source": None,
        "slice_order": None,
        "strain_convention": STRAIN_CONVENTION,
        "warnings": list(warnings),
    })
    return doc


def anterior_direction(orientation: np.ndarray) -> np.ndarray:
    """In-plane direction of patient anterior, ``[2]`` (row, col) components (mm space).

    Parameters
    ----------
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient (row cosines, column cosines).
    """
    o = np.asarray(orientation, dtype=float)
    return np.array([np.dot(PATIENT_ANTERIOR, o[3:]), np.dot(PATIENT_ANTERIOR, o[:3])])


def decide_slice_order(masks: MyocardiumMasks, orientation: np.ndarray | None,
                       slice_positions: np.ndarray, warnings: list[str]) -> SliceOrder:
    """Base and apex from the slice normal when decisive, else from the cavity areas.

    Going from slice 0 to the last slice moves along the normal by the difference of
    their positions; that is towards the apex when it points along the typical LV long
    axis (base to apex).
    """
    by_geometry = None
    positions = np.ravel(slice_positions)
    if orientation is not None and positions.size >= 2 and positions[-1] != positions[0]:
        o = np.asarray(orientation, dtype=float)
        normal = np.cross(o[:3], o[3:])
        normal /= np.linalg.norm(normal)
        cos = float(np.dot(normal, TYPICAL_LV_LONG_AXIS))
        if abs(cos) >= np.cos(np.radians(GEOMETRY_DECIDES_DEG)):
            by_geometry = bool((positions[-1] - positions[0]) * cos > 0)
    idx = np.nonzero(masks.ring)[0]
    by_anatomy, strength = None, 0.0
    if idx.size >= 3:
        areas = masks.lv_cavity[idx].sum(axis=(1, 2)).astype(float)
        if areas.std() > 0:
            strength = float(np.corrcoef(idx, areas)[0, 1])
            by_anatomy = strength < 0
    if by_geometry is not None:
        if by_anatomy is not None and by_anatomy != by_geometry and abs(strength) > 0.8:
            warnings.append("the slice normal and the LV cavity sizes disagree on which end "
                            "is the base; the geometry was followed")
        return SliceOrder(by_geometry, "geometry")
    if by_anatomy is not None:
        return SliceOrder(by_anatomy, "anatomy")
    warnings.append("base and apex could not be told apart; slice 0 assumed basal")
    return SliceOrder(True, "assumed")


def _levels(masks: MyocardiumMasks, order: SliceOrder) -> list[str | None]:
    ring = list(masks.ring) if order.base_first else list(masks.ring[::-1])
    levels = slice_levels(len(ring), ring)
    return levels if order.base_first else levels[::-1]


def _fill_insertion_points(masks: MyocardiumMasks, warnings: list[str]) -> np.ndarray:
    """Insertion points of every ring slice: a slice without its own takes the nearest
    slice's (same angles about its own LV centre)."""
    ips = masks.insertion_points.copy()
    ring = np.nonzero(masks.ring)[0]
    have = [s for s in ring if np.all(np.isfinite(ips[s]))]
    if not have:
        return ips
    borrowed = []
    for s in ring:
        if s in have:
            continue
        donor = min(have, key=lambda k: abs(k - s))
        ips[s] = ips[donor] - masks.lv_centres[donor] + masks.lv_centres[s]
        borrowed.append(int(s))
    if borrowed:
        warnings.append(f"slices {borrowed}: RV insertion points taken from the nearest "
                        "slice that shows them")
    return ips


def analyze_motion(
    u: np.ndarray,
    spacing: tuple[float, float],
    trigger_times: np.ndarray,
    slice_positions: np.ndarray,
    ed_phase: int,
    masks: MyocardiumMasks,
    *,
    orientation: np.ndarray | None = None,
    slice_thickness: float | None = None,
) -> LVAnalysis:
    """AHA segments, strain curves and LV function of a stack.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` Lagrangian displacement, mm (DESIGN.md convention).
    spacing : tuple of float
        (row, col) pixel spacing, mm.
    trigger_times : numpy.ndarray
        ``[T]`` or ``[S, T]`` ms.
    slice_positions : numpy.ndarray
        ``[S]`` mm along the slice normal.
    ed_phase : int
    masks : MyocardiumMasks
        ED masks and landmarks (:func:`inference.heart.myocardium.masks_from_segmentation` or
        :func:`inference.heart.myocardium.segment_myocardium`).
    orientation : numpy.ndarray, optional
        ``[6]`` ImageOrientationPatient: where patient anterior is (which insertion point
        is the anterior one) and which end is the base. Without it, anterior is taken as
        towards row 0 and base / apex come from anatomy.
    slice_thickness : float, optional
        mm, for the volume of a single slice.

    Returns
    -------
    LVAnalysis

    Raises
    ------
    inference.heart.myocardium.MyocardiumError
        When the masks hold no LV ring.
    """
    u = np.asarray(u)
    if u.ndim != 5 or u.shape[2] != 2:
        raise ValueError(f"u must be [S, T, 2, H, W], got shape {u.shape}")
    if masks.myocardium.shape != (u.shape[0],) + u.shape[3:]:
        raise ValueError(f"masks are {masks.myocardium.shape}, displacement {u.shape}")
    if not masks.ring.any():
        raise MyocardiumError("no slice has a closed LV ring")
    warnings = list(masks.warnings)
    order = decide_slice_order(masks, orientation, slice_positions, warnings)
    levels = _levels(masks, order)
    if orientation is None:
        warnings.append("no image orientation: patient anterior assumed towards row 0")
        anterior = np.array([-1.0, 0.0])
    else:
        anterior = anterior_direction(orientation)
    ips = _fill_insertion_points(masks, warnings)
    n_s = u.shape[0]
    centres = np.where(np.isfinite(masks.lv_centres), masks.lv_centres,
                       np.array(u.shape[3:], float) / 2.0)
    usable = masks.ring & np.all(np.isfinite(ips), axis=(1, 2))
    ant = np.zeros((n_s, 2))
    inf = np.zeros((n_s, 2))
    for s in np.nonzero(usable)[0]:
        ant[s], inf[s] = order_insertion_points(centres[s], ips[s, 0], ips[s, 1], anterior,
                                                spacing)
    seg_levels = [lvl if usable[s] else None for s, lvl in enumerate(levels)]
    if masks.ring.any() and not usable.any():
        warnings.append("no RV insertion points: no AHA segments")
        ant[:] = centres + np.array([0.0, 1.0])
        inf[:] = centres + np.array([1.0, 0.0])
    labels = aha_label_map(centres, ant, inf, seg_levels, masks.myocardium, spacing)
    strain = compute_strain(u, spacing, centres, masks.myocardium, trigger_times,
                            aha_labels=labels, ed_phase=ed_phase)
    absent = [k for k in range(1, 17) if k not in strain.segments]
    if absent:
        warnings.append(f"AHA segments {absent} not covered: their values are null")
    function = None
    try:
        gap = slice_spacing(slice_positions, slice_thickness)
        function = lv_function(u, masks.lv_cavity, masks.myocardium, centres, spacing, gap,
                               ed_phase)
    except ValueError as exc:
        warnings.append(f"LV volumes not computed: {exc}")
    if function is not None and masks.ring.sum() < 3:
        warnings.append("fewer than 3 slices with an LV ring: volumes cover part of the LV")
    for w in warnings:
        log.warning("%s", w)
    return LVAnalysis(masks, levels, labels, strain, function, order, tuple(warnings))
