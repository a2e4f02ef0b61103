"""One phantom case: a cine short-axis stack with its exact ground truth.

The ED phase is phase 0 unless :attr:`PhantomConfig.ed_phase` says otherwise (``None``
draws an acquisition that starts late in the cycle); the truth records which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cinestrain.inference.heart.aha import aha_label_map, slice_levels
from cinestrain.inference.heart.strain import compute_strain
from cinestrain.inference.phantom.anatomy import (
    LV_CAVITY,
    EDSlice,
    Tissue,
    downsample_fraction,
    render_ed,
)
from cinestrain.inference.phantom.geometry import ANTERIOR, SlicePlane
from cinestrain.inference.phantom.params import CaseParams, PhantomConfig, sample_params
from cinestrain.inference.phantom.render import acquire, displacement, pixel_grid_mm, render_frames
from cinestrain.inference.phantom.truth import Truth
from cinestrain.inference.phantom.wall_motion import SliceMotion, slice_motion

log = logging.getLogger(__name__)

#: largest stored value (12-bit, as most MR scanners store magnitude images)
MAX_STORED = 4095


@dataclass(frozen=True)
class SliceRender:
    """One slice, rendered noise-free, with its truth.

    Attributes
    ----------
    frames : numpy.ndarray
        ``[T, H, W]`` float32 intensities (relative to LV blood), no blur/bias/noise.
    displacement : numpy.ndarray
        ``[T, 2, H, W]`` float32 truth ``u``, mm.
    myocardium, lv_cavity, rv_cavity : numpy.ndarray
        ``[H, W]`` bool ED masks (area fraction >= 1/2 of the pixel).
    lv_centre : numpy.ndarray
        ``[2]`` ED LV blood-pool centroid, (row, col) pixels.
    insertion_points : numpy.ndarray
        ``[2, 2]`` anterior then inferior RV insertion point, (row, col) pixels.
    motion : SliceMotion
    """

    frames: np.ndarray
    displacement: np.ndarray
    myocardium: np.ndarray
    lv_cavity: np.ndarray
    rv_cavity: np.ndarray
    lv_centre: np.ndarray
    insertion_points: np.ndarray
    motion: SliceMotion


def render_slice(
    params: CaseParams,
    plane: SlicePlane,
    level: str | None,
    contraction: np.ndarray,
    rng: np.random.Generator,
    *,
    supersample: int,
    through_plane: int,
    slice_thickness: float,
    ed: EDSlice | None = None,
) -> SliceRender:
    """Render one slice of a case on ``plane`` (any grid: the scan's or a model's).

    Parameters
    ----------
    params : CaseParams
    plane : SlicePlane
        Output pixel grid.
    level : str or None
        AHA level of the slice (which hypokinetic segments apply).
    contraction : numpy.ndarray
        ``[T]`` contraction level per frame.
    rng : numpy.random.Generator
        Texture randomness.
    supersample, through_plane, slice_thickness
        See :func:`inference.phantom.anatomy.render_ed`.
    ed : EDSlice, optional
        The slice's ED anatomy when already rendered on ``plane`` (then ``rng``,
        ``supersample`` and ``through_plane`` are not used for it).
    """
    if ed is None:
        ed = render_ed(params.heart, params.body, params.contrast, plane,
                       supersample=supersample, slice_thickness=slice_thickness,
                       through_plane=through_plane, rng=rng)
    translation = plane.to_slice(params.motion.translation[None] + plane.origin)[0]
    sense = 1.0 if np.dot(plane.normal, params.heart.axis) > 0 else -1.0
    motion = slice_motion(params.motion, ed.pose, ed.section, level or "", translation, sense)
    k = ed.supersample
    fractions = {name: downsample_fraction(np.isin(ed.labels, tissues), k)
                 for name, tissues in (("myo", [Tissue.LV_MYOCARDIUM]), ("lv", LV_CAVITY),
                                       ("rv", [Tissue.RV_BLOOD]))}
    lv = np.isin(ed.labels, LV_CAVITY)
    if lv.any():
        rows, cols = np.nonzero(lv)
        centre = np.array([(rows.mean() + 0.5) / k - 0.5, (cols.mean() + 0.5) / k - 0.5])
    else:
        centre = ed.pose.centre / np.asarray(plane.spacing)
    section = ed.section
    ips = []
    for phi in (section.phi_anterior, section.phi_inferior):
        r_epi = float(section.radii(np.array(phi)).epi)
        ips.append(ed.pose.point(phi, r_epi) / np.asarray(plane.spacing))
    return SliceRender(
        frames=render_frames(ed, motion, contraction, plane),
        displacement=displacement(motion, contraction, plane),
        myocardium=fractions["myo"] >= 0.5,
        lv_cavity=fractions["lv"] >= 0.5,
        rv_cavity=fractions["rv"] >= 0.5,
        lv_centre=centre,
        insertion_points=np.array(ips),
        motion=motion,
    )


@dataclass(frozen=True)
class PhantomCase:
    """A generated case.

    Attributes
    ----------
    seed : int
    config : PhantomConfig
    params : CaseParams
    pixels : numpy.ndarray
        ``[S, T, H, W]`` uint16 stored values, slices base to apex, phases by trigger time.
    truth : Truth
    """

    seed: int
    config: PhantomConfig
    params: CaseParams
    pixels: np.ndarray
    truth: Truth

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(S, T, H, W)."""
        s, t, h, w = self.pixels.shape
        return s, t, h, w


