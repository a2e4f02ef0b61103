"""Mask outlines for SR image regions: each outline encloses exactly its region's pixels."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as PolyPath

from cinestrain.dicom_io.write.contours import mask_outlines


def _enclosed(outline: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centre (c + 0.5, r + 0.5) lies inside the closed outline (nudged off
    the zero-width cut that joins a hole, on which a centre may lie exactly)."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    centres = np.stack([cols.ravel() + 0.5 + 1e-4, rows.ravel() + 0.5 + 2e-4], axis=1)
    return PolyPath(outline).contains_points(centres).reshape(shape)


def test_ring_is_one_closed_outline_that_excludes_the_hole() -> None:
    rows, cols = np.mgrid[:40, :48]
    radius = np.hypot(rows - 20.3, cols - 23.7)
    ring = (radius >= 7) & (radius < 13)
    outlines = mask_outlines(ring)
    assert len(outlines) == 1
    outline = outlines[0]
    assert np.array_equal(outline[0], outline[-1])
    assert np.array_equal(_enclosed(outline, ring.shape), ring)


def test_sector_and_separate_regions_largest_first() -> None:
    mask = np.zeros((30, 30), bool)
    mask[2:12, 3:20] = True  # 170 pixels
    mask[20:24, 20:25] = True  # 20 pixels
    outlines = mask_outlines(mask)
    assert len(outlines) == 2
    big, small = (_enclosed(o, mask.shape) for o in outlines)
    assert big.sum() == 170 and small.sum() == 20
    assert np.array_equal(big | small, mask)
    # DICOM 2D coordinates: (column, row), pixel corners at integers
    assert outlines[0][:, 0].min() == pytest.approx(3.0)
    assert outlines[0][:, 1].max() == pytest.approx(12.0)


def test_small_regions_left_out_and_bad_input() -> None:
    mask = np.zeros((10, 10), bool)
    mask[1, 1] = True
    assert mask_outlines(mask, min_pixels=2) == []
    assert len(mask_outlines(mask)) == 1
    with pytest.raises(ValueError, match="2D"):
        mask_outlines(np.zeros((2, 3, 4), bool))
