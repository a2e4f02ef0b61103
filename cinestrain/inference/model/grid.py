"""The motion model's physical grid around the heart, and back.

:class:`ModelGrid`: a square grid of fixed mm spacing around each slice's centre;
:meth:`ModelGrid.to_model` resamples frames onto it and :meth:`ModelGrid.to_native`
brings displacement fields (mm) back onto each slice's native ED grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


@dataclass(frozen=True)
class ModelGrid:
    """The model's square grid around each slice's centre.

    Attributes
    ----------
    centres
        ``(S, 2)`` grid centre per slice, native pixels (row, column).
    native_spacing
        (row, column) native pixel spacing, mm.
    native_shape
        (H, W) native matrix.
    size
        Model grid pixels per side.
    spacing_mm
        Model grid spacing, mm.
    """

    centres: np.ndarray
    native_spacing: tuple[float, float]
    native_shape: tuple[int, int]
    size: int
    spacing_mm: float

    def _model_to_native(self, shifts_mm: np.ndarray | None = None) -> torch.Tensor:
        """``(S, G, G, 2)`` grid_sample grid: model pixel -> native normalised (x, y).

        With ``shifts_mm`` (``(S, T, 2)``, row and column mm) the grid of slice ``s`` and
        phase ``t`` is moved by ``shifts_mm[s, t]``: ``(S * T, G, G, 2)``.
        """
        g = (torch.arange(self.size, dtype=torch.float64) - (self.size - 1) / 2) * self.spacing_mm
        h, w = self.native_shape
        offsets = np.zeros((len(self.centres), 1, 2)) if shifts_mm is None else shifts_mm
        grids = []
        for (cr, cc), slice_offsets in zip(self.centres, offsets, strict=True):
            for dr, dc in slice_offsets:
                rows = cr + (g[:, None] + dr) / self.native_spacing[0]
                cols = cc + (g[None, :] + dc) / self.native_spacing[1]
                y = rows.expand(self.size, self.size) * 2 / (h - 1) - 1
                x = cols.expand(self.size, self.size) * 2 / (w - 1) - 1
                grids.append(torch.stack((x, y), dim=-1))
        return torch.stack(grids).float()

    def _native_to_model(self) -> torch.Tensor:
        """``(S, H, W, 2)`` grid_sample grid: native pixel -> model normalised (x, y)."""
        h, w = self.native_shape
        half = (self.size - 1) / 2
        grids = []
        for cr, cc in self.centres:
            rows = (torch.arange(h, dtype=torch.float64) - cr) * self.native_spacing[0]
            cols = (torch.arange(w, dtype=torch.float64) - cc) * self.native_spacing[1]
            y = (rows[:, None] / self.spacing_mm + half) / half - 1
            x = (cols[None, :] / self.spacing_mm + half) / half - 1
            grids.append(torch.stack((x.expand(h, w), y.expand(h, w)), dim=-1))
        return torch.stack(grids).float()

    def to_model(self, frames: np.ndarray, shifts_mm: np.ndarray | None = None) -> torch.Tensor:
        """``(S, T, H, W)`` native frames -> ``(S, T, 1, G, G)`` on the model grid.

        Frames are low-pass filtered first when the model grid is coarser (no aliasing).
        ``shifts_mm`` (``(S, T, 2)``, row and column mm) moves the grid of each phase with
        the heart: phase ``t`` is sampled at the model grid plus ``shifts_mm[:, t]``.
        """
        s, t, h, w = frames.shape
        if shifts_mm is not None and shifts_mm.shape != (s, t, 2):
            raise ValueError(f"shifts_mm must be {(s, t, 2)}, got {shifts_mm.shape}")
        sig = [
            0.5 * np.sqrt(max((self.spacing_mm / sp) ** 2 - 1, 0.0)) for sp in self.native_spacing
        ]
        if max(sig) > 0.1:
            frames = ndimage.gaussian_filter(frames, sigma=(0, 0, sig[0], sig[1]))
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
        grid = self._model_to_native(shifts_mm)
        if shifts_mm is not None:  # one grid per phase: phases become the batch
            x = x.reshape(s * t, 1, h, w)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.view(s, t, 1, self.size, self.size)

    def to_native(self, disp_mm: torch.Tensor) -> np.ndarray:
        """``(S, T, 2, G, G)`` displacement (mm) -> ``(S, T, 2, H, W)`` on the native grid.

        Millimetres are the same on both grids, so only the sampling position changes;
        outside the model grid the displacement is zero.
        """
        s, t = disp_mm.shape[:2]
        grid = self._native_to_model()
        h, w = self.native_shape
        x = disp_mm.reshape(s, t * 2, self.size, self.size).float()
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.view(s, t, 2, h, w).numpy()
