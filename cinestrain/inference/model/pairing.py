"""How the phases of a cardiac cycle are paired (patent FIG. 6 and FIG. 7).

Pairs are formed cyclically starting at ED: ED, ED+1, ..., T-1, 0, ..., ED-1. Arrays the
model sees are in that *cycle order* (ED first); everything returned to callers is back
in acquisition order, with ``ed_phase`` saying which phase is ED (DESIGN.md § Pairing).
"""

from __future__ import annotations

import numpy as np

from cinestrain.inference.model.settings import PAIRINGS, Pairing


def cycle_order(n_phases: int, ed_phase: int) -> np.ndarray:
    """Acquisition indices in cycle order: ``[ed, ed+1, ..., T-1, 0, ..., ed-1]``."""
    if n_phases < 2:
        raise ValueError(f"a cycle needs at least 2 phases, got {n_phases}")
    if not 0 <= ed_phase < n_phases:
        raise ValueError(f"ed_phase {ed_phase} is outside 0..{n_phases - 1}")
    return (np.arange(n_phases) + ed_phase) % n_phases


def make_pairs(n_phases: int, pairing: Pairing) -> list[tuple[int, int]]:
    """The (first, second) positions *in cycle order* of every pair, fed in this order.

    anchored: (0, k) for k = 1..T-1; consecutive: (k, k+1) for k = 0..T-2.
    """
    if pairing == "anchored":
        return [(0, k) for k in range(1, n_phases)]
    if pairing == "consecutive":
        return [(k, k + 1) for k in range(n_phases - 1)]
    raise ValueError(f"pairing must be one of {PAIRINGS}, got {pairing!r}")
