"""The twin (Siamese) encoder: one CNN, shared weights, multi-scale features per frame.

Each frame is encoded once; every pair that contains the frame reuses its features
(patent claim 1 / FIG. 2).
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor


class ConvBlock(nn.Module):
    """Two 3x3 convolutions with LeakyReLU; the first may stride."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, padding=1),
            nn.LeakyReLU(0.1, inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class SiameseEncoder(nn.Module):
    """Features at 1/2, 1/4, 1/8 ... of the input resolution, one level per channel count.

    Parameters
    ----------
    channels
        Output channels per level; level ``i`` has stride ``2 ** (i + 1)``.
    """

    def __init__(self, channels: tuple[int, ...]) -> None:
        super().__init__()
        levels = []
        in_ch = 1
        for ch in channels:
            levels.append(ConvBlock(in_ch, ch, stride=2))
            in_ch = ch
        self.levels = nn.ModuleList(levels)

    def forward(self, frames: Tensor) -> list[Tensor]:
        """``(N, 1, H, W)`` frames -> list of ``(N, C_i, H / 2**(i+1), W / 2**(i+1))``."""
        feats = []
        x = frames
        for level in self.levels:
            x = level(x)
            feats.append(x)
        return feats
