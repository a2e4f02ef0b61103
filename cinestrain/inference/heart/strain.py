"""Radial and circumferential strain from a Lagrangian displacement (DESIGN.md § Strain).

- Deformation gradient ``F = I + grad u``, derivatives in mm on the ED grid (central
  differences, one-sided at the image edge).
- Directional engineering strain ``eps_n = |F n| - 1`` with ``n`` the unit radial vector
  from the slice's LV centre (ED blood-pool centroid) or the circumferential unit vector
  perpendicular to it; reported in percent. Green strain ``E_nn = ((1 + eps)^2 - 1) / 2``
  is available from :func:`green_strain`.
- Global, segment (AHA 1-16) and slice curves are means over the ED myocardium pixels
  they contain, at every phase. Peak circumferential strain is the minimum over phases,
  peak radial the maximum; time to peak is the trigger time of that phase.

Component order everywhere: 0 = rows, 1 = columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StrainCurves:
    """Mean strain of one region over the cycle.

    Attributes
    ----------
    radial_pct, circumferential_pct : numpy.ndarray
        ``[T]`` mean engineering strain per phase, percent.
    peak_radial_pct : float
        Maximum of ``radial_pct``.
    peak_circumferential_pct : float
        Minimum of ``circumferential_pct``.
    time_to_peak_radial_ms, time_to_peak_circumferential_ms : float
        Trigger time of the peak phase, ms.
    n_pixels : int
        ED myocardium pixels in the region.
    """

    radial_pct: np.ndarray
    circumferential_pct: np.ndarray
    peak_radial_pct: float
    peak_circumferential_pct: float
    time_to_peak_radial_ms: float
    time_to_peak_circumferential_ms: float
    n_pixels: int

    def to_dict(self) -> dict[str, object]:
        """The keys of ``report.json`` (plain floats and lists)."""
        return {
            "radial_strain_pct": [round(float(v), 4) for v in self.radial_pct],
            "circumferential_strain_pct": [round(float(v), 4) for v in self.circumferential_pct],
            "peak_radial_strain_pct": round(self.peak_radial_pct, 4),
            "peak_circumferential_strain_pct": round(self.peak_circumferential_pct, 4),
            "time_to_peak_radial_ms": round(self.time_to_peak_radial_ms, 3),
            "time_to_peak_circumferential_ms": round(self.time_to_peak_circumferential_ms, 3),
            "n_pixels": int(self.n_pixels),
        }


@dataclass(frozen=True)
class StrainResult:
    """Strain maps and curves of a stack.

    Attributes
    ----------
    radial_pct, circumferential_pct : numpy.ndarray
        ``[S, T, H, W]`` float32 engineering strain maps, percent (everywhere, not only in
        the myocardium).
    global_curves : StrainCurves or None
        Over all ED myocardium pixels (None when the mask is empty).
    segments : dict of int to StrainCurves
        AHA segment -> curves, only segments with pixels.
    slices : list of StrainCurves or None
        ``[S]`` per slice (None for a slice without myocardium pixels).
    trigger_times_ms : numpy.ndarray
        ``[T]`` trigger times used for global and segment times to peak (slice mean).
    ed_phase : int
    """

    radial_pct: np.ndarray
    circumferential_pct: np.ndarray
    global_curves: StrainCurves | None
    segments: dict[int, StrainCurves] = field(default_factory=dict)
    slices: list[StrainCurves | None] = field(default_factory=list)
    trigger_times_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ed_phase: int = 0

    def to_dict(self) -> dict[str, object]:
        """``global``, ``segments`` and ``slices`` entries in the shape of ``report.json``."""
        return {
            "global": self.global_curves.to_dict() if self.global_curves else None,
            "segments": {str(k): v.to_dict() for k, v in sorted(self.segments.items())},
            "slices": [c.to_dict() if c is not None else None for c in self.slices],
        }


def green_strain(engineering: np.ndarray) -> np.ndarray:
    """Green-Lagrange strain ``((1 + eps)^2 - 1) / 2`` of an engineering strain (fractions)."""
    e = np.asarray(engineering)
    return ((1.0 + e) ** 2 - 1.0) / 2.0


def deformation_gradient(u: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """``F = I + grad u`` of one slice's fields.

    Parameters
    ----------
    u : numpy.ndarray
        ``[T, 2, H, W]`` displacement, mm.
    spacing : tuple of float
        (row, col) pixel spacing, mm.

    Returns
    -------
    numpy.ndarray
        ``[T, 2, 2, H, W]``: ``F[:, i, j] = delta_ij + d u_i / d X_j`` (0 rows, 1 columns).
    """
    if u.ndim != 4 or u.shape[1] != 2:
        raise ValueError(f"u must be [T, 2, H, W], got shape {u.shape}")
    if min(u.shape[2:]) < 2:
        raise ValueError(f"need at least 2 x 2 pixels for derivatives, got {u.shape[2:]}")
    grad = np.empty(u.shape[:2] + (2,) + u.shape[2:], dtype=np.float64)
    for i in range(2):
        d_row, d_col = np.gradient(u[:, i].astype(np.float64), spacing[0], spacing[1],
                                   axis=(1, 2))
        grad[:, i, 0] = d_row
        grad[:, i, 1] = d_col
    grad[:, 0, 0] += 1.0
    grad[:, 1, 1] += 1.0
    return grad


def radial_directions(
    shape: tuple[int, int], lv_centre: np.ndarray, spacing: tuple[float, float]
) -> np.ndarray:
    """Unit radial vectors from the LV centre, ``[2, H, W]`` (row, col components, in mm
    space; zero at the centre pixel itself)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    d = np.stack([(rows - lv_centre[0]) * spacing[0], (cols - lv_centre[1]) * spacing[1]])
    norm = np.hypot(d[0], d[1])
    return np.divide(d, norm, out=np.zeros_like(d), where=norm > 0)


