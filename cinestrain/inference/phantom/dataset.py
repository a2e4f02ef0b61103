"""Training data: phantom cine slices rendered on the fly, directly on the model's grid.

Item ``i`` is one short-axis slice of a random case (seeded by ``(seed, i)``, so item
``i`` is always the same), rendered on a square ``grid_size`` grid of ``spacing_mm``
around the LV with the case's oblique orientation, over a whole R-R interval of
``phases`` frames, with the case's coil bias, point spread and Rician noise. Only the
slice that is used gets rendered (2x supersampled, one plane), which keeps a sample at a
few tens of milliseconds on one CPU core.

With ``anatomies=N`` the cases repeat their anatomy (case ``i % N``, rendered once and
kept in a small cache) while motion, phases, noise and bias stay new for every item.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cinestrain.inference.heart.aha import slice_levels
from cinestrain.inference.phantom.anatomy import EDSlice, render_ed
from cinestrain.inference.phantom.case import render_slice
from cinestrain.inference.phantom.geometry import SlicePlane
from cinestrain.inference.phantom.params import CaseParams, PhantomConfig, sample_params
from cinestrain.inference.phantom.render import acquire, pixel_grid_mm

log = logging.getLogger(__name__)


class PhantomDataset(Dataset):
    """Phantom cine slices with their exact truth, for training.

    Parameters
    ----------
    length : int
        Number of items.
    seed : int
        Base seed; item ``i`` uses ``(seed, i)``.
    grid_size : int
        Model grid pixels per side.
    spacing_mm : float
        Model grid spacing, mm.
    phases : tuple of int
        Range of the number of frames T (inclusive).
    config : PhantomConfig, optional
        Ranges of everything else (matrix and phase ranges are ignored).
    ed_phase : int or None
        ED phase index; ``None`` draws it (acquisitions starting late in the cycle).
    max_offset_mm : float
        Largest shift of the grid centre from the LV centre, mm.
    supersample : int
        In-plane supersampling of the anatomy.
    noise : bool
        Add Rician noise at the case's SNR.
    anatomies : int or None
        Repeat this many anatomies (cached ED renders); ``None``: a new one every item.
    cache_size : int
        Cached anatomies (per worker process).

    Notes
    -----
    An item is a dict: ``frames`` float32 ``[T, 1, H, W]`` (intensity / its 99.5th
    percentile), ``u`` float32 ``[T, 2, H, W]`` truth displacement in mm (DESIGN.md
    convention, ``u[ed_phase] = 0``), ``myocardium`` bool ``[H, W]`` (ED), ``ed_phase``
    int, ``spacing_mm`` float, ``lv_centre`` float32 ``[2]`` (pixels), ``level`` str.
    """

    def __init__(
        self,
        length: int = 100_000,
        *,
        seed: int = 0,
        grid_size: int = 96,
        spacing_mm: float = 1.5,
        phases: tuple[int, int] = (8, 30),
        config: PhantomConfig | None = None,
        ed_phase: int | None = 0,
        max_offset_mm: float = 8.0,
        supersample: int = 2,
        noise: bool = True,
        anatomies: int | None = None,
        cache_size: int = 64,
    ) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        if grid_size < 16 or spacing_mm <= 0:
            raise ValueError(f"grid {grid_size} x {spacing_mm} mm is too small")
        if not 4 <= phases[0] <= phases[1]:
            raise ValueError(f"phases must be a range within [4, ...], got {phases}")
        if anatomies is not None and anatomies < 1:
            raise ValueError(f"anatomies must be >= 1 or None, got {anatomies}")
        self.length = length
        self.seed = seed
        self.grid_size = grid_size
        self.spacing_mm = float(spacing_mm)
        self.phases = phases
        self.config = config or PhantomConfig()
        self.ed_phase = ed_phase
        self.max_offset_mm = max_offset_mm
        self.supersample = supersample
        self.noise = noise
        self.anatomies = anatomies
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[int, int], tuple[CaseParams, SlicePlane, EDSlice]] = (
            OrderedDict())

    def __len__(self) -> int:
        return self.length

    def _plane(self, params: CaseParams, s: int, rng: np.random.Generator) -> SlicePlane:
        """The model grid on slice ``s``, centred near the LV."""
        native = params.geometry.plane(s)
        centre3 = params.heart.base + params.heart.axis * np.dot(
            native.origin - params.heart.base, native.normal) / np.dot(
            params.heart.axis, native.normal)
        centre3 = centre3 + rng.uniform(-1, 1) * self.max_offset_mm * native.row_dir \
            + rng.uniform(-1, 1) * self.max_offset_mm * native.col_dir
        half = (self.grid_size - 1) / 2 * self.spacing_mm
        origin = centre3 - half * native.row_dir - half * native.col_dir
        return SlicePlane(origin, native.row_dir, native.col_dir,
                          (self.spacing_mm, self.spacing_mm), (self.grid_size, self.grid_size))

    def _anatomy(self, index: int, rng: np.random.Generator
                 ) -> tuple[CaseParams, int, SlicePlane, EDSlice | None]:
        if self.anatomies is None:
            params = sample_params(rng, self.config)
            s = int(rng.integers(params.geometry.n_slices))
            return params, s, self._plane(params, s, rng), None
        case = index % self.anatomies
        arng = np.random.default_rng([self.seed, case, 7])
        params = sample_params(arng, self.config)
        s = int(rng.integers(params.geometry.n_slices))
        key = (case, s)
        if key not in self._cache:
            plane = self._plane(params, s, arng)
            ed = render_ed(params.heart, params.body, params.contrast, plane,
                           supersample=self.supersample,
                           slice_thickness=params.geometry.slice_thickness, through_plane=1,
                           rng=arng)
            self._cache[key] = (params, plane, ed)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        cached, plane, ed = self._cache[key]
        # new motion and timing for this item, the anatomy kept
        fresh = sample_params(rng, self.config)
        params = CaseParams(**{**cached.__dict__, "motion": fresh.motion, "snr": fresh.snr,
                               "bias": fresh.bias, "psf_sigma_px": fresh.psf_sigma_px,
                               "hypokinetic": fresh.hypokinetic})
        return params, s, plane, ed

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        params, s, plane, ed = self._anatomy(index, rng)
        n_phases = int(rng.integers(self.phases[0], self.phases[1] + 1))
        ed_phase = (self.ed_phase if self.ed_phase is not None
                    else int(rng.integers(n_phases)))
        ed_phase = min(ed_phase, n_phases - 1)
        fractions = np.mod(np.arange(n_phases) - ed_phase, n_phases) / n_phases
        contraction = params.motion.timecourse(fractions)
        level = slice_levels(params.geometry.n_slices)[s]
        rendered = render_slice(params, plane, level, contraction, rng,
                                supersample=self.supersample, through_plane=1,
                                slice_thickness=params.geometry.slice_thickness, ed=ed)
        bias = params.bias.field(plane.to_patient(*pixel_grid_mm(plane)))
        frames = acquire(rendered.frames, bias, params.snr if self.noise else None,
                         params.psf_sigma_px, rng)
        frames = frames / max(float(np.percentile(frames, 99.5)), 1e-6)
        return {
            "frames": torch.from_numpy(np.ascontiguousarray(frames[:, None], np.float32)),
            "u": torch.from_numpy(rendered.displacement),
            "myocardium": torch.from_numpy(rendered.myocardium),
            "ed_phase": ed_phase,
            "spacing_mm": self.spacing_mm,
            "lv_centre": torch.from_numpy(rendered.lv_centre.astype(np.float32)),
            "level": level or "",
        }
