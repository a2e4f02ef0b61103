"""From a native cine stack to the model's physical grid and back.

- :func:`normalise_intensity`: one scale per series (robust high percentile -> 1).
- :func:`find_heart_centres`: the heart from the temporal variance of the cine (the heart
  is what moves), one in-plane centre per slice.
- :class:`ModelGrid`: a square grid of fixed mm spacing around each slice's centre;
  :meth:`ModelGrid.to_model` resamples frames onto it and :meth:`ModelGrid.to_native`
  brings displacement fields (mm) back onto each slice's native ED grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def normalise_intensity(pixels: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Scale a whole series so that its ``percentile`` intensity is 1 (float32)."""
    scale = float(np.percentile(pixels, percentile))
    if not np.isfinite(scale) or scale <= 0:
        scale = float(pixels.max()) or 1.0
    return (pixels / scale).astype(np.float32)


def find_heart_centres(
    pixels: np.ndarray, pixel_spacing: tuple[float, float], search_mm: float = 40.0
) -> np.ndarray:
    """In-plane heart centre of every slice, ``(S, 2)`` in pixels (row, column).

    The temporal standard deviation of the cine, smoothed over ~10 mm, peaks on the moving
    LV blood-pool border. The stack's centre is the peak of the sum over slices; each
    slice's centre is its own peak within ``search_mm`` of that, then smoothed across
    slices (the LV axis is straight and oblique).

    Parameters
    ----------
    pixels
        ``(S, T, H, W)`` cine.
    pixel_spacing
        (row, column) spacing in mm.
    """
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (S, T, H, W), got shape {pixels.shape}")
    sigma = (10.0 / pixel_spacing[0], 10.0 / pixel_spacing[1])
    std = pixels.std(axis=1)
    smooth = np.stack([ndimage.gaussian_filter(s, sigma) for s in std])
    # Penalise the image border, where wrap-around and coil artefacts live.
    s, h, w = smooth.shape
    rows = np.hanning(h)[:, None] ** 0.5
    cols = np.hanning(w)[None, :] ** 0.5
    total = smooth.sum(axis=0) * rows * cols
    centre = np.array(np.unravel_index(np.argmax(total), total.shape), dtype=float)
    rr, cc = np.mgrid[0:h, 0:w]
    dist_mm = np.hypot((rr - centre[0]) * pixel_spacing[0], (cc - centre[1]) * pixel_spacing[1])
    window = dist_mm <= search_mm
    centres = np.empty((s, 2))
    for k in range(s):
        weights = np.where(window, smooth[k], 0.0)
        weights = np.clip(weights - np.percentile(weights[window], 75), 0, None)
        if weights.sum() <= 0:
            centres[k] = centre
        else:
            centres[k] = [
                (weights * rr).sum() / weights.sum(),
                (weights * cc).sum() / weights.sum(),
            ]
    if s >= 3:
        centres = ndimage.median_filter(centres, size=(3, 1), mode="nearest")
    return centres


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


def motion_centres(coarse: np.ndarray, lv_centres: np.ndarray | None) -> np.ndarray:
    """Centres of the model grid: the LV centre where the slice has one, else the nearest
    slice's, else the coarse heart centre.

    The temporal-variance centre (:func:`find_heart_centres`) can sit between the LV and
    the RV; the LV blood-pool centroid is what the model was trained around.

    Parameters
    ----------
    coarse
        ``(S, 2)`` heart centres, pixels.
    lv_centres
        ``(S, 2)`` LV centres, NaN for slices without an LV ring (or ``None``).
    """
    if lv_centres is None:
        return coarse
    lv_centres = np.asarray(lv_centres, dtype=float)
    valid = np.flatnonzero(np.all(np.isfinite(lv_centres), axis=1))
    if valid.size == 0:
        return coarse
    nearest = valid[np.abs(np.arange(len(lv_centres))[:, None] - valid[None, :]).argmin(axis=1)]
    return lv_centres[nearest]
