"""The motion model: wiring of encoder, pairing, temporal units, decoder and refiner.

Input: a cine slice (or a batch of slices) resampled to the model grid, phases in cycle
order with ED first. Output: one displacement field per pair, in pixels of the model
grid, and, from those, the Lagrangian displacement of every phase relative to ED.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
from torch import Tensor

from cinestrain.inference.model.context import SpatialContext
from cinestrain.inference.model.decoder import MotionDecoder
from cinestrain.inference.model.encoder import SiameseEncoder
from cinestrain.inference.model.pairing import make_pairs
from cinestrain.inference.model.refine import CycleRefiner
from cinestrain.inference.model.settings import TEMPORALS, Pairing, Temporal
from cinestrain.inference.model.temporal import make_temporal
from cinestrain.inference.model.upsample import UPSAMPLINGS, Upsampling
from cinestrain.inference.model.warp import compose_fields, compose_sequence, warp_image


@dataclass(frozen=True)
class MotionConfig:
    """Everything that defines a model's architecture and its input grid: what a model
    file holds. How a run applies it (pairing, passes, re-centring) is not here but in
    :class:`~inference.model.settings.MotionSettings`.

    Attributes
    ----------
    temporal
        Which temporal unit refines pair features.
    channels
        Encoder channels per scale (strides 2, 4, 8, ...).
    temporal_levels
        Indices of the scales refined over time (two or more).
    decoder_width
        Channels of the decoder.
    refine
        Whether the second stage corrects the fields of the whole cycle.
    upsampling
        How the decoder brings its stride-2 field to the model grid: ``"bilinear"``, or
        ``"convex"`` (learned, keeps edges across the wall: see
        :mod:`inference.model.upsample`). Model files from before this option are bilinear.
    context
        Global self-attention over the coarsest pair features, after the temporal unit
        (:mod:`inference.model.context`): motion seen on one side of the ring informs the
        other. Model files from before this option have none.
    grid_size
        Model grid, pixels per side.
    spacing_mm
        Model grid spacing, mm.
    """

    temporal: Temporal = "gru"
    channels: tuple[int, ...] = (16, 32, 48)
    temporal_levels: tuple[int, ...] = (1, 2)
    decoder_width: int = 48
    refine: bool = True
    upsampling: Upsampling = "bilinear"
    context: bool = False
    grid_size: int = 64
    spacing_mm: float = 2.0

    def __post_init__(self) -> None:
        if self.temporal not in TEMPORALS:
            raise ValueError(f"temporal must be one of {TEMPORALS}, got {self.temporal!r}")
        if len(self.temporal_levels) < 2 and self.temporal != "none":
            raise ValueError("temporal refinement needs two or more scales")
        if any(not 0 <= i < len(self.channels) for i in self.temporal_levels):
            raise ValueError(f"temporal_levels {self.temporal_levels} outside channels")
        if self.upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {self.upsampling!r}")
        stride = 2 ** len(self.channels)
        if self.grid_size % stride:
            raise ValueError(f"grid_size must be a multiple of {stride}, got {self.grid_size}")
        object.__setattr__(self, "channels", tuple(self.channels))
        object.__setattr__(self, "temporal_levels", tuple(self.temporal_levels))

    def to_dict(self) -> dict:
        return asdict(self)

    def same_weights_as(self, other: dict) -> bool:
        """Whether a stored configuration has the same weights as this one."""
        theirs = architecture_of(other)
        return self.to_dict() == {k: tuple(v) if isinstance(v, list) else v
                                  for k, v in theirs.items()}

    def added_parts(self, other: dict) -> tuple[str, ...] | None:
        """The parameter prefixes this model adds to a stored one, or None if it is not
        that stored model plus a convex upsampling head and/or a context block.

        Both start out neutral (bilinear upsampling; a zero context), so a model with
        them starts from the stored weights and behaves as it did: training goes on.
        """
        old = architecture_of(other)
        added = []
        base = self.to_dict()
        if self.upsampling == "convex" and old["upsampling"] == "bilinear":
            added.append("decoder.upsample.")
            base["upsampling"] = "bilinear"
        if self.context and not old["context"]:
            added.append("context.")
            base["context"] = False
        if not added or not MotionConfig(**base).same_weights_as(old):
            return None
        return tuple(added)


#: run-time settings that model files written before :mod:`inference.model.settings`
#: stored with the architecture; they are the run's choice now, not the file's
RUN_TIME_KEYS = ("pairing", "iterations")


def architecture_of(stored: dict) -> dict:
    """A stored configuration as :class:`MotionConfig` fields: the fields added since it was
    written as they were then, and the run-time keys older files kept dropped."""
    fields = {"upsampling": "bilinear", "context": False, **stored}
    return {k: v for k, v in fields.items() if k not in RUN_TIME_KEYS}


class MotionModel(nn.Module):
    """Siamese encoder -> pair features -> temporal refinement -> decoder -> refiner."""

    def __init__(self, config: MotionConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = SiameseEncoder(config.channels)
        units = {}
        for level in config.temporal_levels:
            ch = config.channels[level]
            units[str(level)] = make_temporal(config.temporal, 2 * ch, ch)
        self.temporal = nn.ModuleDict(units)
        pair_ch = tuple(
            ch if i in config.temporal_levels else 2 * ch for i, ch in enumerate(config.channels)
        )
        self.decoder = MotionDecoder(
            pair_ch, config.decoder_width, convex=config.upsampling == "convex"
        )
        self.refiner = CycleRefiner() if config.refine else None
        self.context = SpatialContext(pair_ch[-1]) if config.context else None

    def forward(self, frames: Tensor, pairing: Pairing) -> Tensor:
        """Pair fields for one or more cycles.

        Parameters
        ----------
        frames
            ``(B, T, 1, H, W)`` intensity-normalised frames in cycle order (ED first).
        pairing
            How the frames are paired (training runs both through the same weights).

        Returns
        -------
        Tensor
            ``(B, T - 1, 2, H, W)`` displacement of each pair in pixels (row, column),
            pairs in the order of :func:`inference.model.pairing.make_pairs`.
        """
        if frames.ndim != 5 or frames.shape[2] != 1:
            raise ValueError(f"frames must be (B, T, 1, H, W), got {tuple(frames.shape)}")
        b, t, _, h, w = frames.shape
        pairs = make_pairs(t, pairing)
        first = torch.tensor([p[0] for p in pairs], device=frames.device)
        second = torch.tensor([p[1] for p in pairs], device=frames.device)
        # Siamese: each frame is encoded once, features reused by every pair containing it.
        feats = self.encoder(frames.flatten(0, 1))
        pair_feats = []
        for level, f in enumerate(feats):
            f = f.view(b, t, *f.shape[1:])
            cat = torch.cat((f[:, first], f[:, second]), dim=2)  # B, P, 2C, h, w
            if str(level) in self.temporal:
                cat = self.temporal[str(level)](cat)
            cat = cat.flatten(0, 1)
            if self.context is not None and level == len(feats) - 1:
                cat = self.context(cat)
            pair_feats.append(cat)
        fields = self.decoder(pair_feats, (h, w)).view(b, len(pairs), 2, h, w)
        if self.refiner is not None:
            fields = self.refiner(fields)
        return fields

    def track(self, frames: Tensor, pairing: Pairing, passes: int) -> list[Tensor]:
        """ED-referenced displacement of every phase, one estimate per pass.

        Parameters
        ----------
        frames
            ``(B, T, 1, H, W)`` as for :meth:`forward`.
        pairing
            Pairing of the first pass (later passes are anchored on the aligned frames).
        passes
            Passes of the whole network (:attr:`MotionSettings.passes`): pass ``k > 1``
            warps every frame onto ED with the displacement found so far and estimates the
            (anchored) residual with the same weights, composed onto the estimate
            (RAFT-style): large motion is found by the first pass, its last millimetre by
            the next on aligned frames.

        Returns
        -------
        list[Tensor]
            ``(B, T, 2, H, W)`` in pixels, entry 0 (ED) zero, per pass; the last is the
            answer, the earlier ones are supervised in training.
        """
        estimates = [self.lagrangian(self(frames, pairing), pairing)]
        if passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        for _ in range(1, passes):
            estimates.append(self.refine_pass(frames, estimates[-1]))
        return estimates

    def refine_pass(self, frames: Tensor, estimate: Tensor) -> Tensor:
        """One more pass: frames warped onto ED by ``estimate``, residual composed on it.

        ``estimate`` is ``(B, T, 2, H, W)`` as returned by :meth:`track`; so is the result.
        """
        b, t = frames.shape[:2]
        # As in RAFT, the estimate is held fixed while a pass refines it.
        u = estimate[:, 1:].detach().flatten(0, 1)
        aligned = warp_image(frames[:, 1:].flatten(0, 1), u).view(b, t - 1, *frames.shape[2:])
        residual = self(torch.cat((frames[:, :1], aligned), dim=1), pairing="anchored")
        total = compose_fields(residual.flatten(0, 1), u).view_as(residual)
        return self.lagrangian(total, "anchored")

    def lagrangian(self, fields: Tensor, pairing: Pairing) -> Tensor:
        """Pair fields -> ED-referenced displacement of every phase, cycle order.

        Returns ``(B, T, 2, H, W)`` in pixels with entry 0 (ED) zero. Consecutive fields
        are composed by warping (:func:`inference.model.warp.compose_sequence`).
        """
        if pairing == "consecutive":
            fields = compose_sequence(fields)
        zero = fields.new_zeros(fields.shape[0], 1, *fields.shape[2:])
        return torch.cat((zero, fields), dim=1)
