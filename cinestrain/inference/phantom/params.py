"""Random parameters of a phantom case: what varies between real scans and real hearts.

:class:`PhantomConfig` holds the ranges; :func:`sample_params` draws one
:class:`CaseParams` from a ``numpy.random.Generator`` (deterministic given its seed).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from cinestrain.inference.phantom.anatomy import Body, Contrast, Heart, HeartShape
from cinestrain.inference.phantom.geometry import (
    ANTERIOR,
    StackGeometry,
    in_plane,
    rotate,
    short_axis_basis,
    unit,
)
from cinestrain.inference.phantom.render import CoilBias
from cinestrain.inference.phantom.wall_motion import MotionParams, TimeCourse

#: typical LV long axis, base to apex (patient left, anterior, inferior; LPS)
LV_AXIS = unit(np.array([0.6, -0.45, -0.65]))
#: the septum / RV lies towards patient right and anterior of the LV
SEPTAL_HINT = unit(np.array([-1.0, -0.5, -0.3]))

#: AHA segments that touch each segment (ring neighbours and the level above / below)
_NEIGHBOURS = {
    1: (2, 6, 7), 2: (1, 3, 8), 3: (2, 4, 9), 4: (3, 5, 10), 5: (4, 6, 11), 6: (5, 1, 12),
    7: (8, 12, 1, 13), 8: (7, 9, 2, 14), 9: (8, 10, 3, 14), 10: (9, 11, 4, 15),
    11: (10, 12, 5, 16), 12: (11, 7, 6, 16), 13: (14, 16, 7), 14: (13, 15, 8, 9),
    15: (14, 16, 10), 16: (15, 13, 11, 12),
}


def contiguous_segments(segment: int) -> tuple[int, ...]:
    """AHA segments that share a border with ``segment`` (1-16)."""
    if segment not in _NEIGHBOURS:
        raise ValueError(f"AHA segment must be 1..16, got {segment}")
    return _NEIGHBOURS[segment]


@dataclass(frozen=True)
class PhantomConfig:
    """Ranges from which cases are drawn (``(low, high)``, uniform unless stated).

    The strain ranges are those the *global* truth peaks of a case fall in (circumferential
    most negative, radial most positive); per-case targets are drawn inside them.
    """

    matrix: tuple[int, int] = (160, 256)
    pixel_spacing_mm: tuple[float, float] = (1.2, 2.0)
    fov_mm: tuple[float, float] = (300.0, 400.0)
    phases: tuple[int, int] = (16, 40)
    slices: tuple[int, int] = (6, 14)
    heart_rate_bpm: tuple[float, float] = (50.0, 95.0)
    snr: tuple[float, float] = (20.0, 80.0)
    heart_scale: tuple[float, float] = (0.88, 1.12)
    circumferential_peak_pct: tuple[float, float] = (-25.0, -12.0)
    radial_peak_pct: tuple[float, float] = (20.0, 60.0)
    twist_deg: tuple[float, float] = (4.0, 12.0)
    translation_mm: tuple[float, float] = (0.5, 3.0)
    hypokinetic_share: float = 0.4
    hypokinetic_residual: tuple[float, float] = (0.15, 0.45)
    ed_phase: int | None = 0
    stored_blood_value: tuple[float, float] = (300.0, 2500.0)
    mirror_share: float = 0.2
    in_plane_rotation_deg: float = 25.0
    tilt_deg: float = 8.0
    supersample: int = 3
    through_plane: int = 3

    def __post_init__(self) -> None:
        for name in ("matrix", "pixel_spacing_mm", "phases", "slices", "heart_rate_bpm", "snr",
                     "circumferential_peak_pct", "radial_peak_pct"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} above high {hi}")
        if self.slices[0] < 3:
            raise ValueError("slices: at least 3 (one per AHA level)")
        if self.phases[0] < 4:
            raise ValueError("phases: at least 4")
        if self.supersample < 1 or self.through_plane < 1:
            raise ValueError("supersample and through_plane must be >= 1")

    def to_dict(self) -> dict[str, object]:
        """Plain values for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class CaseParams:
    """Everything random about one case.

    Attributes
    ----------
    heart, body, contrast, motion
        Anatomy, bSSFP contrast and motion.
    geometry : StackGeometry
        Slices base to apex.
    rr_interval_ms : float
    trigger_times : numpy.ndarray
        ``[S, T]`` ms.
    ed_phase : int
        Phase at the R wave (the cycle starts there).
    snr : float
        LV-blood SNR.
    psf_sigma_px : float
    bias : CoilBias
    stored_blood_value : float
        Stored pixel value of LV blood at the heart.
    hypokinetic : tuple of int
        AHA segments that are hypokinetic.
    """

    heart: Heart
    body: Body
    contrast: Contrast
    motion: MotionParams
    geometry: StackGeometry
    rr_interval_ms: float
    trigger_times: np.ndarray
    ed_phase: int
    snr: float
    psf_sigma_px: float
    bias: CoilBias
    stored_blood_value: float
    hypokinetic: tuple[int, ...] = field(default_factory=tuple)

    @property
    def n_phases(self) -> int:
        """T."""
        return int(self.trigger_times.shape[1])

    def cycle_fractions(self) -> np.ndarray:
        """``[T]`` position of each phase in the R-R interval (0 at ED)."""
        t = self.n_phases
        return np.mod(np.arange(t) - self.ed_phase, t) / t

    def contraction(self) -> np.ndarray:
        """``[T]`` contraction level of each phase (0 at ED, 1 at end-systole)."""
        return self.motion.timecourse(self.cycle_fractions())


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _matrix(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[tuple[int, int], float]:
    spacing = round(_uniform(rng, cfg.pixel_spacing_mm), 3)
    lo, hi = cfg.matrix
    if lo == hi:
        return (lo, lo), spacing
    cols = int(np.clip(round(_uniform(rng, cfg.fov_mm) / spacing / 16) * 16, lo, hi))
    rows = int(np.clip(round(cols * rng.uniform(0.75, 1.0) / 16) * 16, lo, cols))
    return (rows, cols), spacing


def _heart_shape(rng: np.random.Generator, scale: float) -> HeartShape:
    ell, ell_phase = rng.uniform(0.02, 0.07), rng.uniform(0, np.pi)
    return HeartShape(
        r_endo=rng.uniform(21.0, 27.0) * scale,
        wall=rng.uniform(7.5, 10.5) * scale,
        apex_wall_ratio=rng.uniform(0.6, 0.8),
        endo_harmonics=np.array([
            rng.normal(0, 0.01, 2),
            [ell * np.cos(2 * ell_phase), ell * np.sin(2 * ell_phase)],
            rng.normal(0, 0.012, 2),
        ]),
        wall_harmonics=np.array([[rng.uniform(0.0, 0.1), rng.normal(0, 0.04)],
                                 rng.normal(0, 0.04, 2)]),
        rv_depth=rng.uniform(18.0, 30.0) * scale,
        phi_anterior=np.radians(rng.uniform(65.0, 90.0)),
        phi_inferior=-np.radians(rng.uniform(55.0, 80.0)),
        rv_skew=rng.uniform(0.8, 1.25),
        rv_wall=rng.uniform(2.5, 4.0),
        epi_fat=rng.uniform(0.3, 1.2),
        groove_fat=rng.uniform(2.0, 5.0),
        rv_fat=rng.uniform(0.3, 2.0),
        pericardial_fat_anterior=rng.uniform(0.0, 10.0),
        pericardial_fat_inferior=rng.uniform(0.0, 5.0),
        papillary=((np.radians(rng.uniform(115.0, 145.0)), rng.uniform(4.5, 6.5) * scale),
                   (-np.radians(rng.uniform(90.0, 120.0)), rng.uniform(5.0, 7.0) * scale)),
        trabecular_depth=rng.uniform(1.5, 3.5),
    )


def _heart_frame(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LV long axis, septal and anterior directions (patient, unit)."""
    axis = rotate(LV_AXIS, unit(rng.normal(size=3)), np.radians(rng.normal(0.0, 7.0)))
    septal = rotate(in_plane(SEPTAL_HINT, axis), axis, np.radians(rng.uniform(-15.0, 15.0)))
    anterior = np.cross(axis, septal)
    if np.dot(anterior, ANTERIOR) < 0:
        anterior = -anterior
    return axis, septal, anterior


def _motion(rng: np.random.Generator, cfg: PhantomConfig, hr: float,
            hypokinetic: tuple[int, ...]) -> MotionParams:
    # Mid-wall targets inside the configured global ranges: the global peaks land a little
    # closer to zero (pixel means, hypokinesia), see tests/inference/test_phantom.py.
    c_lo, c_hi = cfg.circumferential_peak_pct
    r_lo, r_hi = cfg.radial_peak_pct
    circ = rng.uniform(c_lo + 0.15 * (c_hi - c_lo), c_hi - 0.2 * (c_hi - c_lo)) / 100.0
    radial = rng.uniform(r_lo + 0.15 * (r_hi - r_lo), r_hi - 0.12 * (r_hi - r_lo)) / 100.0
    # mid-wall: radial stretch = kappa / circumferential stretch
    area_gain = max(1.0, (1.0 + radial) * (1.0 + circ))
    es = float(np.clip(0.30 + 0.10 * (hr - 50.0) / 45.0 + rng.normal(0, 0.01), 0.30, 0.40))
    rot_base = -rng.uniform(1.0, 4.0)
    twist = _uniform(rng, cfg.twist_deg)
    direction = unit(rng.normal(size=3))
    residual = [rng.uniform(*cfg.hypokinetic_residual) for _ in hypokinetic]
    return MotionParams(
        circumferential=circ,
        area_gain=area_gain,
        level_gradient=rng.uniform(0.1, 0.3),
        heterogeneity=np.array([[rng.normal(-0.04, 0.03), rng.normal(0, 0.03)],
                                rng.normal(0, 0.03, 2)]),
        rv_area=rng.uniform(0.5, 0.7),
        rv_wall_area=rng.uniform(1.05, 1.2),
        rotation_base_deg=rot_base,
        rotation_apex_deg=rot_base + twist,
        translation=direction * _uniform(rng, cfg.translation_mm),
        decay_mm=rng.uniform(25.0, 40.0),
        hypokinetic=tuple(zip(hypokinetic, residual, strict=True)),
        timecourse=TimeCourse(
            es_fraction=es,
            rapid_filling_fraction=rng.uniform(0.6, 0.8),
            diastasis_fraction=rng.uniform(0.75, 0.85),
            atrial_onset=rng.uniform(0.8, 0.86),
        ),
    )


def _hypokinetic(rng: np.random.Generator, cfg: PhantomConfig) -> tuple[int, ...]:
    if rng.random() >= cfg.hypokinetic_share:
        return ()
    first = int(rng.integers(1, 17))
    if rng.random() < 0.5:
        return (first,)
    second = int(rng.choice(contiguous_segments(first)))
    return tuple(sorted((first, second)))


def sample_params(rng: np.random.Generator, cfg: PhantomConfig | None = None) -> CaseParams:
    """Draw one case.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    cfg : PhantomConfig, optional
        Ranges (defaults: realistic clinical scans).

    Returns
    -------
    CaseParams
    """
    cfg = cfg or PhantomConfig()
    scale = _uniform(rng, cfg.heart_scale)
    axis, septal, anterior = _heart_frame(rng)
    length = rng.uniform(78.0, 95.0) * scale
    mid = rng.uniform(-20.0, 20.0, 3)
    heart = Heart(base=mid - 0.5 * length * axis, axis=axis, septal=septal, anterior=anterior,
                  length=length, shape=_heart_shape(rng, scale))
    ax, ay = rng.uniform(135.0, 175.0), rng.uniform(100.0, 125.0)
    body = Body(
        centre=np.array([mid[0] - rng.uniform(30.0, 50.0), mid[1] + rng.uniform(25.0, 40.0)]),
        half_axes=(ax, ay),
        fat=rng.uniform(6.0, 22.0),
        muscle=rng.uniform(8.0, 14.0),
        diaphragm_z=mid[2] - rng.uniform(45.0, 58.0),
        dome_right=rng.uniform(25.0, 45.0),
        dome_left=rng.uniform(5.0, 20.0),
        liver_edge=rng.uniform(20.0, 50.0),
    )
    # the stack: planes near-perpendicular to the long axis, base to apex
    n_slices = int(rng.integers(cfg.slices[0], cfg.slices[1] + 1))
    normal = rotate(axis, unit(np.cross(axis, rng.normal(size=3))),
                    np.radians(rng.uniform(0.0, cfg.tilt_deg)))
    z_first = rng.uniform(0.03, 0.08)
    gap = float(np.clip(0.86 * length / max(n_slices - 1, 1), 5.0, 12.0))
    gap = min(gap, (0.92 - z_first) * length / max(n_slices - 1, 1))
    thickness = float(min(gap, rng.uniform(6.0, 8.0)))
    centre0 = heart.base + z_first * length * axis
    row_dir, col_dir = short_axis_basis(normal, np.radians(rng.uniform(
        -cfg.in_plane_rotation_deg, cfg.in_plane_rotation_deg)), rng.random() < cfg.mirror_share)
    shape, px = _matrix(rng, cfg)
    offset = rng.uniform(-0.05, 0.05, 2) * np.array(shape) * px
    positions = np.array([
        centre0 + s * gap * normal
        - ((shape[1] - 1) / 2 * px + offset[1]) * row_dir
        - ((shape[0] - 1) / 2 * px + offset[0]) * col_dir
        for s in range(n_slices)
    ])
    geometry = StackGeometry(np.concatenate([row_dir, col_dir]), positions, (px, px), shape,
                             thickness)
    # timing
    hr = _uniform(rng, cfg.heart_rate_bpm)
    rr = 60000.0 / hr
    n_phases = int(rng.integers(cfg.phases[0], cfg.phases[1] + 1))
    ed_phase = cfg.ed_phase if cfg.ed_phase is not None else int(rng.integers(0, n_phases))
    if not 0 <= ed_phase < n_phases:
        raise ValueError(f"ed_phase {ed_phase} outside 0..{n_phases - 1}")
    rr_slices = rr * (1.0 + rng.normal(0.0, 0.015, n_slices))
    start = rng.uniform(2.0, 12.0, n_slices)
    trigger = start[:, None] + np.arange(n_phases)[None] * rr_slices[:, None] / n_phases
    hypokinetic = _hypokinetic(rng, cfg)
    return CaseParams(
        heart=heart,
        body=body,
        contrast=Contrast.sample(rng),
        motion=_motion(rng, cfg, hr, hypokinetic),
        geometry=geometry,
        rr_interval_ms=rr,
        trigger_times=np.round(trigger, 2),
        ed_phase=ed_phase,
        snr=float(np.exp(rng.uniform(np.log(cfg.snr[0]), np.log(cfg.snr[1])))),
        psf_sigma_px=rng.uniform(0.3, 0.6),
        bias=CoilBias.sample(rng, mid),
        stored_blood_value=_uniform(rng, cfg.stored_blood_value),
        hypokinetic=hypokinetic,
    )
