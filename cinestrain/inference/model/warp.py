"""Warping images and displacement fields; composing fields.

Our fields are in *pixels* here, component 0 along rows and component 1 along columns
(DESIGN.md § Displacement convention). ``torch.nn.functional.grid_sample`` wants x
(columns) first, normalised to [-1, 1]: that swap lives in :func:`sampling_grid` and
nowhere else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sampling_grid(disp: Tensor) -> Tensor:
    """The ``grid_sample`` grid that samples at ``X + disp(X)``.

    Parameters
    ----------
    disp
        ``(B, 2, H, W)`` displacement in pixels (row, column).

    Returns
    -------
    Tensor
        ``(B, H, W, 2)`` grid, (x, y) order, ``align_corners=True`` normalisation.
    """
    if disp.ndim != 4 or disp.shape[1] != 2:
        raise ValueError(f"disp must be (B, 2, H, W), got {tuple(disp.shape)}")
    _, _, h, w = disp.shape
    rows = torch.arange(h, dtype=disp.dtype, device=disp.device).view(1, h, 1)
    cols = torch.arange(w, dtype=disp.dtype, device=disp.device).view(1, 1, w)
    y = (rows + disp[:, 0]) * (2.0 / max(h - 1, 1)) - 1.0
    x = (cols + disp[:, 1]) * (2.0 / max(w - 1, 1)) - 1.0
    return torch.stack((x, y), dim=-1)


def warp_image(image: Tensor, disp: Tensor, padding_mode: str = "border") -> Tensor:
    """Sample ``image`` at ``X + disp(X)``: the moving image brought onto the fixed grid.

    With the Lagrangian ``u_t`` of DESIGN.md, ``warp_image(I_t, u_t) ~ I_ED``.

    Parameters
    ----------
    image
        ``(B, C, H, W)``.
    disp
        ``(B, 2, H, W)`` in pixels (row, column).
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got {tuple(image.shape)}")
    if image.shape[0] != disp.shape[0] or image.shape[-2:] != disp.shape[-2:]:
        raise ValueError(
            f"image {tuple(image.shape)} and disp {tuple(disp.shape)} disagree in B, H or W"
        )
    return F.grid_sample(
        image, sampling_grid(disp), mode="bilinear", padding_mode=padding_mode, align_corners=True
    )


def compose_fields(first: Tensor, second: Tensor) -> Tensor:
    """The field of "``first``, then ``second``": ``c(X) = first(X) + second(X + first(X))``.

    ``first`` maps the reference grid to frame a, ``second`` maps frame a's grid to frame b;
    the result maps the reference grid to frame b. Composition by warping, not summing.
    Both ``(B, 2, H, W)`` in pixels.
    """
    return first + warp_image(second, first, padding_mode="border")


def compose_sequence(steps: Tensor) -> Tensor:
    """Accumulate consecutive fields into reference-based ones.

    Parameters
    ----------
    steps
        ``(B, P, 2, H, W)``: step ``p`` maps frame ``p``'s grid to frame ``p + 1``.

    Returns
    -------
    Tensor
        ``(B, P, 2, H, W)``: entry ``p`` maps frame 0's grid to frame ``p + 1``.
    """
    total = steps[:, 0]
    out = [total]
    for p in range(1, steps.shape[1]):
        total = compose_fields(total, steps[:, p])
        out.append(total)
    return torch.stack(out, dim=1)
