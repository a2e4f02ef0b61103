"""Training data from real cine: unlabelled slices for self-supervised adaptation.

Real scans have no motion truth, but the unsupervised losses of :mod:`inference.training.train`
(local NCC of the warped frames, smoothness, composition consistency) need none, so real
cine can teach the model what real images look like. A :class:`RealCineStack` is a stack
prepared as the product prepares it (ED phase, LV-centred crop centres); item ``i`` of a
:class:`RealCineDataset` is one slice of one stack, picked and jittered by ``(seed, i)``,
on the model grid exactly as :func:`inference.model.estimate.estimate_motion` feeds the model.
:class:`MixedDataset` interleaves such items with phantom ones, so the model keeps its
supervised footing while it adapts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from cinestrain.inference.heart.centres import normalise_intensity
from cinestrain.inference.model.estimate import model_frames
from cinestrain.inference.model.grid import ModelGrid


@dataclass(frozen=True)
class RealCineStack:
    """One real cine stack, ready for training.

    Attributes
    ----------
    pixels
        ``(S, T, H, W)`` cine, phases in acquisition order.
    pixel_spacing
        (row, column) spacing, mm.
    ed_phase
        End-diastolic phase index.
    centres
        ``(S, 2)`` crop centres (pixels), as the product centres its crop (on the LV).
    name
        For logs and provenance (no patient data: a folder or series name).
    """

    pixels: np.ndarray
    pixel_spacing: tuple[float, float]
    ed_phase: int
    centres: np.ndarray
    name: str

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.pixels.shape[1] < 2:
            raise ValueError(f"pixels must be (S, T>=2, H, W), got {self.pixels.shape}")
        if not 0 <= self.ed_phase < self.pixels.shape[1]:
            raise ValueError(f"ed_phase {self.ed_phase} outside 0..{self.pixels.shape[1] - 1}")
        if self.centres.shape != (self.pixels.shape[0], 2):
            raise ValueError(f"centres must be (S, 2), got {self.centres.shape}")


class RealCineDataset(Dataset):
    """Unlabelled real cine slices on the model grid (``supervised`` is False).

    Parameters
    ----------
    stacks
        The stacks to draw from (each slice equally likely).
    length
        Number of items.
    seed
        Item ``i`` is drawn with ``(seed, i)``.
    grid_size, spacing_mm
        The model grid.
    max_offset_mm
        Largest random shift of the crop centre, mm (as the phantom data jitters it).
    """

    def __init__(
        self,
        stacks: list[RealCineStack],
        length: int,
        seed: int = 0,
        grid_size: int = 64,
        spacing_mm: float = 2.0,
        max_offset_mm: float = 6.0,
    ) -> None:
        if not stacks:
            raise ValueError("no real cine stacks given")
        self.stacks, self.length, self.seed = stacks, length, seed
        self.grid_size, self.spacing_mm, self.max_offset_mm = grid_size, spacing_mm, max_offset_mm
        self.slices = [(k, s) for k, st in enumerate(stacks) for s in range(st.pixels.shape[0])]
        self.normalised = [normalise_intensity(st.pixels) for st in stacks]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, index, 1])
        k, s = self.slices[int(rng.integers(len(self.slices)))]
        stack = self.stacks[k]
        offset = rng.uniform(-self.max_offset_mm, self.max_offset_mm, 2) / np.asarray(
            stack.pixel_spacing
        )
        grid = ModelGrid(
            stack.centres[s : s + 1] + offset,
            stack.pixel_spacing,
            stack.pixels.shape[-2:],
            self.grid_size,
            self.spacing_mm,
        )
        frames = model_frames(self.normalised[k][s : s + 1], grid)[0]  # T, 1, G, G
        g = self.grid_size
        return {
            "frames": frames,
            "u": torch.zeros(frames.shape[0], 2, g, g),
            "myocardium": torch.zeros(g, g, dtype=torch.bool),
            "ed_phase": stack.ed_phase,
            "spacing_mm": self.spacing_mm,
            "supervised": False,
        }


class MixedDataset(Dataset):
    """Item ``i`` from ``real`` with probability ``fraction`` (by ``(seed, i)``), else from
    ``phantom``; both are indexed by ``i`` so the run stays deterministic."""

    def __init__(self, phantom: Dataset, real: Dataset, fraction: float, seed: int = 0) -> None:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}")
        self.phantom, self.real, self.fraction, self.seed = phantom, real, fraction, seed

    def __len__(self) -> int:
        return len(self.phantom)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if np.random.default_rng([self.seed, index, 2]).random() < self.fraction:
            return self.real[index]
        return self.phantom[index]
