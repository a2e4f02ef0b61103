"""The ED myocardium, LV / RV cavities, LV centres and RV insertion points of a stack.

Two sources give the same :class:`MyocardiumMasks`:

- :func:`masks_from_segmentation`: masks read from a DICOM Segmentation (the study's own,
  e.g. drawn by a reader); missing cavities are derived (LV cavity = inside of the ring)
  or found in the image (RV blood pool);
- :func:`segment_myocardium`: found automatically in a bSSFP cine. Per slice, at ED:

  1. the LV blood pool is the roundest bright region, best continued along the stack,
     within reach of the moving heart (temporal variance,
     :func:`inference.heart.centres.find_heart_centres`), bright meaning above multiples of
     Otsu's threshold of the heart's neighbourhood (or, for a dim pool next to a slice
     already found, of the LV's own surroundings);
  2. rays from its centroid give the endocardium (inner edge of the compact wall: the
     first sustained fall of the profile, relative to the ray's own blood and blurred along
     the angle, to 30% from wall to blood, the wall looked for further out behind a grey
     band; trabeculae and papillary muscles stay in the cavity, as a reader draws it) and
     the epicardium (first crossing into bright fat / RV blood, or into the dark
     pericardium / lung, relative to the wall next to the ray where that is dimmer);
  3. both radii are fitted with a low-order Fourier series of the angle (the wall is
     smooth and of slowly varying thickness), robustly;
  4. the RV blood pool is the bright region that touches the septum; the two ends of
     the arc it touches are the RV insertion points.

Slices without a closed LV ring (above the base, below the apex) get empty masks and are
listed in :attr:`MyocardiumMasks.warnings`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, Delaunay, QhullError

from cinestrain.inference.heart.centres import (
    find_heart_centres,
    normalise_intensity,
    otsu_threshold,
)

log = logging.getLogger(__name__)

#: rays per slice for the polar profiles
N_RAYS = 120
#: radial sampling step of the profiles, mm
RADIAL_STEP_MM = 0.25
#: how far the profiles reach from the LV centre, mm
MAX_RADIUS_MM = 70.0
#: smallest LV blood pool that counts as a closed ring, mm^2
MIN_CAVITY_MM2 = 40.0
#: plausible LV wall thickness, mm
WALL_MM = (3.0, 20.0)
#: RV blood within this distance outside the epicardium marks the septum, mm
RV_CONTACT_MM = 4.0
#: largest LV blood pool, mm^2 (a dilated LV at the base: ~ 50 mm radius)
MAX_CAVITY_MM2 = 8000.0
#: the blood pools are looked for above these multiples of Otsu's threshold: coil shading
#: splits the LV blood pool at one level in one study and joins it to the RV in another
POOL_LEVELS = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
#: how far from the heart centre (temporal variance) the LV may lie, mm; that centre
#: often sits on the RV, which moves more than an infarcted LV
SEARCH_MM = 100.0
#: the LV centres of neighbouring slices lie within this distance (per slice apart), mm
NEIGHBOUR_MM = 20.0
#: the endocardium is where the signal falls to this fraction of the way from the compact
#: wall to the blood: trabeculae and papillary muscles, lined with blood, belong to the
#: cavity (a reader's endocardium lies at the foot of the blood-wall edge)
ENDO_LEVEL = 0.3
#: ... and stays below that level over this depth, mm (a trabecula is thinner)
ENDO_SUSTAIN_MM = 2.5
#: profiles are blurred along the angle over this arc, mm (trabeculae and the blood
#: between them average to a grey; the compact wall stays dark)
ENDO_ARC_MM = 8.0
#: the compact wall is looked for this far beyond the blood pool's edge, mm
ENDO_WALL_MM = 10.0
#: a compact wall is darker than this fraction of the ray's blood (bSSFP myocardium is a
#: third to a half of blood; a grey band brighter than this next to the pool is
#: trabeculated cavity, papillary muscle or slow blood: Sunnybrook SCD0000201's lateral wall
#: lies behind 10 mm of it on mid slices) ...
WALL_MAX_Q = 0.55
#: ... and where none is that dark within ENDO_WALL_MM, it is looked for up to this far
#: beyond the pool's edge, mm
ENDO_WALL_FAR_MM = 20.0
#: ... unless the profile climbs back to this fraction of the blood on the way: blood
#: behind a grey dip is another chamber (the RV behind a thin, partial-volumed septum)
REBRIGHT_Q = 0.7
#: ... and the endocardium up to this far beyond it, mm
ENDO_REACH_MM = 12.0
#: the epicardium is the first crossing, within this distance of the endocardium (mm),
#: into tissue brighter than halfway from wall to blood (fat, RV blood) ...
EPI_REACH_MM = 12.0
#: ... or darker than this fraction of the wall (lung, pericardium): the wall's own
#: shading and noise reach well below its median; the wall next to the ray where that is
#: dimmer than the slice's
EPI_DARK = 0.4
#: ... or brighter than the wall by this fraction of the blood-wall contrast (fat, blood of
#: the RV): a lower bar than halfway, which let the epicardium run into bright fat
EPI_BRIGHT = 0.35
#: the wall thickness (epicardium minus endocardium) is a Fourier series of order 2 of the
#: angle where at least this share of rays found the epicardium, of order 1 below: fewer
#: rays leave arcs of 100 degrees and more without data, over which a second harmonic
#: swings freely (SCD0000201's apical slices: 3 -> 16 mm)
THICK_COVER = 0.6
#: ... and stays between these percentiles of the thicknesses measured
THICK_RANGE = (10.0, 90.0)
#: the anchor slice cuts the LV between base and apex at ED: a blood pool at least this
#: large (a 28 mm circle), which leaves out round vessels of the chest wall and mediastinum
ANCHOR_MIN_MM2 = 600.0
#: the LV's surroundings, whose own threshold finds a blood pool dimmer than the slice's
#: bright tissue (slow flow at the base), mm from the neighbouring slice's LV centre
LOCAL_MM = 45.0
#: candidates tried, best first, before a slice is given up
ANCHOR_TRIES = 5


class MyocardiumError(ValueError):
    """The myocardium cannot be found or the given masks cannot be used."""


@dataclass(frozen=True)
class MyocardiumMasks:
    """ED masks and landmarks of a stack.

    Attributes
    ----------
    myocardium, lv_cavity, rv_cavity : numpy.ndarray
        ``[S, H, W]`` bool; all False on slices without a closed LV ring.
    lv_centres : numpy.ndarray
        ``[S, 2]`` ED LV blood-pool centroid, (row, col) pixels; NaN where no LV.
    insertion_points : numpy.ndarray
        ``[S, 2, 2]`` the two RV insertion points, (row, col) pixels, in no particular
        order (see :func:`inference.heart.aha.order_insertion_points`); NaN where not found.
    ring : numpy.ndarray
        ``[S]`` bool, whether the slice has a closed LV ring.
    source : str
        ``"seg"`` or ``"automatic"``.
    warnings : tuple of str
    """

    myocardium: np.ndarray
    lv_cavity: np.ndarray
    rv_cavity: np.ndarray
    lv_centres: np.ndarray
    insertion_points: np.ndarray
    ring: np.ndarray
    source: str
    warnings: tuple[str, ...] = field(default_factory=tuple)


def _polar_grid(shape: tuple[int, int], centre: np.ndarray, spacing: tuple[float, float]
                ) -> tuple[np.ndarray, np.ndarray]:
    """Radius (mm) and angle ``atan2(d_row_mm, d_col_mm)`` of every pixel."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(float)
    dy, dx = (rows - centre[0]) * spacing[0], (cols - centre[1]) * spacing[1]
    return np.hypot(dy, dx), np.arctan2(dy, dx)


