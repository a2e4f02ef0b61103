"""Strain of analytic displacement fields, and the curves' means, peaks and times."""

from __future__ import annotations

import numpy as np
import pytest

from cinestrain.inference.heart.strain import compute_strain, green_strain, strain_maps

H, W = 64, 72
SPACING = (1.5, 1.25)
CENTRE = np.array([30.0, 37.0])


def _mm_grid() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:H, 0:W].astype(float)
    return (rows - CENTRE[0]) * SPACING[0], (cols - CENTRE[1]) * SPACING[1]


def _field(fn) -> np.ndarray:
    """``[1, 1, 2, H, W]`` displacement from ``fn(dy, dx) -> (u_row, u_col)`` in mm."""
    dy, dx = _mm_grid()
    ur, uc = fn(dy, dx)
    return np.stack([ur, uc])[None, None]


def _ring() -> np.ndarray:
    dy, dx = _mm_grid()
    r = np.hypot(dy, dx)
    return (r > 12) & (r < 30)


def test_uniform_scaling_is_equal_radial_and_circumferential() -> None:
    u = _field(lambda dy, dx: (-0.2 * dy, -0.2 * dx))  # 20 % shrink
    radial, circ = strain_maps(u, SPACING, CENTRE[None])
    assert np.allclose(radial[0, 0][_ring()], -0.2, atol=1e-6)
    assert np.allclose(circ[0, 0][_ring()], -0.2, atol=1e-6)


def test_rotation_has_no_strain() -> None:
    a = np.radians(8.0)
    u = _field(lambda dy, dx: (np.sin(a) * dx + np.cos(a) * dy - dy,
                               np.cos(a) * dx - np.sin(a) * dy - dx))
    radial, circ = strain_maps(u, SPACING, CENTRE[None])
    assert np.abs(radial[0, 0][_ring()]).max() < 1e-6
    assert np.abs(circ[0, 0][_ring()]).max() < 1e-6


def test_incompressible_radial_thickening() -> None:
    """r^2 = R^2 - A: circumferential r/R - 1, radial R/r - 1 (area kept)."""
    area = 100.0

    def fn(dy: np.ndarray, dx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        big_r = np.hypot(dy, dx)
        scale = np.sqrt(np.clip(big_r**2 - area, 1.0, None)) / np.maximum(big_r, 1e-9) - 1.0
        return scale * dy, scale * dx

    radial, circ = strain_maps(_field(fn), SPACING, CENTRE[None])
    dy, dx = _mm_grid()
    ring = _ring() & (np.hypot(dy, dx) > 17.0)  # central differences need a smooth field
    big_r = np.hypot(dy, dx)[ring]
    r = np.sqrt(big_r**2 - area)
    assert np.allclose(circ[0, 0][ring], r / big_r - 1.0, atol=3e-3)
    assert np.allclose(radial[0, 0][ring], big_r / r - 1.0, atol=3e-3)
    assert np.allclose(((1 + radial) * (1 + circ))[0, 0][ring], 1.0, atol=4e-3)


def test_curves_means_peaks_and_times() -> None:
    shrink = np.array([0.0, -0.1, -0.2, -0.15, -0.05])
    u = np.concatenate([_field(lambda dy, dx, k=k: (k * dy, k * dx)) for k in shrink], axis=1)
    u = np.concatenate([u, 0.5 * u], axis=0)  # slice 1 moves half as much
    mask = np.repeat(_ring()[None], 2, axis=0)
    labels = np.zeros(mask.shape, np.uint8)
    labels[0][mask[0]] = 1
    labels[1][mask[1]] = 7
    times = np.array([[0.0, 100.0, 200.0, 300.0, 400.0], [5.0, 105.0, 205.0, 305.0, 405.0]])
    result = compute_strain(u, SPACING, np.repeat(CENTRE[None], 2, 0), mask, times,
                            aha_labels=labels)
    g = result.global_curves
    assert np.allclose(g.circumferential_pct, 100 * shrink * 0.75, atol=1e-4)
    assert g.peak_circumferential_pct == pytest.approx(-15.0, abs=1e-4)
    assert g.time_to_peak_circumferential_ms == pytest.approx(202.5)
    assert g.peak_radial_pct == pytest.approx(0.0, abs=1e-4)  # max over phases (ED)
    assert set(result.segments) == {1, 7}
    assert result.segments[1].peak_circumferential_pct == pytest.approx(-20.0, abs=1e-4)
    assert result.slices[1].time_to_peak_circumferential_ms == pytest.approx(205.0)
    assert result.slices[1].n_pixels == int(mask[1].sum())
    doc = result.to_dict()
    assert set(doc["segments"]) == {"1", "7"}
    assert doc["global"]["peak_circumferential_strain_pct"] == pytest.approx(-15.0, abs=1e-3)
    assert result.radial_pct.shape == (2, 5, H, W)


def test_empty_mask_gives_no_curves() -> None:
    u = np.zeros((1, 3, 2, H, W))
    result = compute_strain(u, SPACING, CENTRE[None], np.zeros((1, H, W), bool), np.arange(3.0))
    assert result.global_curves is None and result.slices == [None] and not result.segments


def test_green_strain() -> None:
    assert green_strain(np.array(0.2)) == pytest.approx(0.22)
    assert green_strain(np.array(-0.2)) == pytest.approx(-0.18)


def test_bad_input() -> None:
    u = np.zeros((1, 3, 2, H, W))
    mask = np.ones((1, H, W), bool)
    with pytest.raises(ValueError):
        compute_strain(u, SPACING, CENTRE[None], mask, np.arange(4.0))
    with pytest.raises(ValueError):
        compute_strain(u, SPACING, CENTRE[None], mask[:, :-1], np.arange(3.0))
    with pytest.raises(ValueError):
        compute_strain(u, SPACING, CENTRE[None], mask, np.arange(3.0), ed_phase=3)
    with pytest.raises(ValueError):
        strain_maps(u[0], SPACING, CENTRE[None])
    with pytest.raises(ValueError):
        strain_maps(u, (0.0, 1.0), CENTRE[None])


def test_translation_has_no_strain() -> None:
    u = _field(lambda dy, dx: (np.full_like(dy, 3.2), np.full_like(dx, -1.7)))
    radial, circ = strain_maps(u, SPACING, CENTRE[None])
    assert np.abs(radial[0, 0][_ring()]).max() < 1e-6
    assert np.abs(circ[0, 0][_ring()]).max() < 1e-6
