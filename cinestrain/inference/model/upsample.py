"""Learned convex upsampling of a coarse motion field (RAFT's upsampling).

The decoder works at stride 2 of the model grid (4 mm for the shipped 2 mm grid), which
is coarser than a myocardial wall is thick. Bilinear upsampling then smears the change of
displacement across the wall, the very gradient radial strain is made of. Here each
fine pixel is instead a convex combination of its 3 x 3 coarse neighbours with weights
predicted from the decoder's features, so the field can keep an edge where the image has
one. The weights start as exactly those of bilinear upsampling, so a model trained with
bilinear upsampling keeps its behaviour when it is given this head and fine-tuned.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

Upsampling = Literal["bilinear", "convex"]
UPSAMPLINGS: tuple[Upsampling, ...] = ("bilinear", "convex")

#: logit of a neighbour that bilinear upsampling does not use (its softmax weight ~1e-13)
_UNUSED_LOGIT = -30.0


def bilinear_logits(factor: int) -> Tensor:
    """Mask logits ``(9, factor, factor)`` whose softmax is bilinear upsampling.

    Entry ``[k, a, b]`` weighs neighbour ``k`` (row-major over offsets -1, 0, 1) of the
    coarse pixel for fine sub-pixel ``(a, b)``, as ``F.interpolate(...,
    mode="bilinear", align_corners=False)`` weighs it.
    """
    offsets = torch.arange(-1, 2, dtype=torch.float64)
    centres = (torch.arange(factor, dtype=torch.float64) + 0.5) / factor - 0.5
    w1d = (1 - (offsets[:, None] - centres[None, :]).abs()).clamp_min(0)  # (3, factor)
    w2d = w1d[:, None, :, None] * w1d[None, :, None, :]  # (3, 3, factor, factor)
    logits = torch.where(w2d > 0, w2d.clamp_min(1e-30).log(), torch.tensor(_UNUSED_LOGIT))
    return logits.reshape(9, factor, factor).float()


class ConvexUpsampler(nn.Module):
    """Coarse field ``(N, 2, h, w)`` + features -> field ``(N, 2, factor h, factor w)``.

    Displacements are in pixels of their own grid, so they are scaled by ``factor``.
    """

    def __init__(self, in_channels: int, factor: int = 2) -> None:
        super().__init__()
        if factor < 2:
            raise ValueError(f"factor must be >= 2, got {factor}")
        self.factor = factor
        self.mask = nn.Conv2d(in_channels, 9 * factor * factor, 3, padding=1)
        nn.init.zeros_(self.mask.weight)
        with torch.no_grad():
            self.mask.bias.copy_(bilinear_logits(factor).flatten())

    def forward(self, flow: Tensor, feats: Tensor) -> Tensor:
        n, c, h, w = flow.shape
        f = self.factor
        weights = self.mask(feats).view(n, 1, 9, f, f, h, w).softmax(dim=2)
        # Edge pixels repeat, as bilinear interpolation clamps at the border.
        padded = F.pad(f * flow, (1, 1, 1, 1), mode="replicate")
        patches = F.unfold(padded, 3).view(n, c, 9, 1, 1, h, w)
        fine = (weights * patches).sum(dim=2)  # n, c, f, f, h, w
        return fine.permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * f, w * f)

