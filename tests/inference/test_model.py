"""The motion model's wiring, the model grid, and a training smoke test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cinestrain.inference.model.context import SpatialContext
from cinestrain.inference.model.grid import ModelGrid
from cinestrain.inference.model.network import MotionConfig, MotionModel, architecture_of
from cinestrain.inference.model.pairing import cycle_order, make_pairs
from cinestrain.inference.model.upsample import ConvexUpsampler
from cinestrain.inference.model.warp import compose_sequence
from cinestrain.inference.training.losses import gradient_error
from cinestrain.inference.training.train import TrainSettings, training_losses

VARIANTS = [(t, p) for t in ("gru", "transformer", "none") for p in ("anchored", "consecutive")]


@pytest.mark.parametrize(("temporal", "pairing"), VARIANTS)
def test_any_number_of_phases(temporal: str, pairing: str) -> None:
    torch.manual_seed(0)
    model = MotionModel(MotionConfig(temporal=temporal, grid_size=32)).eval()
    for t in (8, 13):
        frames = torch.rand(2, t, 1, 32, 32)
        with torch.no_grad():
            fields = model(frames, pairing)
            u = model.lagrangian(fields, pairing)
        assert fields.shape == (2, t - 1, 2, 32, 32)
        assert u.shape == (2, t, 2, 32, 32)
        assert torch.count_nonzero(u[:, 0]) == 0


def test_frames_are_encoded_once() -> None:
    """Siamese: every frame's features are computed once, whatever the pairs."""
    model = MotionModel(MotionConfig(grid_size=32)).eval()
    seen = []
    model.encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[0]))
    with torch.no_grad():
        model(torch.rand(1, 10, 1, 32, 32), "consecutive")
    assert seen == [10]


def test_temporal_units_see_other_pairs() -> None:
    """Changing one frame changes other pairs' fields with GRU/transformer, not without."""
    torch.manual_seed(0)
    frames = torch.rand(1, 8, 1, 32, 32)
    changed = frames.clone()
    changed[:, 7] = torch.rand(1, 32, 32)
    for temporal, expect_change in (("gru", True), ("transformer", True), ("none", False)):
        model = MotionModel(MotionConfig(temporal=temporal, grid_size=32, refine=False)).eval()
        torch.nn.init.normal_(model.decoder.head.weight, std=0.1)
        with torch.no_grad():
            a, b = model(frames, "anchored"), model(changed, "anchored")
        # pair 0 is (ED, 1): frame 7 is not in it
        differs = not torch.allclose(a[:, 0], b[:, 0], atol=1e-7)
        assert differs == expect_change, temporal


def test_consecutive_fields_are_composed() -> None:
    model = MotionModel(MotionConfig(grid_size=32))
    steps = torch.randn(1, 5, 2, 32, 32) * 0.5
    u = model.lagrangian(steps, "consecutive")
    assert torch.allclose(u[:, 1:], compose_sequence(steps))


def test_pairing_orders() -> None:
    assert cycle_order(5, 3).tolist() == [3, 4, 0, 1, 2]
    assert make_pairs(4, "anchored") == [(0, 1), (0, 2), (0, 3)]
    assert make_pairs(4, "consecutive") == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(ValueError, match="ed_phase"):
        cycle_order(5, 5)


def test_config_refuses_bad_values() -> None:
    with pytest.raises(ValueError, match="temporal"):
        MotionConfig(temporal="lstm")
    with pytest.raises(ValueError, match="multiple of 8"):
        MotionConfig(grid_size=60)


def test_model_grid_round_trip() -> None:
    """A constant field in mm comes back unchanged on the native grid inside the crop."""
    grid = ModelGrid(np.array([[40.0, 50.0]]), (1.25, 1.5), (90, 100), 32, 2.0)
    # frames: a ramp along rows, value = row index in native pixels
    ramp = np.broadcast_to(np.arange(90, dtype=np.float32)[:, None], (90, 100))
    on_model = grid.to_model(np.ascontiguousarray(ramp[None, None]))
    centre_row = on_model[0, 0, 0, 16, :].mean()
    assert abs(centre_row - (40 + 0.5 * 2.0 / 1.25)) < 0.3  # grid centre sits at row 40.8
    step = float(on_model[0, 0, 0, 20, 16] - on_model[0, 0, 0, 19, 16])
    assert step == pytest.approx(2.0 / 1.25, rel=0.02)
    field = torch.zeros(1, 1, 2, 32, 32)
    field[:, :, 0], field[:, :, 1] = 1.5, -0.75
    native = grid.to_native(field)
    assert native.shape == (1, 1, 2, 90, 100)
    inside = native[0, 0, :, 30:50, 40:60]
    assert np.allclose(inside[0], 1.5, atol=1e-5) and np.allclose(inside[1], -0.75, atol=1e-5)
    assert np.all(native[0, 0, :, 0, 0] == 0)  # outside the crop: no motion


