"""Training losses: image similarity, smoothness, composition consistency, end-point error.

All fields are ``(..., 2, H, W)`` tensors in the units stated per function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from cinestrain.inference.model.warp import compose_sequence


def local_ncc(fixed: Tensor, warped: Tensor, window: int = 9, eps: float = 1e-5) -> Tensor:
    """``1 - mean local normalised cross-correlation`` of ``(N, 1, H, W)`` images.

    0 for images that agree up to a local affine change of intensity; up to 2 otherwise.
    """
    if fixed.shape != warped.shape:
        raise ValueError(f"shapes differ: {tuple(fixed.shape)} vs {tuple(warped.shape)}")
    pad = window // 2

    def box(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, window, stride=1, padding=pad, count_include_pad=False)

    mu_f, mu_w = box(fixed), box(warped)
    var_f = box(fixed * fixed) - mu_f**2
    var_w = box(warped * warped) - mu_w**2
    cov = box(fixed * warped) - mu_f * mu_w
    ncc = cov / torch.sqrt(var_f.clamp_min(0) * var_w.clamp_min(0) + eps)
    return 1 - ncc.mean()


def mse(fixed: Tensor, warped: Tensor) -> Tensor:
    """Mean squared intensity difference."""
    return F.mse_loss(warped, fixed)


def smoothness(field: Tensor) -> Tensor:
    """Mean squared spatial gradient of a ``(..., 2, H, W)`` field (its own units / pixel)."""
    d_row = field[..., 1:, :] - field[..., :-1, :]
    d_col = field[..., :, 1:] - field[..., :, :-1]
    return d_row.square().mean() + d_col.square().mean()


def composition_consistency(steps: Tensor, direct: Tensor) -> Tensor:
    """Consecutive fields composed along the cycle against the direct (anchored) ones.

    ``steps`` ``(B, P, 2, H, W)``: step p maps frame p's grid to frame p+1 (cycle order);
    ``direct`` ``(B, P, 2, H, W)``: entry p maps frame 0's grid to frame p+1. Both in
    pixels. Returns the mean end-point distance (pixels) between 0->1->...->k and 0->k.
    """
    if steps.shape != direct.shape:
        raise ValueError(f"shapes differ: {tuple(steps.shape)} vs {tuple(direct.shape)}")
    return end_point_error(compose_sequence(steps), direct)


def end_point_error(pred: Tensor, truth: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean Euclidean distance between ``(..., 2, H, W)`` fields, optionally weighted.

    ``weight`` broadcasts against ``(..., H, W)``; the mean is weighted by it.
    """
    epe = torch.linalg.vector_norm(pred - truth, dim=-3)
    if weight is None:
        return epe.mean()
    weight = weight.expand_as(epe)
    return (epe * weight).sum() / weight.sum().clamp_min(1e-6)


def gradient_error(pred: Tensor, truth: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error of the spatial derivatives of ``(..., 2, H, W)`` fields.

    Both fields in pixels: their finite differences are then the displacement gradient
    (``F - I``), whose error is the error of strain. Only differences with both pixels
    inside ``mask`` ``(H, W)`` count (strain is read in the myocardium; its edges are
    where the motion of wall and blood part). Summed over the four components.
    """
    mask = mask.float()
    total = pred.new_zeros(())
    count = pred.new_zeros(())
    for dim in (-2, -1):
        both = mask.narrow(dim, 1, mask.shape[dim] - 1) * mask.narrow(dim, 0, mask.shape[dim] - 1)
        diff = (pred.diff(dim=dim) - truth.diff(dim=dim)).abs().sum(dim=-3)  # (..., h, w)
        both = both.expand_as(diff)
        total = total + (diff * both).sum()
        count = count + both.sum()
    return total / count.clamp_min(1.0)
