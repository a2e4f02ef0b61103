"""Second stage (patent claim 7): all the motion fields of a cycle in, corrected ones out.

A small space-time convolutional network sees the fields of every pair at once (at half
resolution, for cost) and adds a correction; its last layer starts at zero, so an
untrained refiner is the identity.
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class CycleRefiner(nn.Module):
    """Residual 3D (time x rows x columns) convolutions over the cycle's fields."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(2, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv3d(width, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv3d(width, 2, 3, padding=1),
        )
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, fields: Tensor) -> Tensor:
        """``(B, P, 2, H, W)`` fields (pixels) -> corrected fields, same shape."""
        b, p, _, h, w = fields.shape
        half = F.interpolate(fields.flatten(0, 1), scale_factor=0.5, mode="bilinear")
        x = half.view(b, p, 2, *half.shape[-2:]).permute(0, 2, 1, 3, 4)  # B, 2, P, h, w
        corr = self.body(x).permute(0, 2, 1, 3, 4).flatten(0, 1)
        corr = F.interpolate(corr, size=(h, w), mode="bilinear", align_corners=False)
        return fields + corr.view(b, p, 2, h, w)
