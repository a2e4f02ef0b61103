"""The baselines answer in the product's displacement contract (mm, row/column, ED grid)."""

from __future__ import annotations

import numpy as np

from cinestrain.inference.baselines import demons_motion, zero_motion


def _blob(h: int, w: int, centre: tuple[float, float]) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w]
    r2 = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2
    return np.exp(-r2 / (2 * 8.0**2)) + 0.5 * np.exp(-r2 / (2 * 3.0**2))


def test_demons_recovers_a_shift_in_mm() -> None:
    """Frame 1 is the ED blob moved by (+2 rows, -3 columns): u = (+2, -3) px in mm."""
    spacing = (1.5, 1.25)
    ed, moved = _blob(96, 96, (48, 48)), _blob(96, 96, (50, 45))
    pixels = np.stack([ed, moved, ed])[None].astype(np.float32)  # S=1, T=3, ED = phase 0
    u = demons_motion(pixels, spacing, ed_phase=0)
    assert u.shape == (1, 3, 2, 96, 96) and u.dtype == np.float32
    assert np.all(u[:, 0] == 0)
    centre = u[0, 1, :, 44:53, 44:53].reshape(2, -1).mean(axis=1)
    assert np.allclose(centre, [2 * spacing[0], -3 * spacing[1]], atol=0.35)
    assert np.abs(u[0, 2, :, 40:56, 40:56]).max() < 0.3  # the same image: no motion


def test_zero_motion_shape() -> None:
    u = zero_motion(np.zeros((2, 5, 8, 9), np.float32))
    assert u.shape == (2, 5, 2, 8, 9) and not u.any()