def _profiles(image: np.ndarray, centre: np.ndarray, spacing: tuple[float, float],
              angles: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
    """``[n_rays, n_radii]`` bilinear samples along rays (angles in mm space)."""
    rows = centre[0] + radii_mm[None, :] * np.sin(angles)[:, None] / spacing[0]
    cols = centre[1] + radii_mm[None, :] * np.cos(angles)[:, None] / spacing[1]
    return ndimage.map_coordinates(image, [rows, cols], order=1, mode="nearest")


def _fourier_fit(angles: np.ndarray, values: np.ndarray, valid: np.ndarray, order: int,
                 *, inward_tolerance: float | None = None, tolerance: float = 2.0,
                 iterations: int = 4) -> np.ndarray | None:
    """Robust least-squares Fourier series of ``values(angles)``, evaluated at ``angles``.

    Points further than ``tolerance`` from the fit are dropped and the fit repeated;
    ``inward_tolerance`` (if given) drops points below the fit by more than it (dents).
    Returns None when too few points are valid.
    """
    cols = [np.ones_like(angles)]
    for k in range(1, order + 1):
        cols += [np.cos(k * angles), np.sin(k * angles)]
    basis = np.stack(cols, axis=1)
    keep = valid.copy()
    fit = None
    for _ in range(iterations):
        if keep.sum() < 2 * basis.shape[1] + 2:
            return fit
        coef, *_ = np.linalg.lstsq(basis[keep], values[keep], rcond=None)
        fit = basis @ coef
        res = values - fit
        new = valid & (np.abs(res) <= tolerance)
        if inward_tolerance is not None:
            new = valid & (res >= -inward_tolerance) & (res <= tolerance)
        if np.array_equal(new, keep):
            break
        keep = new
    return fit


def _fill_at(fit_angles: np.ndarray, fit_values: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Periodic linear interpolation of a function sampled on equally spaced angles."""
    return np.interp(theta, fit_angles, fit_values, period=2.0 * np.pi)


def _dark_ring(frame: np.ndarray, pool: np.ndarray, spacing: tuple[float, float],
               threshold: float) -> float:
    """Share of rays from the pool's centroid along which the 5 mm just outside its edge
    stay darker than ``threshold`` (a myocardial wall all round: high for the LV only)."""
    rows, cols = np.nonzero(pool)
    centre = np.array([rows.mean(), cols.mean()])
    angles = np.linspace(-np.pi, np.pi, 90, endpoint=False)
    radii = np.arange(0.0, MAX_RADIUS_MM, RADIAL_STEP_MM)
    inside = _profiles(pool.astype(np.float32), centre, spacing, angles, radii) >= 0.5
    edge = radii[np.argmin(inside, axis=1)]
    prof = _profiles(frame, centre, spacing, angles, radii)
    window = (radii[None] > edge[:, None] + 0.75) & (radii[None] < edge[:, None] + 5.5)
    return float(np.mean(np.all((prof < threshold) | ~window, axis=1)))


@dataclass(frozen=True)
class _Pool:
    """A candidate LV blood pool of one slice: a filled bright region, cropped to its box."""

    box: tuple[slice, slice]
    filled: np.ndarray
    centre: np.ndarray
    score: float
    area_mm2: float

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """The region as a full-frame ``[H, W]`` bool mask."""
        out = np.zeros(shape, bool)
        out[self.box] = self.filled
        return out


def _pool_candidates(frame: np.ndarray, moving: np.ndarray, centre: np.ndarray,
                     spacing: tuple[float, float], threshold: float,
                     reach_mm: float = SEARCH_MM) -> list[_Pool]:
    """Bright regions within ``reach_mm`` of ``centre`` that could be the LV blood
    pool, at every level of :data:`POOL_LEVELS`, each scored by how round it is, how
    completely a dark wall surrounds it, how little of it is dark, and (a little) how much
    it moves."""
    r, _ = _polar_grid(frame.shape, centre, spacing)
    pixel_mm2 = spacing[0] * spacing[1]
    out: list[_Pool] = []
    for level in POOL_LEVELS:
        bright = ndimage.binary_opening((frame > level * threshold) & (r < reach_mm))
        labels, _ = ndimage.label(bright)
        for k, sl in enumerate(ndimage.find_objects(labels), start=1):
            if sl is None:
                continue
            comp = labels[sl] == k
            area = comp.sum() * pixel_mm2
            if area < MIN_CAVITY_MM2 or area > MAX_CAVITY_MM2:
                continue
            rr, cc = np.nonzero(comp)
            rr, cc = rr + sl[0].start, cc + sl[1].start
            cy, cx = rr.mean(), cc.mean()
            dist = np.hypot((rr - cy) * spacing[0], (cc - cx) * spacing[1])
            r_out = np.percentile(dist, 98) + 0.5 * np.sqrt(pixel_mm2)
            roundness = area / (np.pi * r_out**2)
            filled = ndimage.binary_fill_holes(comp)
            pool = _Pool(sl, filled, np.array([cy, cx]), 0.0, float(area))
            dark = _dark_ring(frame, pool.mask(frame.shape), spacing, level * threshold)
            # a blood pool is bright throughout; one that has swallowed its own wall
            # (the whole heart, at a low level) holds a dark ring
            values = frame[sl][filled]
            wall_inside = float(np.mean(values < 0.6 * np.percentile(values, 90)))
            score = (2.0 * roundness + 2.0 * dark + 0.5 * float(moving[rr, cc].mean())
                     - 4.0 * wall_inside)
            out.append(_Pool(sl, filled, pool.centre, float(score), float(area)))
    return out


def _distance_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> float:
    return float(np.hypot((a[0] - b[0]) * spacing[0], (a[1] - b[1]) * spacing[1]))


def _support(candidates: dict[int, list[_Pool]], s: int, pool: _Pool,
             spacing: tuple[float, float]) -> float:
    """How well ``pool`` of slice ``s`` continues through the stack: its score plus, for
    each slice up to two away, the best score of a candidate near it (the LV is a tube
    along the stack; the RV and the great vessels are not round all along it)."""
    total = pool.score
    for other in (s - 2, s - 1, s + 1, s + 2):
        reach = NEIGHBOUR_MM * abs(other - s)
        near = [c.score for c in candidates.get(other, [])
                if _distance_mm(c.centre, pool.centre, spacing) <= reach]
        total += max(near, default=0.0)
    return total


def _convex_hull(mask: np.ndarray) -> np.ndarray:
    """``[H, W]`` bool: the convex hull of a mask's pixels (papillary muscles and
    trabeculae dent a blood pool; the cavity they sit in is convex in short axis)."""
    points = np.argwhere(mask).astype(float)
    if len(points) < 4:
        return mask
    try:
        hull = Delaunay(points[ConvexHull(points).vertices])
    except QhullError:
        return mask
    lo, hi = points.min(axis=0).astype(int), points.max(axis=0).astype(int) + 1
    rr, cc = np.mgrid[lo[0] : hi[0], lo[1] : hi[1]]
    inside = hull.find_simplex(np.stack([rr.ravel(), cc.ravel()], axis=1)) >= 0
    out = mask.copy()
    out[lo[0] : hi[0], lo[1] : hi[1]] |= inside.reshape(rr.shape)
    return out


def _convex_radii(angles: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Radii along ``angles`` of the convex hull of the closed curve ``radii(angles)``
    (mm, about a centre inside it): papillary muscles and trabeculae that the compact-wall
    edge bends around are cavity (SCMR), and the LV cavity is convex in short axis at ED."""
    points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    try:
        vertices = points[ConvexHull(points).vertices]
    except QhullError:
        return radii
    a, b = vertices, np.roll(vertices, -1, axis=0)
    d = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    # t d = a + s (b - a): per ray and hull edge, by Cramer's rule
    e = b - a
    det = d[:, None, 0] * -e[None, :, 1] + d[:, None, 1] * e[None, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (a[None, :, 0] * -e[None, :, 1] + a[None, :, 1] * e[None, :, 0]) / det
        s = (d[:, None, 0] * a[None, :, 1] - d[:, None, 1] * a[None, :, 0]) / det
    hit = (np.abs(det) > 1e-12) & (s >= -1e-9) & (s <= 1.0 + 1e-9) & (t > 0)
    out = np.where(hit, t, np.inf).min(axis=1)
    return np.where(np.isfinite(out), np.maximum(out, radii), radii)


def _running_mean(prof: np.ndarray, n: int) -> np.ndarray:
    """Mean of each profile over the ``n`` samples starting at every radius (outwards)."""
    return ndimage.convolve1d(prof, np.full(n, 1.0 / n), axis=1, mode="nearest",
                              origin=-(n // 2))


def _compact_wall_edge(prof: np.ndarray, radii: np.ndarray, pool_edge: np.ndarray
                       ) -> np.ndarray:
    """Endocardial radius of every ray (NaN where none): the inner edge of the compact wall.

    Each ray's profile is divided by its own blood (coil shading cancels) and blurred along
    the angle over :data:`ENDO_ARC_MM` of arc (trabeculae, interleaved with blood, fade
    to a grey that the compact wall, a continuous band, does not). The level lies
    :data:`ENDO_LEVEL` of the way from the wall (the darkest 2 mm within
    :data:`ENDO_WALL_MM` beyond the pool's edge, or, where nothing there is darker than
    :data:`WALL_MAX_Q` and the profile does not climb back to :data:`REBRIGHT_Q` on the
    way, within :data:`ENDO_WALL_FAR_MM`; smoothed along the angle) to the blood; the
    endocardium is where the profile, from halfway to the pool's edge outwards, first falls
    below it for :data:`ENDO_SUSTAIN_MM`, at sub-sample precision.
    """
    step = radii[1] - radii[0]
    n_rays = len(pool_edge)
    blood = np.array([np.percentile(prof[i, (radii >= 0.5 * e) & (radii <= e)], 90)
                      if e > 2.0 * step else np.nan for i, e in enumerate(pool_edge)])
    if not np.isfinite(blood).any():
        return np.full(n_rays, np.nan)
    blood = np.where(np.isfinite(blood), blood, np.nanmedian(blood))
    blood = ndimage.median_filter(np.maximum(blood, 1e-6), size=9, mode="wrap")
    q = prof / blood[:, None]
    arc_rays = ENDO_ARC_MM / max(float(np.median(pool_edge)), 5.0) / (2.0 * np.pi / n_rays)
    q = ndimage.gaussian_filter1d(q, arc_rays, axis=0, mode="wrap")
    n_sustain = max(1, int(round(ENDO_SUSTAIN_MM / step)))
    sustained = _running_mean(q, n_sustain)
    darkest = _running_mean(q, max(1, int(round(2.0 / step))))
    window = ((radii[None] >= pool_edge[:, None] - 2.0)
              & (radii[None] <= pool_edge[:, None] + ENDO_WALL_MM))
    near_dark = np.where(window, darkest, np.inf)
    wall = near_dark.min(axis=1)
    far_window = ((radii[None] >= pool_edge[:, None] - 2.0)
                  & (radii[None] <= pool_edge[:, None] + ENDO_WALL_FAR_MM))
    far_dark = np.where(far_window, darkest, np.inf)
    far = wall > WALL_MAX_Q
    for i in np.nonzero(far)[0]:
        a, b = int(np.argmin(near_dark[i])), int(np.argmin(far_dark[i]))
        if b <= a or q[i, a:b].max() >= REBRIGHT_Q:
            far[i] = False
    wall = np.where(far, far_dark.min(axis=1), wall)
    # the rays next to one whose wall lies far may reach as far
    far = ndimage.maximum_filter1d(far, 3, mode="wrap")
    wall = ndimage.median_filter(wall, size=9, mode="wrap")
    levels = wall + ENDO_LEVEL * (1.0 - wall)
    out = np.full(n_rays, np.nan)
    for i, edge in enumerate(pool_edge):
        level = levels[i]
        j0 = max(int(0.5 * edge / step), 1)
        reach = ENDO_REACH_MM + (ENDO_WALL_FAR_MM - ENDO_WALL_MM if far[i] else 0.0)
        j1 = min(int((edge + reach) / step), len(radii) - n_sustain - 1)
        hits = np.nonzero(sustained[i, j0:j1] < level)[0]
        if not hits.size:
            continue
        j = j0 + int(hits[0])
        above = np.nonzero(q[i, j0 : j + 1] >= level)[0]
        if not above.size:
            out[i] = radii[j]
            continue
        k = j0 + int(above[-1])
        a, b = q[i, k], q[i, k + 1]
        out[i] = radii[k] + (np.clip((a - level) / (a - b), 0.0, 1.0) if a != b else 0.5) * step
    return out


def _ring(frame: np.ndarray, pool: np.ndarray, spacing: tuple[float, float]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Endocardial and epicardial radii of one slice: (centre, angles, endo, epi) in mm."""
    rows, cols = np.nonzero(pool)
    centre = np.array([rows.mean(), cols.mean()])
    angles = np.linspace(-np.pi, np.pi, N_RAYS, endpoint=False)
    radii = np.arange(0.0, MAX_RADIUS_MM, RADIAL_STEP_MM)
    inside = _profiles(_convex_hull(pool).astype(np.float32), centre, spacing, angles,
                       radii) >= 0.5
    prof = _profiles(frame, centre, spacing, angles, radii)
    endo_raw = _compact_wall_edge(prof, radii, radii[np.argmin(inside, axis=1)])
    valid = np.isfinite(endo_raw)
    endo = _fourier_fit(angles, np.where(valid, endo_raw, 0.0), valid, 4, inward_tolerance=1.0)
    if endo is None:
        return None
    endo = _convex_radii(angles, endo)
    blood = float(np.median(frame[pool]))
    near = (radii[None, :] > endo[:, None] + 1.0) & (radii[None, :] < endo[:, None] + 4.0)
    myo = float(np.median(prof[near]))
    if not myo < 0.75 * blood:
        return None
    high = myo + EPI_BRIGHT * (blood - myo)
    # the dark bar follows the wall where it is dimmer than the slice's (coil shading: the
    # signal falls with the distance from the coil, and the lateral wall of a dilated LV,
    # far from it, is as dim as the slice's bar: SCD0000201's mid slices, wall 0.1, bar
    # 0.08, so the epicardium stopped inside it), never where it is brighter (a grey band
    # of trabeculae or partial volume next to the blood is not the wall's own signal)
    local = np.array([np.median(prof[i, near[i]]) if near[i].any() else myo
                      for i in range(N_RAYS)])
    local = ndimage.median_filter(local, size=9, mode="wrap")  # 27 degrees, as the blood's
    lows = EPI_DARK * np.minimum(local, myo)
    epi_raw = np.full(N_RAYS, np.nan)
    for i in range(N_RAYS):
        low = lows[i]
        window = (radii >= endo[i] + WALL_MM[0]) & (radii <= endo[i] + EPI_REACH_MM)
        idx = np.nonzero(window & ((prof[i] > high) | (prof[i] < low)))[0]
        if idx.size:
            j = idx[0]
            level = high if prof[i, j] > high else low
            a, b = prof[i, j - 1], prof[i, j]
            frac = (level - a) / (b - a) if b != a else 0.5
            epi_raw[i] = radii[j - 1] + np.clip(frac, 0.0, 1.0) * RADIAL_STEP_MM
    valid = np.isfinite(epi_raw)
    if valid.mean() < 0.3:
        return None
    raw = np.where(valid, epi_raw - endo, 0.0)
    order = 2 if valid.mean() >= THICK_COVER else 1
    thick = _fourier_fit(angles, raw, valid, order, tolerance=2.0)
    if thick is None:
        return None
    # no thicker or thinner than the wall measured: a fit across the gaps between valid
    # rays overshoots (up to 16 mm against 11 mm measured at the apex)
    thick = np.clip(thick, *np.percentile(raw[valid], THICK_RANGE))
    return centre, angles, endo, endo + np.clip(thick, *WALL_MM)


def _rv_pool(frame: np.ndarray, myocardium: np.ndarray, cavity: np.ndarray,
             threshold: float, spacing: tuple[float, float]) -> np.ndarray:
    """The RV blood pool: the bright region with most contact with the LV epicardium."""
    heart = myocardium | cavity
    step = np.sqrt(spacing[0] * spacing[1])
    band = ndimage.binary_dilation(heart, iterations=max(1, round(RV_CONTACT_MM / step))) & ~heart
    bright = (frame > threshold) & ~heart
    bright = ndimage.binary_opening(bright, iterations=max(1, round(1.5 / step)))
    labels, n = ndimage.label(bright)
    if n == 0:
        return np.zeros_like(myocardium)
    contact = np.bincount(labels[band], minlength=n + 1)
    contact[0] = 0
    best = int(np.argmax(contact))
    if contact[best] * spacing[0] * spacing[1] < 20.0:
        return np.zeros_like(myocardium)
    return labels == best


def insertion_points(
    myocardium: np.ndarray,
    rv_cavity: np.ndarray,
    centre: np.ndarray,
    spacing: tuple[float, float],
    contact_mm: float = RV_CONTACT_MM,
) -> np.ndarray | None:
    """The RV insertion points of one slice: the ends of the septal arc.

    Parameters
    ----------
    myocardium, rv_cavity : numpy.ndarray
        ``[H, W]`` bool ED masks.
    centre : numpy.ndarray
        ``[2]`` LV centre, (row, col) pixels.
    spacing : tuple of float
        (row, col) mm.
    contact_mm : float
        RV blood within this distance outside the epicardium counts as contact.

    Returns
    -------
    numpy.ndarray or None
        ``[2, 2]`` (row, col) pixels on the epicardium at both ends of the longest arc of
        rays along which the RV blood pool touches the LV; None without contact.
    """
    if not rv_cavity.any() or not myocardium.any():
        return None
    angles = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    radii = np.arange(0.0, MAX_RADIUS_MM, RADIAL_STEP_MM)
    myo = _profiles(myocardium.astype(np.float32), centre, spacing, angles, radii) >= 0.5
    rv = _profiles(rv_cavity.astype(np.float32), centre, spacing, angles, radii) >= 0.5
    has = myo.any(axis=1)
    epi_idx = np.where(has, myo.shape[1] - 1 - np.argmax(myo[:, ::-1], axis=1), 0)
    reach = int(round(contact_mm / RADIAL_STEP_MM))
    cols = epi_idx[:, None] + np.arange(1, reach + 1)[None, :]
    cols = np.clip(cols, 0, rv.shape[1] - 1)
    touch = has & np.take_along_axis(rv, cols, axis=1).any(axis=1)
    if not touch.any() or touch.all():
        return None
    # longest circular run of touching rays
    start = int(np.argmin(touch))  # a non-touching ray: unroll the circle there
    order = np.roll(np.arange(len(angles)), -start)
    run, best, best_end = 0, 0, 0
    for k, i in enumerate(order):
        run = run + 1 if touch[i] else 0
        if run > best:
            best, best_end = run, k
    first, last = order[best_end - best + 1], order[best_end]
    points = []
    for i in (first, last):
        r = radii[epi_idx[i]] + 0.5 * RADIAL_STEP_MM
        points.append(centre + r * np.array([np.sin(angles[i]) / spacing[0],
                                             np.cos(angles[i]) / spacing[1]]))
    return np.array(points)


def _centre_of(cavity: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(cavity)
    return np.array([rows.mean(), cols.mean()])


def _landmarks(myocardium: np.ndarray, lv_cavity: np.ndarray, rv_cavity: np.ndarray,
               spacing: tuple[float, float], warnings: list[str]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice ring flag, LV centres and insertion points of given masks."""
    n = myocardium.shape[0]
    ring = np.zeros(n, bool)
    centres = np.full((n, 2), np.nan)
    ips = np.full((n, 2, 2), np.nan)
    min_px = MIN_CAVITY_MM2 / (spacing[0] * spacing[1])
    for s in range(n):
        if lv_cavity[s].sum() < min_px or not myocardium[s].any():
            continue
        ring[s] = True
        centres[s] = _centre_of(lv_cavity[s])
        points = insertion_points(myocardium[s], rv_cavity[s], centres[s], spacing)
        if points is None:
            warnings.append(f"slice {s}: RV insertion points not found")
        else:
            ips[s] = points
    return ring, centres, ips


def masks_from_segmentation(
    myocardium: np.ndarray,
    spacing: tuple[float, float],
    *,
    lv_cavity: np.ndarray | None = None,
    rv_cavity: np.ndarray | None = None,
    ed_frames: np.ndarray | None = None,
) -> MyocardiumMasks:
    """Landmarks of given ED masks (e.g. read from a DICOM Segmentation).

    Parameters
    ----------
    myocardium : numpy.ndarray
        ``[S, H, W]`` bool.
    spacing : tuple of float
        (row, col) mm.
    lv_cavity : numpy.ndarray, optional
        ``[S, H, W]`` bool; default: the inside of the myocardial ring.
    rv_cavity : numpy.ndarray, optional
        ``[S, H, W]`` bool; default: found in ``ed_frames`` (no insertion points without
        either).
    ed_frames : numpy.ndarray, optional
        ``[S, H, W]`` ED images, to find the RV blood pool when ``rv_cavity`` is None.

    Returns
    -------
    MyocardiumMasks
    """
    myocardium = np.asarray(myocardium, dtype=bool)
    if myocardium.ndim != 3:
        raise MyocardiumError(f"myocardium must be [S, H, W], got shape {myocardium.shape}")
    if not myocardium.any():
        raise MyocardiumError("the myocardium mask is empty")
    for name, arr in (("lv_cavity", lv_cavity), ("rv_cavity", rv_cavity),
                      ("ed_frames", ed_frames)):
        if arr is not None and np.shape(arr) != myocardium.shape:
            raise MyocardiumError(f"{name} has shape {np.shape(arr)}, myocardium "
                                  f"{myocardium.shape}")
    warnings: list[str] = []
    if lv_cavity is None:
        lv_cavity = np.stack([ndimage.binary_fill_holes(m) & ~m for m in myocardium])
    lv_cavity = np.asarray(lv_cavity, dtype=bool)
    if rv_cavity is None:
        if ed_frames is None:
            rv_cavity = np.zeros_like(myocardium)
        else:
            norm = normalise_intensity(np.asarray(ed_frames, dtype=np.float32))
            rv_cavity = np.stack([
                _rv_pool(
                    norm[s], myocardium[s], lv_cavity[s], otsu_threshold(norm[s].ravel()), spacing
                )
                if myocardium[s].any() else np.zeros_like(myocardium[s])
                for s in range(myocardium.shape[0])])
    rv_cavity = np.asarray(rv_cavity, dtype=bool)
    ring, centres, ips = _landmarks(myocardium, lv_cavity, rv_cavity, spacing, warnings)
    for s in np.nonzero(~ring & myocardium.any(axis=(1, 2)))[0]:
        warnings.append(f"slice {s}: the myocardium does not enclose an LV cavity; left out")
    keep = ring[:, None, None]
    return MyocardiumMasks(myocardium & keep, lv_cavity & keep, rv_cavity & keep, centres,
                           ips, ring, "seg", tuple(warnings))


def segment_myocardium(
    pixels: np.ndarray,
    spacing: tuple[float, float],
    ed_phase: int,
    *,
    centres: np.ndarray | None = None,
) -> MyocardiumMasks:
    """Find the ED myocardium, cavities and insertion points of a bSSFP cine automatically.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``[S, T, H, W]`` cine, phases in acquisition order.
    spacing : tuple of float
        (row, col) pixel spacing, mm.
    ed_phase : int
    centres : numpy.ndarray, optional
        ``[S, 2]`` heart centres (:func:`inference.heart.centres.find_heart_centres`).

    Returns
    -------
    MyocardiumMasks
        With ``source="automatic"``.

    Raises
    ------
    MyocardiumError
        When no slice has an LV ring.
    """
    if pixels.ndim != 4:
        raise MyocardiumError(f"pixels must be [S, T, H, W], got shape {pixels.shape}")
    norm = normalise_intensity(pixels)
    if centres is None:
        centres = find_heart_centres(norm, spacing)
    n_s, _, h, w = norm.shape
    moving = norm.std(axis=1)
    moving = moving / max(float(np.percentile(moving, 99.5)), 1e-6)
    frames = np.stack([ndimage.gaussian_filter(norm[s, ed_phase], 0.5) for s in range(n_s)])
    thresholds = []
    candidates: dict[int, list[_Pool]] = {}
    for s in range(n_s):
        r, _ = _polar_grid((h, w), centres[s], spacing)
        thresholds.append(otsu_threshold(frames[s][r < SEARCH_MM]))
        candidates[s] = _pool_candidates(frames[s], moving[s], centres[s], spacing,
                                         thresholds[-1])
    out = {k: np.zeros((n_s, h, w), bool) for k in ("myo", "lv", "rv")}
    warnings: list[str] = []
    found: dict[int, np.ndarray] = {}

    def place(s: int, pool: _Pool) -> bool:
        ring = _ring(frames[s], pool.mask((h, w)), spacing)
        if ring is None:
            return False
        c, angles, endo, epi = ring
        radius, theta = _polar_grid((h, w), c, spacing)
        r_endo = _fill_at(angles, endo, theta)
        r_epi = _fill_at(angles, epi, theta)
        out["lv"][s] = radius < r_endo
        out["myo"][s] = (radius >= r_endo) & (radius < r_epi)
        out["rv"][s] = _rv_pool(frames[s], out["myo"][s], out["lv"][s], thresholds[s],
                                spacing)
        found[s] = c
        return True

    # The anchor: the candidate best supported by its neighbours along the stack; then
    # outwards slice by slice, each slice's LV near the one found next to it.
    ranked = sorted(((_support(candidates, s, p, spacing), s, i)
                     for s, pools in candidates.items() for i, p in enumerate(pools)
                     if p.area_mm2 >= ANCHOR_MIN_MM2), reverse=True)
    anchor = next((s for _, s, i in ranked[:ANCHOR_TRIES] if place(s, candidates[s][i])),
                  None)
    if anchor is not None:
        for direction in (-1, 1):
            s = anchor + direction
            while 0 <= s < n_s:
                inner = [k for k in (s - direction, s - 2 * direction) if k in found]
                if not inner:
                    break  # two slices without a ring: the LV has ended
                prior, gap = found[inner[0]], abs(inner[0] - s)
                # the slice's own threshold can miss a dim blood pool (slow flow at the
                # base, coil shading): candidates at a threshold of the LV's surroundings
                r, _ = _polar_grid((h, w), prior, spacing)
                local = otsu_threshold(frames[s][r < LOCAL_MM])
                pools = candidates[s] + _pool_candidates(frames[s], moving[s], prior, spacing,
                                                         local, LOCAL_MM)
                near = [p for p in pools
                        if _distance_mm(p.centre, prior, spacing) <= NEIGHBOUR_MM * gap]
                near.sort(key=lambda p: p.score - _distance_mm(p.centre, prior, spacing) / 10.0,
                          reverse=True)
                for pool in near[:ANCHOR_TRIES]:
                    if place(s, pool) and _distance_mm(found[s], prior, spacing) <= (
                            NEIGHBOUR_MM * gap):
                        break
                    found.pop(s, None)
                    for key in out:
                        out[key][s] = False
                s += direction
    if not found:
        raise MyocardiumError("no LV found: no slice shows a round bright blood pool inside "
                              "a myocardial ring")
    missing = sorted(set(range(n_s)) - set(found))
    if missing:
        warnings.append(f"slices {missing} show no closed LV ring (above the base or below "
                        "the apex?); left out")
    ring_flags, lv_centres, ips = _landmarks(out["myo"], out["lv"], out["rv"], spacing,
                                             warnings)
    log.debug("automatic myocardium on %d of %d slices", int(ring_flags.sum()), n_s)
    keep = ring_flags[:, None, None]
    return MyocardiumMasks(out["myo"] & keep, out["lv"] & keep, out["rv"] & keep, lv_centres,
                           ips, ring_flags, "automatic", tuple(warnings))


class AutomaticMyocardium:
    """:func:`segment_myocardium` of one cine around its heart centres, each phase
    segmented once: the ED choice segments phase 0, which is often ED itself.

    Parameters
    ----------
    pixels
        ``[S, T, H, W]`` cine, phases in acquisition order.
    spacing
        (row, col) pixel spacing, mm.
    centres
        ``[S, 2]`` heart centres (:func:`inference.heart.centres.find_heart_centres`).
    """

    def __init__(self, pixels: np.ndarray, spacing: tuple[float, float],
                 centres: np.ndarray) -> None:
        self.pixels = pixels
        self.spacing = spacing
        self.centres = centres
        self._found: dict[int, MyocardiumMasks] = {}

    def __call__(self, phase: int) -> MyocardiumMasks:
        """The masks of ``phase`` (:class:`MyocardiumError` when no LV is found)."""
        if phase not in self._found:
            self._found[phase] = segment_myocardium(self.pixels, self.spacing, phase,
                                                    centres=self.centres)
        return self._found[phase]
