"""Decoding refined multi-scale pair features into a motion field (patent claim 6).

The features of every scale are upsampled to the finest one, concatenated, and decoded
into a 2-channel field at the finest scale (stride 2), which is then brought to the input
resolution: bilinearly, or by learned convex upsampling (:mod:`inference.model.upsample`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from cinestrain.inference.model.upsample import ConvexUpsampler


class MotionDecoder(nn.Module):
    """Multi-scale features -> displacement in pixels of the input grid (row, column).

    Parameters
    ----------
    in_channels
        Channels of each scale's features, finest first (stride 2, 4, 8, ...).
    width
        Channels of the decoding convolutions.
    convex
        Upsample the field by learned convex combination instead of bilinearly.
    """

    def __init__(self, in_channels: tuple[int, ...], width: int, convex: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(sum(in_channels), width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, width, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width, width // 2, 3, padding=1),
            nn.LeakyReLU(0.1),
        )
        self.head = nn.Conv2d(width // 2, 2, 3, padding=1)
        nn.init.normal_(self.head.weight, std=1e-3)
        nn.init.zeros_(self.head.bias)
        self.upsample = ConvexUpsampler(width // 2, factor=2) if convex else None

    def forward(self, feats: list[Tensor], out_size: tuple[int, int]) -> Tensor:
        """``feats[i]``: ``(N, C_i, h_i, w_i)`` finest first -> ``(N, 2, *out_size)``."""
        size = feats[0].shape[-2:]
        up = [feats[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]
        ]
        body = self.body(torch.cat(up, dim=1))
        flow = self.head(body)
        if self.upsample is not None:
            if tuple(out_size) != (2 * size[0], 2 * size[1]):
                raise ValueError(f"convex upsampling needs out_size 2 x {tuple(size)}")
            return self.upsample(flow, body)
        scale = out_size[0] / size[0]
        return scale * F.interpolate(flow, size=out_size, mode="bilinear", align_corners=False)