def test_model_grid_follows_per_phase_shifts() -> None:
    """A phase whose grid is moved by d mm samples the frame at grid + d: a ramp along
    rows reads d / spacing more, and the unmoved phase reads as without shifts."""
    grid = ModelGrid(np.array([[40.0, 50.0]]), (1.25, 1.5), (90, 100), 32, 2.0)
    ramp = np.broadcast_to(np.arange(90, dtype=np.float32)[:, None], (1, 2, 90, 100))
    shifts = np.array([[[0.0, 0.0], [2.5, -3.0]]])
    fixed = grid.to_model(np.ascontiguousarray(ramp))
    moved = grid.to_model(np.ascontiguousarray(ramp), shifts)
    assert torch.allclose(moved[:, 0], fixed[:, 0])
    inside = (moved[0, 1] - fixed[0, 1])[0, 8:24, 8:24]
    assert torch.allclose(inside, torch.full_like(inside, 2.5 / 1.25), atol=1e-4)
    with pytest.raises(ValueError, match="shifts_mm"):
        grid.to_model(np.ascontiguousarray(ramp), shifts[:, :1])


def test_a_few_training_steps_reduce_the_loss() -> None:
    """Smoke test: the losses backpropagate and the optimiser makes progress (seconds)."""
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as train() does: denormals slow the CPU tenfold
    model = MotionModel(MotionConfig(grid_size=32, channels=(8, 16, 16), decoder_width=16))
    rows = torch.arange(32.0).view(32, 1)
    cols = torch.arange(32.0).view(1, 32)
    frames, truth = [], []
    for t in range(8):
        shift = 1.5 * np.sin(np.pi * t / 8)  # a blob moving down and back
        frames.append(torch.exp(-((rows - 16 - shift) ** 2 + (cols - 16) ** 2) / 30.0))
        u = torch.zeros(2, 32, 32)
        u[0] = shift * 2.0  # mm at 2 mm per pixel
        truth.append(u)
    sample = {
        "frames": torch.stack(frames).unsqueeze(1),
        "u": torch.stack(truth),
        "myocardium": torch.ones(32, 32, dtype=torch.bool),
        "ed_phase": 0,
        "spacing_mm": 2.0,
    }
    settings = TrainSettings()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(15):
        losses = training_losses(model, sample, settings)
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
        first = first if first is not None else losses["total"].item()
    assert losses["total"].item() < 0.8 * first
    assert set(losses) >= {"epe_anchored_mm", "epe_consecutive_mm", "ncc", "smooth", "compose_px"}


def test_refinement_passes_compose_onto_the_estimate() -> None:
    """Pass 2 warps the frames by pass 1's answer and composes its residual onto it."""
    torch.manual_seed(0)
    model = MotionModel(MotionConfig(grid_size=32)).eval()
    frames = torch.rand(1, 6, 1, 32, 32)
    with torch.no_grad():
        estimates = model.track(frames, "anchored", passes=3)
        assert len(estimates) == 3
        for u in estimates:
            assert u.shape == (1, 6, 2, 32, 32) and torch.count_nonzero(u[:, 0]) == 0
        # A model whose residual is zero leaves the estimate as it is.
        torch.nn.init.zeros_(model.decoder.head.weight)
        torch.nn.init.zeros_(model.decoder.head.bias)
        estimate = torch.randn(1, 6, 2, 32, 32)
        estimate[:, 0] = 0
        # (grid_sample at the grid points themselves is exact to float rounding)
        assert torch.allclose(model.refine_pass(frames, estimate), estimate, atol=1e-4)
    assert len(model.track(frames, "consecutive", passes=1)) == 1
    with pytest.raises(ValueError, match="passes"):
        model.track(frames, "anchored", passes=0)


def test_model_files_hold_the_architecture_only() -> None:
    """Pairing and passes are run-time settings: files that stored them (before they
    moved to MotionSettings) have the same weights, and the keys are dropped."""
    one = MotionConfig(grid_size=32)
    older = {**one.to_dict(), "iterations": 2, "pairing": "consecutive"}
    assert one.same_weights_as(older)
    assert architecture_of(older) == one.to_dict()
    assert not one.same_weights_as(MotionConfig(grid_size=32, temporal="none").to_dict())
    assert "pairing" not in one.to_dict() and "iterations" not in one.to_dict()


