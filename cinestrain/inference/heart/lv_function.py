"""LV function from the ED masks and the motion: cavity areas, volumes, EF, mass, ES phase.

The ED endocardium of each slice is a polygon (one vertex per ray from the LV centre, at
the edge of the ED cavity mask). The motion carries its vertices to every phase
(``X + u_t(X)``, DESIGN.md § Displacement convention); the area of the carried polygon is
the cavity area of that slice at that phase. End-systole is the phase of the smallest
summed cavity area. Volumes add the slices' areas times the slice spacing (Simpson's
discs); myocardial mass is the ED myocardium volume times 1.05 g/ml.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

log = logging.getLogger(__name__)

#: density of myocardium, g/ml
MYOCARDIAL_DENSITY_G_PER_ML = 1.05

#: rays per slice for the endocardial polygon
N_RAYS = 180


@dataclass(frozen=True)
class LVFunction:
    """Cavity areas and the volumes derived from them.

    Attributes
    ----------
    cavity_area_mm2 : numpy.ndarray
        ``[S, T]`` LV cavity area per slice and phase, mm^2 (0 for slices left out).
    cavity_volume_ml : numpy.ndarray
        ``[T]`` summed over slices times the slice spacing, ml.
    ed_phase, es_phase : int
        ES is the phase of the smallest cavity volume.
    edv_ml, esv_ml, sv_ml : float
        End-diastolic, end-systolic and stroke volume, ml.
    ef_pct : float
        Ejection fraction, percent.
    mass_g : float
        ED myocardial mass (1.05 g/ml), g.
    slice_spacing_mm : float
        Distance between slice centres used for the volumes, mm.
    """

    cavity_area_mm2: np.ndarray
    cavity_volume_ml: np.ndarray
    ed_phase: int
    es_phase: int
    edv_ml: float
    esv_ml: float
    sv_ml: float
    ef_pct: float
    mass_g: float
    slice_spacing_mm: float

    def to_dict(self) -> dict[str, object]:
        """The ``function`` entry of ``report.json``."""
        return {
            "edv_ml": round(self.edv_ml, 2),
            "esv_ml": round(self.esv_ml, 2),
            "sv_ml": round(self.sv_ml, 2),
            "ef_pct": round(self.ef_pct, 2),
            "mass_g": round(self.mass_g, 2),
            "myocardial_density_g_per_ml": MYOCARDIAL_DENSITY_G_PER_ML,
            "slice_spacing_mm": round(self.slice_spacing_mm, 3),
            "cavity_volume_ml": [round(float(v), 3) for v in self.cavity_volume_ml],
            "cavity_area_mm2": [[round(float(v), 2) for v in row]
                                for row in self.cavity_area_mm2],
            "method": "ED endocardium carried by the motion (polygon area); Simpson's discs",
        }


def slice_spacing(slice_positions: np.ndarray, fallback_mm: float | None = None) -> float:
    """Median distance between neighbouring slice positions, mm.

    Parameters
    ----------
    slice_positions : numpy.ndarray
        ``[S]`` mm along the slice normal.
    fallback_mm : float, optional
        Used for a single slice (e.g. the slice thickness).
    """
    positions = np.sort(np.asarray(slice_positions, dtype=float))
    if positions.size >= 2:
        return float(np.median(np.diff(positions)))
    if fallback_mm is None or not np.isfinite(fallback_mm) or fallback_mm <= 0:
        raise ValueError("one slice and no slice thickness: volumes cannot be computed")
    return float(fallback_mm)


def endocardial_polygon(cavity: np.ndarray, centre: np.ndarray, n_rays: int = N_RAYS
                        ) -> np.ndarray:
    """Vertices of the edge of a cavity mask, one per ray from ``centre``.

    Parameters
    ----------
    cavity : numpy.ndarray
        ``[H, W]`` bool.
    centre : numpy.ndarray
        ``[2]`` (row, col) pixels inside the cavity.
    n_rays : int

    Returns
    -------
    numpy.ndarray
        ``[n_rays, 2]`` (row, col) pixels, where the bilinear mask falls below 1/2 going
        outwards (the outermost such crossing, so holes do not cut the polygon short).
    """
    h, w = cavity.shape
    r_max = float(np.hypot(h, w))
    radii = np.arange(0.0, r_max, 0.25)
    angles = np.linspace(0.0, 2.0 * np.pi, n_rays, endpoint=False)
    dirs = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    pts = centre[None, None, :] + radii[None, :, None] * dirs[:, None, :]
    inside = ndimage.map_coordinates(cavity.astype(np.float32), [pts[..., 0], pts[..., 1]],
                                     order=1, mode="constant", cval=0.0) >= 0.5
    last = np.where(inside.any(axis=1),
                    inside.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1), 0)
    # sub-sample crossing between the last inside and the next sample
    r = radii[last] + 0.125
    return centre[None, :] + r[:, None] * dirs


def polygon_area(points: np.ndarray, spacing: tuple[float, float]) -> float:
    """Shoelace area of a closed polygon of (row, col) pixel vertices, mm^2."""
    y = points[:, 0] * spacing[0]
    x = points[:, 1] * spacing[1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def carried_cavity_areas(
    u: np.ndarray,
    lv_cavity: np.ndarray,
    lv_centres: np.ndarray,
    spacing: tuple[float, float],
) -> np.ndarray:
    """Area of each slice's ED endocardium carried to every phase.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` Lagrangian displacement, mm.
    lv_cavity : numpy.ndarray
        ``[S, H, W]`` bool ED LV cavity (slices to leave out all False).
    lv_centres : numpy.ndarray
        ``[S, 2]`` (row, col) pixels.
    spacing : tuple of float
        (row, col) mm.

    Returns
    -------
    numpy.ndarray
        ``[S, T]`` mm^2 (0 where the slice has no cavity).
    """
    n_s, n_t = u.shape[:2]
    if lv_cavity.shape != (n_s,) + u.shape[3:]:
        raise ValueError(f"lv_cavity must be [S, H, W] = {(n_s,) + u.shape[3:]}, "
                         f"got {lv_cavity.shape}")
    sp = np.asarray(spacing, dtype=float)
    areas = np.zeros((n_s, n_t))
    for s in range(n_s):
        if not lv_cavity[s].any():
            continue
        poly = endocardial_polygon(lv_cavity[s], np.asarray(lv_centres[s], dtype=float))
        coords = [poly[:, 0], poly[:, 1]]
        for t in range(n_t):
            disp = np.stack([ndimage.map_coordinates(u[s, t, i].astype(np.float64), coords,
                                                     order=1, mode="nearest")
                             for i in range(2)], axis=1)
            areas[s, t] = polygon_area(poly + disp / sp, spacing)
    return areas


def lv_function(
    u: np.ndarray,
    lv_cavity: np.ndarray,
    myocardium: np.ndarray,
    lv_centres: np.ndarray,
    spacing: tuple[float, float],
    slice_spacing_mm: float,
    ed_phase: int,
) -> LVFunction:
    """Cavity areas, ES phase, volumes, EF and mass of a stack.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` Lagrangian displacement, mm.
    lv_cavity, myocardium : numpy.ndarray
        ``[S, H, W]`` bool ED masks, only on the slices that count (others all False).
    lv_centres : numpy.ndarray
        ``[S, 2]`` (row, col) pixels.
    spacing : tuple of float
        (row, col) pixel spacing, mm.
    slice_spacing_mm : float
        Distance between slice centres, mm (see :func:`slice_spacing`).
    ed_phase : int

    Returns
    -------
    LVFunction
    """
    if slice_spacing_mm <= 0:
        raise ValueError(f"slice spacing must be positive, got {slice_spacing_mm}")
    if not 0 <= ed_phase < u.shape[1]:
        raise ValueError(f"ed_phase {ed_phase} outside 0..{u.shape[1] - 1}")
    if not lv_cavity.any():
        raise ValueError("no LV cavity pixels: no volumes")
    areas = carried_cavity_areas(u, lv_cavity, lv_centres, spacing)
    volumes = areas.sum(axis=0) * slice_spacing_mm / 1000.0
    es = int(np.argmin(volumes))
    edv, esv = float(volumes[ed_phase]), float(volumes[es])
    pixel_mm2 = float(spacing[0] * spacing[1])
    mass = float(myocardium.sum()) * pixel_mm2 * slice_spacing_mm / 1000.0
    mass *= MYOCARDIAL_DENSITY_G_PER_ML
    ef = 100.0 * (edv - esv) / edv if edv > 0 else float("nan")
    log.info("EDV %.1f ml, ESV %.1f ml (phase %d), EF %.1f %%, mass %.1f g",
             edv, esv, es, ef, mass)
    return LVFunction(areas, volumes, ed_phase, es, edv, esv, edv - esv, ef, mass,
                      float(slice_spacing_mm))
