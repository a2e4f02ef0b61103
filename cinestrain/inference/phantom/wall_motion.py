"""Motion of the phantom: a physiologic time course and an invertible Lagrangian map.

The map of slice ``s`` at contraction level ``v`` (0 at ED, 1 at end-systole) takes the ED
point ``X`` (slice frame, mm) to ``phi(X) = Tr(Rot(Rad(X)))``:

``Rad`` (radial, ray by ray about the LV centre)
    Along each ray of heart angle ``phi`` the squared radius ``s = R**2`` maps to
    ``r**2`` by a continuous, increasing, piecewise-linear function whose knots sit on
    the ED boundaries (LV blood, myocardium, RV blood, RV wall, epicardial fat, then a
    quadratic fall-off to the identity ``decay_mm`` outside the pericardium). Linear in
    ``s`` means: the LV blood pool shrinks uniformly, the myocardium keeps its area up
    to the factor ``kappa`` (``r**2 - r_endo**2 = kappa (R**2 - R_endo**2)``; ``kappa =
    1 / (1 + E_ll) >= 1`` is the in-plane area gain that longitudinal shortening brings
    to an incompressible wall), the RV cavity loses area, and so on. The endocardial
    radius follows from the target mid-wall circumferential stretch. The map keeps the
    ray, so its inverse is the same interpolation with the knot arrays swapped: exact.
``Rot`` (twist)
    Rotation about the LV centre by ``psi(r)``, constant over the LV and tapering to
    zero outside; it keeps ``r``, so its inverse rotates back by ``-psi(r)``: exact.
``Tr`` (rigid translation)
    ``y = q + d w(|q - c|)`` with a taper ``w`` (1 over the heart, 0 far away); it is
    invertible because ``|d| max|w'| < 0.3``. Its inverse is solved by Newton's method
    to ``FIXED_POINT_TOL_MM``.

Beyond ``decay_mm`` outside the heart every part is the identity, so tissue far from the
heart does not move. The displacement is ``u(X) = phi(X) - X`` (mm, rows then columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from cinestrain.inference.phantom.anatomy import HeartSection, SlicePose, wrap

#: the inverse translation is iterated until its residual is below this (mm)
FIXED_POINT_TOL_MM = 1e-6
_FIXED_POINT_MAX_ITER = 30
#: the endocardium never comes closer to the centre than this fraction of its ED radius
_MIN_ENDO_FRACTION = 0.22
#: edge width of the hypokinetic windows (radians)
_WINDOW_EDGE = 0.1
#: samples of the per-angle look-up table (boundaries and amplitude, linear in between)
_LUT_SIZE = 2048

AHA_LEVEL_SEGMENTS = {"basal": range(1, 7), "mid": range(7, 13), "apical": range(13, 17)}


@dataclass(frozen=True)
class TimeCourse:
    """Contraction level ``v(f)`` over one R-R interval (``f`` in [0, 1), ED at 0).

    Isovolumic contraction, ejection to end-systole at ``es_fraction`` (v = 1),
    isovolumic relaxation, rapid filling, diastasis, atrial kick, back to 0 at the next R.
    Monotone cubic (PCHIP) through physiologic knots.
    """

    es_fraction: float
    rapid_filling_fraction: float = 0.7
    diastasis_fraction: float = 0.8
    atrial_onset: float = 0.82

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """The (f, v) knots."""
        es = self.es_fraction
        left_after_rapid = 1.0 - self.rapid_filling_fraction
        left_after_diastasis = 1.0 - self.diastasis_fraction
        f = np.array([0.0, 0.05, es, es + 0.04, es + 0.17, self.atrial_onset, 0.96, 1.0])
        v = np.array([0.0, 0.03, 1.0, 0.97, left_after_rapid, left_after_diastasis, 0.0, 0.0])
        return f, v

    def __call__(self, fraction: np.ndarray) -> np.ndarray:
        """``v`` at cycle fractions ``fraction`` (wrapped into [0, 1))."""
        f, v = self.knots()
        return np.clip(PchipInterpolator(f, v)(np.mod(fraction, 1.0)), 0.0, 1.0)


@dataclass(frozen=True)
class MotionParams:
    """The motion of one case (all peak values at end-systole, v = 1).

    Attributes
    ----------
    circumferential : float
        Mid-wall circumferential engineering strain at the mid level (fraction, < 0).
    area_gain : float
        ``kappa``: in-plane myocardial area at ES over ED (>= 1).
    level_gradient : float
        Relative change of the circumferential strain from base (-) to apex (+).
    heterogeneity : numpy.ndarray
        ``[2, 2]`` relative Fourier coefficients (k = 1, 2) of the amplitude around the ring.
    rv_area : float
        RV cavity area (per ray) at ES over ED.
    rv_wall_area : float
        RV free wall area gain at ES.
    rotation_base_deg, rotation_apex_deg : float
        Rotation at the base / apex, degrees, counter-clockwise seen from the apex.
    translation : numpy.ndarray
        ``[3]`` rigid translation of the heart at ES, patient mm.
    decay_mm : float
        Distance outside the pericardium over which the motion fades to zero, mm.
    hypokinetic : tuple of (int, float)
        ``(AHA segment, residual amplitude)``: segment contracts with that fraction.
    timecourse : TimeCourse
    """

    circumferential: float
    area_gain: float
    level_gradient: float
    heterogeneity: np.ndarray
    rv_area: float
    rv_wall_area: float
    rotation_base_deg: float
    rotation_apex_deg: float
    translation: np.ndarray
    decay_mm: float
    hypokinetic: tuple[tuple[int, float], ...]
    timecourse: TimeCourse


def segment_window(segment: int, section: HeartSection) -> tuple[float, float]:
    """Centre and half-width (radians, heart angle) of an AHA segment on a section.

    Follows DESIGN.md: the anterior insertion point separates segment 1 from 2; going
    through the septum (decreasing heart angle) come 2, 3, 4, 5, 6, 60 degrees each;
    apical segments are 90 degrees, 14 (septal) centred on the mid-septum.
    """
    if 1 <= segment <= 12:
        j = (segment - 2) % 6
        return section.phi_anterior - np.radians(60.0 * j + 30.0), np.radians(30.0)
    if 13 <= segment <= 16:
        mid_septum = 0.5 * (section.phi_anterior + section.phi_inferior)
        offset = {13: 90.0, 14: 0.0, 15: -90.0, 16: 180.0}[segment]
        return mid_septum + np.radians(offset), np.radians(45.0)
    raise ValueError(f"AHA segment must be 1..16, got {segment}")


def _taper(r: np.ndarray, r1: float, r2: float) -> np.ndarray:
    """1 for r <= r1, cosine down to 0 at r2, 0 beyond."""
    t = np.clip((r - r1) / (r2 - r1), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def _piecewise_linear(x: np.ndarray, xk: np.ndarray, yk: np.ndarray) -> np.ndarray:
    """Evaluate per-point piecewise-linear maps (extrapolating the last piece).

    ``x``: ``[N]``; ``xk``, ``yk``: ``[K, N]`` non-decreasing knots per point.
    """
    k, n = xk.shape
    idx = np.minimum(np.count_nonzero(x[None] >= xk[1:], axis=0), k - 2)
    flat = idx * n + np.arange(n)
    xf, yf = xk.ravel(), yk.ravel()
    x0, x1, y0, y1 = xf[flat], xf[flat + n], yf[flat], yf[flat + n]
    width = x1 - x0
    slope = np.divide(y1 - y0, width, out=np.ones_like(width), where=width > 0)
    return y0 + (x - x0) * slope


def _decay_forward(s: np.ndarray, s0: np.ndarray, delta: np.ndarray, span: np.ndarray
                   ) -> np.ndarray:
    """``r**2 = s + delta (1 - tau)**2``, ``tau = (s - s0) / span`` in [0, 1]."""
    tau = np.clip((s - s0) / span, 0.0, 1.0)
    return s + delta * (1.0 - tau) ** 2


def _decay_inverse(r2: np.ndarray, s0: np.ndarray, delta: np.ndarray, span: np.ndarray
                   ) -> np.ndarray:
    """Inverse of :func:`_decay_forward` (closed form, the stable root of a quadratic)."""
    c = np.clip(s0 + span - r2, 0.0, None)
    u = 2.0 * c / (span + np.sqrt(np.maximum(span * span - 4.0 * delta * c, 0.0)))
    return np.where(c > 0, s0 + span * (1.0 - u), r2)


@dataclass(frozen=True)
class SliceMotion:
    """The Lagrangian map of one slice (see the module docstring).

    Attributes
    ----------
    pose : SlicePose
        LV centre and angular frame on the slice.
    section : HeartSection
        ED anatomy of the slice.
    circumferential, area_gain, rv_area, rv_wall_area : float
        Peak values for this slice (level scaling applied).
    heterogeneity : numpy.ndarray
        ``[2, 2]``.
    hypokinetic : tuple of (int, float)
        Segments of this slice's level and their residual amplitude.
    rotation : float
        Peak rotation, radians, positive = increasing slice angle ``atan2(row, col)``.
    translation : numpy.ndarray
        ``[2]`` peak translation, slice frame mm.
    decay_mm : float
    heart_radius : float
        Largest ED outer heart radius (pericardial fat), mm.
    lv_radius : float
        Largest ED epicardial radius plus 2 mm: the LV rotates as a whole inside it, the
        twist fades out from there to halfway through the fall-off.
    """

    pose: SlicePose
    section: HeartSection
    circumferential: float
    area_gain: float
    rv_area: float
    rv_wall_area: float
    heterogeneity: np.ndarray
    hypokinetic: tuple[tuple[int, float], ...]
    rotation: float
    translation: np.ndarray
    decay_mm: float
    heart_radius: float
    lv_radius: float
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        phi = np.linspace(-np.pi, np.pi, _LUT_SIZE + 1)
        rad = self.section.radii(phi)
        lut = np.stack([rad.endo, rad.epi, rad.rv_out, rad.rv_wall, rad.pericardium,
                        self.amplitude(phi)], axis=1)
        object.__setattr__(self, "_lut", lut)

    def _lookup(self, theta: np.ndarray) -> np.ndarray:
        """``[6, N]`` endo, epi, rv_out, rv_wall, pericardium radii and amplitude at slice
        angles ``theta``, interpolated in the look-up table."""
        phi = self.pose.sense * (theta - self.pose.theta_septum) + np.pi
        f = np.mod(phi, 2.0 * np.pi) * (_LUT_SIZE / (2.0 * np.pi))
        i0 = np.minimum(f.astype(np.int64), _LUT_SIZE - 1)
        w = (f - i0)[:, None]
        return ((1.0 - w) * self._lut[i0] + w * self._lut[i0 + 1]).T

    @property
    def reach_mm(self) -> float:
        """Radius (mm, about the LV centre) beyond which nothing ever moves."""
        return self.heart_radius + self.decay_mm + float(np.linalg.norm(self.translation)) + 1.0

    def amplitude(self, phi: np.ndarray) -> np.ndarray:
        """Relative contraction amplitude at heart angles ``phi`` (1 = nominal)."""
        a = 1.0 + sum(
            c * np.cos(k * phi) + s * np.sin(k * phi)
            for k, (c, s) in enumerate(self.heterogeneity, start=1)
        )
        for segment, residual in self.hypokinetic:
            centre, half = segment_window(segment, self.section)
            inside = 0.5 * (1.0 + np.tanh((half - np.abs(wrap(phi - centre))) / _WINDOW_EDGE))
            a = a * (1.0 - (1.0 - residual) * inside)
        return a

    def _knots(self, theta: np.ndarray, v: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Radial map knots on the rays of slice angles ``theta`` at contraction ``v``.

        Returns ED knots ``s`` and their images ``r**2``, ``[6, N]`` (centre, endo, epi,
        RV out, RV wall, pericardium), and the ``[N]`` span (in ``s``) of the fall-off.
        """
        endo, epi, rv_out, rv_wall, peri, amp = self._lookup(theta)
        a = amp * v
        stretch = 1.0 + self.circumferential * a
        kappa = 1.0 + (self.area_gain - 1.0) * a
        beta = 1.0 - (1.0 - self.rv_area) * v
        kappa_rv = 1.0 + (self.rv_wall_area - 1.0) * v
        s_endo, s_epi, s_rvo, s_rvw, s_peri = endo**2, epi**2, rv_out**2, rv_wall**2, peri**2
        s_mid = (0.5 * (endo + epi)) ** 2
        endo_t = np.maximum(stretch**2 * s_mid - kappa * (s_mid - s_endo),
                            (_MIN_ENDO_FRACTION**2) * s_endo)
        endo_t = np.where(a > 0, endo_t, s_endo)
        epi_t = endo_t + kappa * (s_epi - s_endo)
        rvo_t = epi_t + beta * (s_rvo - s_epi)
        rvw_t = rvo_t + kappa_rv * (s_rvw - s_rvo)
        peri_t = rvw_t + (s_peri - s_rvw)
        span = (peri + self.decay_mm) ** 2 - s_peri
        zero = np.zeros_like(s_endo)
        s = np.stack([zero, s_endo, s_epi, s_rvo, s_rvw, s_peri])
        r2 = np.stack([zero, endo_t, epi_t, rvo_t, rvw_t, peri_t])
        return s, r2, span

    def _radial(self, x: np.ndarray, theta: np.ndarray, v: float, inverse: bool) -> np.ndarray:
        """Squared radius mapped along the rays ``theta`` (ED -> v, or back)."""
        s_k, r2_k, span = self._knots(theta, v)
        delta = r2_k[-1] - s_k[-1]
        if inverse:
            inner = _piecewise_linear(x, r2_k, s_k)
            return np.where(x < r2_k[-1], inner, _decay_inverse(x, s_k[-1], delta, span))
        inner = _piecewise_linear(x, s_k, r2_k)
        return np.where(x < s_k[-1], inner, _decay_forward(x, s_k[-1], delta, span))

    def _rotation(self, r: np.ndarray, v: float) -> np.ndarray:
        outer = self.heart_radius + 0.5 * self.decay_mm
        return self.rotation * v * _taper(r, self.lv_radius, outer)

    def _translation_weight(self, r: np.ndarray) -> np.ndarray:
        return _taper(r, self.heart_radius, self.heart_radius + self.decay_mm)

    def _untranslate(self, rows: np.ndarray, cols: np.ndarray, v: float
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Solve ``q + d w(|q - c|) = y`` for ``q`` by Newton's method (the Jacobian
        ``I + d g^T`` is inverted by Sherman-Morrison) to ``FIXED_POINT_TOL_MM``."""
        c = self.pose.centre
        d = self.translation * v
        qr, qc = rows.copy(), cols.copy()
        if not np.any(d != 0):
            return qr, qc
        r1, r2 = self.heart_radius, self.heart_radius + self.decay_mm
        for _ in range(_FIXED_POINT_MAX_ITER):
            er, ec = qr - c[0], qc - c[1]
            r = np.hypot(er, ec)
            w = _taper(r, r1, r2)
            res_r, res_c = qr + d[0] * w - rows, qc + d[1] * w - cols
            if float(np.max(np.abs(res_r) + np.abs(res_c), initial=0.0)) < FIXED_POINT_TOL_MM:
                break
            t = np.clip((r - r1) / (r2 - r1), 0.0, 1.0)
            dw = np.where((t > 0) & (t < 1), -0.5 * np.pi / (r2 - r1) * np.sin(np.pi * t), 0.0)
            g_r = dw * np.divide(er, r, out=np.zeros_like(r), where=r > 0)
            g_c = dw * np.divide(ec, r, out=np.zeros_like(r), where=r > 0)
            g_res = (g_r * res_r + g_c * res_c) / (1.0 + g_r * d[0] + g_c * d[1])
            qr = qr - (res_r - d[0] * g_res)
            qc = qc - (res_c - d[1] * g_res)
        return qr, qc

    def forward(self, rows: np.ndarray, cols: np.ndarray, v: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """Where the ED points ``(rows, cols)`` (slice frame, mm, 1-D) are at ``v``."""
        c = self.pose.centre
        dr, dc = rows - c[0], cols - c[1]
        big_r2 = dr * dr + dc * dc
        theta = np.arctan2(dr, dc)
        r = np.sqrt(self._radial(big_r2, theta, v, inverse=False))
        theta = theta + self._rotation(r, v)
        w = self._translation_weight(r) * v
        return (c[0] + r * np.sin(theta) + self.translation[0] * w,
                c[1] + r * np.cos(theta) + self.translation[1] * w)

    def inverse(self, rows: np.ndarray, cols: np.ndarray, v: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """The ED points that are at ``(rows, cols)`` (slice frame, mm, 1-D) at ``v``."""
        c = self.pose.centre
        qr, qc = self._untranslate(rows, cols, v)
        dr, dc = qr - c[0], qc - c[1]
        r2 = dr * dr + dc * dc
        theta = np.arctan2(dr, dc) - self._rotation(np.sqrt(r2), v)
        big_r = np.sqrt(self._radial(r2, theta, v, inverse=True))
        return c[0] + big_r * np.sin(theta), c[1] + big_r * np.cos(theta)


def slice_motion(
    params: MotionParams,
    pose: SlicePose,
    section: HeartSection,
    level: str,
    translation_in_plane: np.ndarray,
    rotation_sense: float,
) -> SliceMotion:
    """Build the :class:`SliceMotion` of one slice.

    Parameters
    ----------
    params : MotionParams
        The case's motion.
    pose, section
        The slice's heart pose and ED anatomy (central plane).
    level : str
        ``"basal"``, ``"mid"`` or ``"apical"`` (selects the hypokinetic segments).
    translation_in_plane : numpy.ndarray
        ``[2]`` the case translation projected on the slice, (row, col) mm.
    rotation_sense : float
        +1 when counter-clockwise seen from the apex is increasing slice angle, else -1.
    """
    z = float(np.clip(pose.z, 0.0, 1.0))
    rot_deg = params.rotation_base_deg + (params.rotation_apex_deg - params.rotation_base_deg) * z
    phi = np.linspace(-np.pi, np.pi, 721)
    rad = section.radii(phi)
    heart_radius = float(rad.outer.max())
    segments = AHA_LEVEL_SEGMENTS.get(level, ())
    return SliceMotion(
        pose=pose,
        section=section,
        circumferential=params.circumferential * (1.0 + params.level_gradient * (z - 0.5)),
        area_gain=params.area_gain,
        rv_area=params.rv_area,
        rv_wall_area=params.rv_wall_area,
        heterogeneity=params.heterogeneity,
        hypokinetic=tuple((s, f) for s, f in params.hypokinetic if s in segments),
        rotation=float(np.radians(rot_deg)) * rotation_sense,
        translation=np.asarray(translation_in_plane, dtype=float),
        decay_mm=params.decay_mm,
        heart_radius=heart_radius,
        lv_radius=float(rad.epi.max()) + 2.0,
    )
