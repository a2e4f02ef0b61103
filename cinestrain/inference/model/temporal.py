"""Temporal refinement of pair features across the cycle (patent claims 3-5).

Every unit maps pair features ``(B, P, C_in, h, w)`` (pairs in the order they are fed) to
refined features ``(B, P, C_out, h, w)``:

- :class:`TemporalGRU`: a convolutional GRU whose hidden state is carried from pair to
  pair, run forwards and backwards over the cycle (bidirectional).
- :class:`TemporalTransformer`: self-attention along the time axis at every pixel, with
  3x3 convolutions between attention blocks.
- :class:`PairwiseBlock`: the ablation (``temporal="none"``): the same input and output,
  convolutions of similar cost, but no information flows between pairs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch import Tensor

from cinestrain.inference.model.settings import TEMPORALS, Temporal


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell: one 3x3 convolution each for update, reset, candidate."""

    def __init__(self, in_ch: int, hidden: int) -> None:
        super().__init__()
        self.update = nn.Conv2d(in_ch + hidden, hidden, 3, padding=1)
        self.reset = nn.Conv2d(in_ch + hidden, hidden, 3, padding=1)
        self.candidate = nn.Conv2d(in_ch + hidden, hidden, 3, padding=1)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        xh = torch.cat((x, h), dim=1)
        z = torch.sigmoid(self.update(xh))
        r = torch.sigmoid(self.reset(xh))
        q = torch.tanh(self.candidate(torch.cat((x, r * h), dim=1)))
        return (1 - z) * h + z * q


class TemporalGRU(nn.Module):
    """Bidirectional ConvGRU over the pair sequence; both directions fused by a 1x1 conv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.hidden = out_ch
        self.forward_cell = ConvGRUCell(in_ch, out_ch)
        self.backward_cell = ConvGRUCell(in_ch, out_ch)
        self.fuse = nn.Sequential(nn.Conv2d(2 * out_ch, out_ch, 1), nn.LeakyReLU(0.1))

    def _run(self, cell: ConvGRUCell, seq: list[Tensor]) -> list[Tensor]:
        h = seq[0].new_zeros(seq[0].shape[0], self.hidden, *seq[0].shape[-2:])
        states = []
        for x in seq:
            h = cell(x, h)
            states.append(h)
        return states

    def forward(self, pairs: Tensor) -> Tensor:
        seq = list(pairs.unbind(1))
        fwd = self._run(self.forward_cell, seq)
        bwd = self._run(self.backward_cell, seq[::-1])[::-1]
        out = [self.fuse(torch.cat(fb, dim=1)) for fb in zip(fwd, bwd, strict=True)]
        return torch.stack(out, dim=1)


def phase_encoding(n: int, channels: int, device: torch.device) -> Tensor:
    """Sinusoidal encoding of each pair's position in the cycle, ``(n, channels)``.

    Positions are fractions of the cycle, so cycles of any length share one encoding.
    """
    pos = torch.arange(n, device=device, dtype=torch.float32).unsqueeze(1) / max(n, 1)
    freqs = torch.arange(channels // 2, device=device, dtype=torch.float32).unsqueeze(0) + 1
    angle = 2 * math.pi * pos * freqs
    enc = torch.cat((torch.sin(angle), torch.cos(angle)), dim=1)
    if enc.shape[1] < channels:
        enc = torch.cat((enc, enc.new_zeros(n, channels - enc.shape[1])), dim=1)
    return enc


class TimeAttentionBlock(nn.Module):
    """Pre-norm self-attention along time at each pixel, then a per-pixel MLP."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(
            nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``(N, P, C)`` sequences (N = batch x pixels)."""
        y = self.norm1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class TemporalTransformer(nn.Module):
    """Self-attention along the time axis, with 3x3 convolutions between blocks."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, 1)
        self.attention = nn.ModuleList(TimeAttentionBlock(out_ch, heads) for _ in range(blocks))
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.LeakyReLU(0.1))
            for _ in range(blocks)
        )

    def forward(self, pairs: Tensor) -> Tensor:
        b, p, _, h, w = pairs.shape
        x = self.proj(pairs.flatten(0, 1))
        c = x.shape[1]
        x = x + phase_encoding(p, c, x.device).repeat(b, 1).view(b * p, c, 1, 1)
        for attention, conv in zip(self.attention, self.convs, strict=True):
            seq = x.view(b, p, c, h, w).permute(0, 3, 4, 1, 2).reshape(b * h * w, p, c)
            seq = attention(seq)
            x = seq.view(b, h, w, p, c).permute(0, 3, 4, 1, 2).reshape(b * p, c, h, w)
            x = x + conv(x)
        return x.view(b, p, c, h, w)


class PairwiseBlock(nn.Module):
    """The ablation: per-pair convolutions, no exchange between pairs."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        # Twice as wide inside, so its size is comparable with the temporal units'.
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, 2 * out_ch, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(2 * out_ch, 2 * out_ch, 3, padding=1),
            nn.LeakyReLU(0.1),
            nn.Conv2d(2 * out_ch, out_ch, 3, padding=1),
            nn.LeakyReLU(0.1),
        )

    def forward(self, pairs: Tensor) -> Tensor:
        b, p = pairs.shape[:2]
        out = self.body(pairs.flatten(0, 1))
        return out.view(b, p, *out.shape[1:])


def make_temporal(kind: Temporal, in_ch: int, out_ch: int) -> nn.Module:
    """The temporal unit named by ``kind``."""
    if kind == "gru":
        return TemporalGRU(in_ch, out_ch)
    if kind == "transformer":
        return TemporalTransformer(in_ch, out_ch)
    if kind == "none":
        return PairwiseBlock(in_ch, out_ch)
    raise ValueError(f"temporal must be one of {TEMPORALS}, got {kind!r}")