def strain_maps(
    u: np.ndarray, spacing: tuple[float, float], lv_centres: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Radial and circumferential engineering strain maps.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` Lagrangian displacement, mm, on each slice's ED grid.
    spacing : tuple of float
        (row, col) pixel spacing, mm.
    lv_centres : numpy.ndarray
        ``[S, 2]`` LV centre per slice, (row, col) pixels.

    Returns
    -------
    tuple of numpy.ndarray
        ``(radial, circumferential)``, each ``[S, T, H, W]`` float32 fractions (0 at the
        LV-centre pixel, where no direction is defined).
    """
    u = np.asarray(u)
    if u.ndim != 5 or u.shape[2] != 2:
        raise ValueError(f"u must be [S, T, 2, H, W], got shape {u.shape}")
    lv_centres = np.asarray(lv_centres, dtype=float)
    if lv_centres.shape != (u.shape[0], 2):
        raise ValueError(f"lv_centres must be [{u.shape[0]}, 2], got {lv_centres.shape}")
    if len(spacing) != 2 or min(spacing) <= 0:
        raise ValueError(f"spacing must be two positive mm values, got {spacing}")
    radial = np.empty((u.shape[0], u.shape[1]) + u.shape[3:], dtype=np.float32)
    circ = np.empty_like(radial)
    for s in range(u.shape[0]):
        f = deformation_gradient(u[s], spacing)
        n = radial_directions(u.shape[3:], lv_centres[s], spacing)
        t = np.stack([-n[1], n[0]])
        for out, d in ((radial, n), (circ, t)):
            fn0 = f[:, 0, 0] * d[0] + f[:, 0, 1] * d[1]
            fn1 = f[:, 1, 0] * d[0] + f[:, 1, 1] * d[1]
            out[s] = np.hypot(fn0, fn1) - 1.0
        # At the LV centre itself there is no radial direction: no strain there either
        # (it lies in the blood pool, outside every mask).
        undefined = ~np.any(n != 0, axis=0)
        radial[s][:, undefined] = 0.0
        circ[s][:, undefined] = 0.0
    return radial, circ


def _curves(
    radial_pct: np.ndarray, circ_pct: np.ndarray, n_pixels: int, times: np.ndarray
) -> StrainCurves:
    i_rad, i_circ = int(np.argmax(radial_pct)), int(np.argmin(circ_pct))
    return StrainCurves(
        radial_pct=radial_pct,
        circumferential_pct=circ_pct,
        peak_radial_pct=float(radial_pct[i_rad]),
        peak_circumferential_pct=float(circ_pct[i_circ]),
        time_to_peak_radial_ms=float(times[i_rad]),
        time_to_peak_circumferential_ms=float(times[i_circ]),
        n_pixels=int(n_pixels),
    )


def _masked_mean(maps: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``[T]`` mean over the True pixels of ``mask`` ``[S, H, W]`` of ``maps``
    ``[S, T, H, W]``."""
    total = np.zeros(maps.shape[1], dtype=np.float64)
    for s in range(maps.shape[0]):
        if mask[s].any():
            total += maps[s][:, mask[s]].sum(axis=1, dtype=np.float64)
    return total / mask.sum()


def compute_strain(
    u: np.ndarray,
    spacing: tuple[float, float],
    lv_centres: np.ndarray,
    myocardium: np.ndarray,
    trigger_times: np.ndarray,
    *,
    aha_labels: np.ndarray | None = None,
    ed_phase: int = 0,
) -> StrainResult:
    """Strain maps and global / segment / slice curves of a stack.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` Lagrangian displacement, mm (DESIGN.md convention).
    spacing : tuple of float
        (row, col) pixel spacing, mm.
    lv_centres : numpy.ndarray
        ``[S, 2]`` LV centre (ED blood-pool centroid) per slice, (row, col) pixels.
    myocardium : numpy.ndarray
        ``[S, H, W]`` bool ED myocardium mask.
    trigger_times : numpy.ndarray
        ``[T]`` or ``[S, T]`` ms; slice curves use their own row, global and segment
        curves the mean over slices.
    aha_labels : numpy.ndarray, optional
        ``[S, H, W]`` AHA segment per pixel (0 = none); no segment curves without it.
    ed_phase : int
        Index of ED (recorded; the curves keep acquisition order).

    Returns
    -------
    StrainResult
    """
    u = np.asarray(u)
    myocardium = np.asarray(myocardium, dtype=bool)
    n_s, n_t = u.shape[:2] if u.ndim == 5 else (0, 0)
    if myocardium.shape != (n_s,) + u.shape[3:]:
        raise ValueError(f"myocardium must be [S, H, W] = {(n_s,) + u.shape[3:]}, "
                         f"got {myocardium.shape}")
    times = np.asarray(trigger_times, dtype=float)
    if times.shape == (n_t,):
        times = np.broadcast_to(times, (n_s, n_t))
    if times.shape != (n_s, n_t):
        raise ValueError(f"trigger_times must be [T] or [S, T] = [{n_s}, {n_t}], "
                         f"got {np.shape(trigger_times)}")
    if not 0 <= ed_phase < n_t:
        raise ValueError(f"ed_phase {ed_phase} outside 0..{n_t - 1}")
    if aha_labels is not None and np.shape(aha_labels) != myocardium.shape:
        raise ValueError(f"aha_labels must match the mask shape {myocardium.shape}")
    radial, circ = strain_maps(u, spacing, lv_centres)
    radial *= 100.0
    circ *= 100.0
    mean_times = times.mean(axis=0)

    def region(mask: np.ndarray, t: np.ndarray, sl: slice = slice(None)) -> StrainCurves | None:
        n = int(mask.sum())
        if n == 0:
            return None
        return _curves(_masked_mean(radial[sl], mask), _masked_mean(circ[sl], mask), n, t)

    global_curves = region(myocardium, mean_times)
    segments: dict[int, StrainCurves] = {}
    if aha_labels is not None:
        labels = np.asarray(aha_labels)
        for seg in range(1, 17):
            curves = region(myocardium & (labels == seg), mean_times)
            if curves is not None:
                segments[seg] = curves
    slices = [region(myocardium[s : s + 1], times[s], slice(s, s + 1)) for s in range(n_s)]
    if global_curves is None:
        log.warning("empty myocardium mask: no strain curves")
    return StrainResult(radial, circ, global_curves, segments, slices, mean_times, ed_phase)
