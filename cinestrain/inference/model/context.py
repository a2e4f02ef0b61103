"""Global spatial context for the coarsest pair features (global motion aggregation).

A smooth myocardial wall shows only the motion across it: where a whole-heart translation
runs along the wall, the images there cannot tell it (the aperture problem), while on the
sides where it runs across the wall it is plain. Convolutions see too little of the ring
to carry that evidence round it, and the fields came out with about a third of the
tangential motion, which is what the segmental circumferential strain error was made of
(``bench/strain_budget.py``). Here every position of the coarsest feature map attends to
all others (one layer of multi-head self-attention, with the position of each cell as two
extra channels, since what a motion feature means depends on where on the ring it is).

The output projection starts at zero, so a model given this block starts out exactly as
it was and fine-tuning can go on from its weights.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def cell_positions(h: int, w: int, like: Tensor) -> Tensor:
    """``(1, 2, h, w)`` row and column of each cell, scaled to [-1, 1]."""
    rows = torch.linspace(-1.0, 1.0, h, device=like.device, dtype=like.dtype)
    cols = torch.linspace(-1.0, 1.0, w, device=like.device, dtype=like.dtype)
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij"))
    return grid.unsqueeze(0)


class SpatialContext(nn.Module):
    """``(N, C, h, w)`` -> the same, each cell added what it gathers from every cell.

    Parameters
    ----------
    channels
        Feature channels (a multiple of ``heads``).
    heads
        Attention heads.
    """

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.norm = nn.GroupNorm(1, channels)
        self.qkv = nn.Conv2d(channels + 2, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        pos = cell_positions(h, w, x).expand(n, -1, -1, -1)
        q, k, v = self.qkv(torch.cat((self.norm(x), pos), dim=1)).chunk(3, dim=1)

        def tokens(t: Tensor) -> Tensor:  # (n, heads, h * w, c / heads)
            return t.reshape(n, self.heads, c // self.heads, h * w).transpose(-1, -2)

        gathered = F.scaled_dot_product_attention(tokens(q), tokens(k), tokens(v))
        gathered = gathered.transpose(-1, -2).reshape(n, c, h, w)
        return x + self.out(gathered)
