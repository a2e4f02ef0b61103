"""Real-cine training data: unlabelled slices on the model grid, mixed with phantom ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cinestrain.inference.model.network import MotionConfig, MotionModel
from cinestrain.inference.training.real_cine import MixedDataset, RealCineDataset, RealCineStack
from cinestrain.inference.training.train import TrainSettings, training_losses


def _stack(ed: int = 3) -> RealCineStack:
    s, t, h, w = 2, 8, 96, 80
    rows, cols = np.mgrid[:h, :w]
    pixels = np.zeros((s, t, h, w), np.float32)
    for p in range(t):
        radius = 14 - 4 * np.sin(np.pi * p / t)  # a cavity that contracts and relaxes
        pixels[:, p] = 100 * (np.hypot(rows - 48, cols - 40) < radius)
    return RealCineStack(pixels, (1.5, 1.5), ed, np.array([[48.0, 40.0]] * s), "synthetic")


def test_items_are_unlabelled_model_grid_slices_and_deterministic() -> None:
    data = RealCineDataset([_stack()], length=5, seed=7, grid_size=32, spacing_mm=2.0)
    item = data[2]
    assert item["frames"].shape == (8, 1, 32, 32)
    assert item["supervised"] is False and item["ed_phase"] == 3
    assert float(item["frames"].max()) > 0.5  # the cavity is inside the crop
    assert torch.equal(item["frames"], data[2]["frames"])


def test_stack_refuses_inconsistent_input() -> None:
    good = _stack()
    with pytest.raises(ValueError, match="ed_phase"):
        RealCineStack(good.pixels, good.pixel_spacing, 8, good.centres, "x")
    with pytest.raises(ValueError, match="centres"):
        RealCineStack(good.pixels, good.pixel_spacing, 0, good.centres[:1], "x")


def test_mixed_dataset_draws_both_kinds() -> None:
    real = RealCineDataset([_stack()], length=40, grid_size=32)
    phantom = [{"supervised": True}] * 40
    mixed = MixedDataset(phantom, real, 0.5, seed=1)
    kinds = [mixed[i]["supervised"] for i in range(40)]
    assert 5 < sum(kinds) < 35
    with pytest.raises(ValueError, match="fraction"):
        MixedDataset(phantom, real, 1.0)


def test_real_slices_train_on_the_unsupervised_losses_only() -> None:
    torch.manual_seed(0)
    model = MotionModel(
        MotionConfig(grid_size=32, channels=(8, 16, 16), decoder_width=16)
    )
    item = RealCineDataset([_stack()], length=1, grid_size=32)[0]
    losses = training_losses(model, item, TrainSettings(passes=2), step=0)
    assert "epe_anchored_mm" not in losses and "epe_refined_mm" not in losses
    losses["total"].backward()
    assert torch.isfinite(losses["total"])
