"""The Lagrangian displacement of a cine stack: preprocessing, model, back to native grid.

This is the one entry point the rest of the product calls; it works on numpy arrays and
geometry only. The result follows DESIGN.md § Displacement convention: ``u[S, T, 2, H, W]``
in mm on each slice's ED grid, component 0 along rows, ``u[:, ed_phase] = 0``, phases in
acquisition order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from inference.model import MotionModel
from inference.pairing import cycle_order
from inference.preprocess import ModelGrid, find_heart_centres, normalise_intensity

log = logging.getLogger(__name__)

#: intensity percentile of each slice's model-grid crop that is scaled to 1 (as in training)
CROP_PERCENTILE = 99.5

#: called with (slices done, slices in all) after each batch
Progress = Callable[[int, int], None]


def model_frames(norm: np.ndarray, grid: ModelGrid) -> torch.Tensor:
    """``(S, T, H, W)`` normalised cine -> ``(S, T, 1, G, G)`` model input.

    Each slice's crop is scaled as in training: its 99.5th percentile -> 1.
    """
    frames = grid.to_model(norm)
    scale = torch.quantile(frames.flatten(1), CROP_PERCENTILE / 100, dim=1).clamp_min(1e-6)
    return frames / scale.view(-1, 1, 1, 1, 1)


def estimate_motion(
    pixels: np.ndarray,
    pixel_spacing: tuple[float, float],
    ed_phase: int,
    model: MotionModel,
    *,
    centres: np.ndarray | None = None,
    batch_slices: int = 4,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> np.ndarray:
    """Displacement of every phase relative to ED, by the learned model.

    Parameters
    ----------
    pixels
        ``(S, T, H, W)`` cine, phases in acquisition order.
    pixel_spacing
        (row, column) spacing in mm.
    ed_phase
        Index of the end-diastolic phase.
    model
        A :class:`MotionModel` (see :func:`inference.checkpoint.load_model`).
    centres
        ``(S, 2)`` in-plane heart centres (pixels); found from the cine when ``None``.
    batch_slices
        Slices processed together.

    Returns
    -------
    np.ndarray
        ``(S, T, 2, H, W)`` float32 displacement in mm.
    """
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (S, T, H, W), got shape {pixels.shape}")
    s, t, h, w = pixels.shape
    if t < 2:
        raise ValueError(f"a cine needs at least 2 phases, got {t}")
    norm = normalise_intensity(pixels)
    if centres is None:
        centres = find_heart_centres(norm, pixel_spacing)
    cfg = model.config
    grid = ModelGrid(centres, tuple(pixel_spacing), (h, w), cfg.grid_size, cfg.spacing_mm)
    order = cycle_order(t, ed_phase)
    frames = model_frames(norm[:, order], grid)
    model = model.to(device)
    out = []
    with torch.inference_mode():
        for start in range(0, s, batch_slices):
            batch = frames[start : start + batch_slices].to(device)
            out.append(model.track(batch)[-1].cpu() * cfg.spacing_mm)
            if progress is not None:
                progress(min(start + batch_slices, s), s)
    u_cycle = torch.cat(out)
    u = torch.empty_like(u_cycle)
    u[:, order] = u_cycle
    native = grid.to_native(u)
    native[:, ed_phase] = 0.0
    log.debug("motion: %d slices x %d phases, max |u| %.1f mm", s, t, np.abs(native).max())
    return native.astype(np.float32)
