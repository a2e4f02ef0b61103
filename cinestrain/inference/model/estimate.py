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

from cinestrain.inference.heart.centres import find_heart_centres, normalise_intensity
from cinestrain.inference.model.grid import ModelGrid
from cinestrain.inference.model.network import MotionModel
from cinestrain.inference.model.pairing import cycle_order
from cinestrain.inference.model.settings import MotionSettings

log = logging.getLogger(__name__)

#: intensity percentile of each slice's model-grid crop that is scaled to 1 (as in training)
CROP_PERCENTILE = 99.5

#: called with (slice passes done, slice passes in all) after each batch
Progress = Callable[[int, int], None]


def resolve_device(device: str) -> torch.device:
    """``auto`` means the GPU when one is present."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def model_frames(norm: np.ndarray, grid: ModelGrid, shifts_mm: np.ndarray | None = None
                 ) -> torch.Tensor:
    """``(S, T, H, W)`` normalised cine -> ``(S, T, 1, G, G)`` model input.

    Each slice's crop is scaled as in training: its 99.5th percentile -> 1. ``shifts_mm``
    moves each phase's crop (see :meth:`ModelGrid.to_model`).
    """
    frames = grid.to_model(norm, shifts_mm)
    scale = torch.quantile(frames.flatten(1), CROP_PERCENTILE / 100, dim=1).clamp_min(1e-6)
    return frames / scale.view(-1, 1, 1, 1, 1)


def mean_motion(u_mm: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """``(S, T, 2)`` weighted mean of ``(S, T, 2, G, G)`` fields over ``(S, G, G)`` weights
    (zero on slices whose weights are all zero)."""
    total = weights.sum(dim=(1, 2)).clamp_min(1e-6).view(-1, 1, 1)
    mean = (u_mm * weights[:, None, None]).sum(dim=(3, 4)) / total
    return mean.double().numpy()


def estimate_motion(
    pixels: np.ndarray,
    pixel_spacing: tuple[float, float],
    ed_phase: int,
    model: MotionModel,
    settings: MotionSettings,
    *,
    centres: np.ndarray | None = None,
    follow: np.ndarray | None = None,
    batch_slices: int = 4,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
) -> np.ndarray:
    """Displacement of every phase relative to ED, by the learned model.

    Why re-centre: on a smooth wall the images show the wall's motion across itself but
    hardly along itself (the aperture problem), so a whole-heart shift reaches the model
    mostly as its radial part, and the missing tangential part varies round the ring:
    it reads as segmental circumferential strain that is not there. The mean motion of
    the ``follow`` tissue (the ED myocardium) is a rigid shift the images do show; moving
    each phase's crop by it and running the model again leaves the model only the motion
    relative to the moving heart. Each round costs one more pass of the model.

    Parameters
    ----------
    pixels
        ``(S, T, H, W)`` cine, phases in acquisition order.
    pixel_spacing
        (row, column) spacing in mm.
    ed_phase
        Index of the end-diastolic phase.
    model
        A :class:`MotionModel` (see :func:`inference.model.checkpoint.load_model`).
    settings
        How the model is applied: pairing, passes, re-centring rounds.
    centres
        ``(S, 2)`` in-plane heart centres (pixels); found from the cine when ``None``.
    follow
        ``(S, H, W)`` bool ED mask (the myocardium) whose mean motion the crop follows;
        slices where it is empty keep a fixed crop. ``None``: a fixed crop throughout
        (``settings.recentre_rounds`` is then not used).
    batch_slices
        Slices processed together.
    progress
        Called with (slice passes done, slice passes in all).

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
    if follow is not None and follow.shape != (s, h, w):
        raise ValueError(f"follow must be {(s, h, w)}, got {follow.shape}")
    norm = normalise_intensity(pixels)
    if centres is None:
        centres = find_heart_centres(norm, pixel_spacing)
    cfg = model.config
    grid = ModelGrid(centres, tuple(pixel_spacing), (h, w), cfg.grid_size, cfg.spacing_mm)
    order = cycle_order(t, ed_phase)
    cycle = norm[:, order]
    rounds = 0 if follow is None else settings.recentre_rounds
    model = model.to(device)
    shifts = np.zeros((s, t, 2))
    if rounds:
        weights = grid.to_model(follow[:, None].astype(np.float32))[:, 0, 0]
    for done in range(rounds + 1):
        frames = model_frames(cycle, grid, shifts if done else None)
        u_cycle = _track(model, settings, frames, batch_slices, device, progress, done * s,
                         (rounds + 1) * s)
        u_cycle = u_cycle + torch.from_numpy(shifts).float()[..., None, None]
        if done < rounds:
            shifts = mean_motion(u_cycle, weights)
            shifts[:, 0] = 0.0  # ED is the reference
            log.debug("re-centring round %d: largest shift %.2f mm", done + 1,
                      float(np.abs(shifts).max()))
    u = torch.empty_like(u_cycle)
    u[:, order] = u_cycle
    native = grid.to_native(u)
    native[:, ed_phase] = 0.0
    log.debug("motion: %d slices x %d phases, max |u| %.1f mm", s, t, np.abs(native).max())
    return native.astype(np.float32)


def _track(model: MotionModel, settings: MotionSettings, frames: torch.Tensor,
           batch_slices: int,
           device: str | torch.device, progress: Progress | None, done: int, total: int
           ) -> torch.Tensor:
    """``(S, T, 2, G, G)`` mm: the model's ED-referenced fields of a cycle, in batches."""
    s = frames.shape[0]
    out = []
    with torch.inference_mode():
        for start in range(0, s, batch_slices):
            batch = frames[start : start + batch_slices].to(device)
            fields = model.track(batch, settings.pairing, settings.passes)[-1]
            out.append(fields.cpu() * model.config.spacing_mm)
            if progress is not None:
                progress(done + min(start + batch_slices, s), total)
    return torch.cat(out)