def test_a_refining_training_step_supervises_the_last_pass() -> None:
    torch.manual_seed(0)
    model = MotionModel(MotionConfig(grid_size=32, channels=(8, 16, 16), decoder_width=16))
    t = 6
    sample = {
        "frames": torch.rand(t, 1, 32, 32),
        "u": torch.zeros(t, 2, 32, 32),
        "myocardium": torch.ones(32, 32, dtype=torch.bool),
        "ed_phase": 2,
        "spacing_mm": 2.0,
    }
    for step in (0, 1):  # anchored, then consecutive first pass
        losses = training_losses(model, sample, TrainSettings(passes=2), step)
        losses["total"].backward()
        assert torch.isfinite(losses["epe_refined_mm"])


def test_convex_upsampling_starts_as_bilinear() -> None:
    """A new convex head reproduces bilinear upsampling, so --init keeps a model's behaviour."""
    torch.manual_seed(0)
    flow = torch.randn(3, 2, 16, 16)
    feats = torch.randn(3, 24, 16, 16)
    head = ConvexUpsampler(24, factor=2)
    expected = 2 * F.interpolate(flow, size=(32, 32), mode="bilinear", align_corners=False)
    torch.testing.assert_close(head(flow, feats), expected, atol=1e-5, rtol=0)


def test_convex_upsampling_is_a_convex_combination() -> None:
    """Whatever the learned weights, a uniform field stays uniform (scaled to the fine grid)."""
    torch.manual_seed(0)
    head = ConvexUpsampler(8, factor=2)
    torch.nn.init.normal_(head.mask.weight, std=1.0)
    flow = torch.ones(1, 2, 8, 8) * torch.tensor([1.5, -0.5]).view(1, 2, 1, 1)
    fine = head(flow, torch.randn(1, 8, 8, 8))
    torch.testing.assert_close(fine, 2 * flow[..., :1, :1].expand(1, 2, 16, 16))


def test_new_parts_extend_an_older_file() -> None:
    """Training may start a model with a convex head and/or a context block from a file
    without them; other changes are refused."""
    old = {k: v for k, v in MotionConfig().to_dict().items()
           if k not in ("upsampling", "context")}
    assert MotionConfig(upsampling="convex").added_parts(old) == ("decoder.upsample.",)
    assert MotionConfig(context=True).added_parts(old) == ("context.",)
    assert MotionConfig(upsampling="convex", context=True).added_parts(old) == (
        "decoder.upsample.", "context.")
    assert MotionConfig().same_weights_as(old)
    assert MotionConfig().added_parts(old) is None
    assert MotionConfig(upsampling="convex", decoder_width=32).added_parts(old) is None
    with pytest.raises(ValueError, match="upsampling"):
        MotionConfig(upsampling="nearest")


def test_context_block_starts_neutral_and_sees_the_whole_map() -> None:
    """A new context block changes nothing; once trained, a change in one corner of the
    map reaches the opposite corner (what convolutions of the coarsest scale cannot)."""
    torch.manual_seed(0)
    block = SpatialContext(8, heads=2)
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x)
    torch.nn.init.normal_(block.out.weight, std=0.5)
    poked = x.clone()
    poked[:, :, 0, 0] += 3.0
    assert (block(poked) - block(x))[:, :, 5, 5].abs().max() > 1e-3


def test_model_with_context_starts_as_the_model_without() -> None:
    torch.manual_seed(0)
    plain = MotionModel(MotionConfig(grid_size=32)).eval()
    torch.manual_seed(0)
    with_context = MotionModel(MotionConfig(grid_size=32, context=True)).eval()
    missing, unexpected = with_context.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("context.") for k in missing)
    frames = torch.rand(1, 5, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(with_context(frames, "anchored"), plain(frames, "anchored"))


def test_gradient_error_is_the_strain_error() -> None:
    """A field that is right up to a constant has no gradient error; a uniform stretch
    missed by 5 % has an error of 0.05 per stretched component, inside the mask only."""
    rows = torch.arange(32.0).view(32, 1).expand(32, 32)
    truth = torch.stack((0.10 * rows, torch.zeros(32, 32)))[None]
    mask = torch.zeros(32, 32)
    mask[8:24, 8:24] = 1
    assert gradient_error(truth + 3.0, truth, mask).item() == pytest.approx(0.0, abs=1e-6)
    pred = torch.stack((0.15 * rows, torch.zeros(32, 32)))[None]
    # row differences (16 x 15 pairs) err by 0.05, column differences (15 x 16) by 0
    assert gradient_error(pred, truth, mask).item() == pytest.approx(0.05 * 0.5, rel=1e-5)
    pred[..., :8, :] += 100.0  # outside the mask
    assert gradient_error(pred, truth, mask).item() == pytest.approx(0.05 * 0.5, rel=1e-5)
