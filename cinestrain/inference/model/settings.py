"""How a trained motion model is applied: the run-time settings, apart from the model file.

A model file holds the architecture and the weights (:class:`~inference.model.network.
MotionConfig`); how those weights are applied to a cine (which pairing feeds the first
pass, how many passes, how often the crop follows the heart) is chosen per run and
travels as one :class:`MotionSettings`. The literal choices of the model are spelled
here once; the configuration schema and the command line take them from here. This
module imports no torch, so the configuration can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Pairing = Literal["anchored", "consecutive"]
Temporal = Literal["gru", "transformer", "none"]

#: how the cycle is paired (DESIGN.md § Pairing)
PAIRINGS: tuple[Pairing, ...] = get_args(Pairing)
#: the temporal units (patent claims 3-5); ``none`` is the pairwise ablation
TEMPORALS: tuple[Temporal, ...] = get_args(Temporal)

#: most passes of the network per cycle, and most re-centring rounds, a run may ask for
MAX_PASSES = 4
MAX_RECENTRE_ROUNDS = 3


@dataclass(frozen=True)
class MotionSettings:
    """How one run applies a model (the configuration's ``[model]`` section gives them).

    Attributes
    ----------
    pairing
        Pairs of the first pass: ``anchored`` (ED with each phase) or ``consecutive``
        (neighbours, composed). Every shipped model is trained on both.
    passes
        Passes of the whole network per cycle: pass ``k > 1`` warps every frame onto ED
        with the displacement found so far and estimates the residual (RAFT-style).
    recentre_rounds
        Times each phase's crop follows the myocardium's mean motion and the model runs
        again (see :func:`inference.model.estimate.estimate_motion`).
    """

    pairing: Pairing
    passes: int
    recentre_rounds: int

    def __post_init__(self) -> None:
        if self.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, got {self.pairing!r}")
        if not 1 <= self.passes <= MAX_PASSES:
            raise ValueError(f"passes must be 1..{MAX_PASSES}, got {self.passes}")
        if not 0 <= self.recentre_rounds <= MAX_RECENTRE_ROUNDS:
            raise ValueError(
                f"recentre_rounds must be 0..{MAX_RECENTRE_ROUNDS}, got {self.recentre_rounds}")