Progress = Callable[[int, int], None]


def generate_case(
    seed: int,
    config: PhantomConfig | None = None,
    *,
    snr: float | None | str = "sample",
    progress: Progress | None = None,
) -> PhantomCase:
    """Generate one phantom case, deterministic given ``seed``.

    Parameters
    ----------
    seed : int
        Seed of everything random in the case.
    config : PhantomConfig, optional
        Ranges of the random parameters.
    snr : float, None or "sample"
        LV-blood SNR; ``None`` renders without noise; ``"sample"`` draws it.
    progress : callable, optional
        Called with (slices done, slices) after each slice.

    Returns
    -------
    PhantomCase
    """
    config = config or PhantomConfig()
    seeds = np.random.SeedSequence(seed).spawn(3)
    params = sample_params(np.random.default_rng(seeds[0]), config)
    texture_rngs = [np.random.default_rng(s) for s in seeds[1].spawn(params.geometry.n_slices)]
    noise_rng = np.random.default_rng(seeds[2])
    geometry = params.geometry
    levels = slice_levels(geometry.n_slices)
    contraction = params.contraction()
    renders = []
    for s in range(geometry.n_slices):
        renders.append(render_slice(
            params, geometry.plane(s), levels[s], contraction, texture_rngs[s],
            supersample=config.supersample, through_plane=config.through_plane,
            slice_thickness=geometry.slice_thickness))
        if progress is not None:
            progress(s + 1, geometry.n_slices)
    noise = params.snr if snr == "sample" else snr
    magnitude = np.stack([
        acquire(r.frames, params.bias.field(geometry.plane(s).to_patient(
            *pixel_grid_mm(geometry.plane(s)))), noise, params.psf_sigma_px, noise_rng)
        for s, r in enumerate(renders)
    ])
    scale = min(params.stored_blood_value, 0.95 * MAX_STORED / float(magnitude.max()))
    pixels = np.clip(np.round(magnitude * scale), 0, MAX_STORED).astype(np.uint16)
    truth = build_truth(params, renders, levels)
    log.info("phantom case %d: %s, ED %d, ES %d, hypokinetic %s", seed, pixels.shape,
             truth.ed_phase, truth.es_phase, list(truth.hypokinetic_segments))
    return PhantomCase(seed, config, params, pixels, truth)


def build_truth(params: CaseParams, renders: list[SliceRender], levels: list[str | None]
                ) -> Truth:
    """Assemble the :class:`Truth` of a case from its rendered slices."""
    geometry = params.geometry
    u = np.stack([r.displacement for r in renders])
    myocardium = np.stack([r.myocardium for r in renders])
    centres = np.stack([r.lv_centre for r in renders])
    ips = np.stack([r.insertion_points for r in renders])
    labels = aha_label_map(centres, ips[:, 0], ips[:, 1], levels, myocardium, geometry.spacing)
    strain = compute_strain(u, geometry.spacing, centres, myocardium, params.trigger_times,
                            aha_labels=labels, ed_phase=params.ed_phase)
    contraction = params.contraction()
    return Truth(
        displacement=u,
        myocardium=myocardium,
        lv_cavity=np.stack([r.lv_cavity for r in renders]),
        rv_cavity=np.stack([r.rv_cavity for r in renders]),
        lv_centres=centres,
        insertion_points=ips,
        anterior_direction=geometry.plane(0).direction_in_slice(ANTERIOR),
        levels=tuple(levels),
        aha_labels=labels,
        hypokinetic_segments=params.hypokinetic,
        ed_phase=params.ed_phase,
        es_phase=int(np.argmax(contraction)),
        trigger_times=params.trigger_times,
        contraction=contraction,
        strain=strain,
    )
