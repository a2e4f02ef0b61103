"""Warping and composition are exact on analytic fields (translation, rotation)."""

from __future__ import annotations

import math

import numpy as np
import torch

from cinestrain.inference.model.warp import compose_fields, compose_sequence, warp_image


def _blob(h: int = 48, w: int = 64, centre: tuple[float, float] = (20.0, 30.0)) -> torch.Tensor:
    rows = torch.arange(h, dtype=torch.float64).view(h, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, w)
    img = torch.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / 40.0)
    return img.view(1, 1, h, w)


def _constant(h: int, w: int, d_row: float, d_col: float) -> torch.Tensor:
    field = torch.zeros(1, 2, h, w, dtype=torch.float64)
    field[:, 0], field[:, 1] = d_row, d_col
    return field


def test_known_shift_component_order() -> None:
    """Component 0 moves along rows, component 1 along columns (the grid_sample swap)."""
    moving = _blob(centre=(23.0, 25.0))  # the fixed blob moved by (+3 rows, -5 columns)
    fixed = _blob(centre=(20.0, 30.0))
    warped = warp_image(moving, _constant(48, 64, 3.0, -5.0))
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert torch.allclose(warped[inner], fixed[inner], atol=1e-9)
    swapped = warp_image(moving, _constant(48, 64, -5.0, 3.0))
    assert (swapped[inner] - fixed[inner]).abs().max() > 0.3


def test_integer_shift_is_exact() -> None:
    img = torch.rand(1, 1, 16, 16, dtype=torch.float64)
    warped = warp_image(img, _constant(16, 16, 2.0, 1.0))
    assert torch.allclose(warped[0, 0, :-2, :-1], img[0, 0, 2:, 1:], atol=1e-12)


def test_composition_of_translations_adds() -> None:
    a, b = _constant(20, 20, 1.5, -0.5), _constant(20, 20, -2.0, 3.25)
    assert torch.allclose(compose_fields(a, b), a + b)


def _rotation_field(h: int, w: int, angle: float, centre: tuple[float, float]) -> torch.Tensor:
    """Displacement of a rotation by ``angle`` about ``centre`` (pixels)."""
    rows = torch.arange(h, dtype=torch.float64).view(h, 1).expand(h, w) - centre[0]
    cols = torch.arange(w, dtype=torch.float64).view(1, w).expand(h, w) - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    new_r = c * rows - s * cols
    new_c = s * rows + c * cols
    return torch.stack((new_r - rows, new_c - cols)).unsqueeze(0)


def test_composition_of_rotations_is_a_rotation() -> None:
    """Rotation by a then by b equals rotation by a + b: warping, not summing."""
    h = w = 65
    centre = (32.0, 32.0)
    a = _rotation_field(h, w, 0.10, centre)
    b = _rotation_field(h, w, 0.15, centre)
    composed = compose_fields(a, b)
    expected = _rotation_field(h, w, 0.25, centre)
    rows, cols = np.mgrid[0:h, 0:w]
    inside = torch.from_numpy(np.hypot(rows - 32, cols - 32) < 20)
    err = (composed - expected).norm(dim=1)[0][inside]
    assert err.max() < 0.02  # bilinear interpolation of a linear field: near exact
    summed_err = (a + b - expected).norm(dim=1)[0][inside]
    assert summed_err.max() > 0.2  # summing would be wrong


def test_compose_sequence_accumulates() -> None:
    steps = torch.cat([_constant(12, 12, 1.0, 0.5).unsqueeze(1)] * 4, dim=1)
    total = compose_sequence(steps)
    assert total.shape == (1, 4, 2, 12, 12)
    for p in range(4):
        assert torch.allclose(total[:, p, 0], torch.full((1, 12, 12), p + 1.0, dtype=torch.float64))
