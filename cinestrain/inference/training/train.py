"""Training of the motion model on the synthetic phantom (``cinestrain train``).

Each step draws one cine slice (a whole cycle, any number of phases) from the phantom
dataset, runs the model in *both* pairings, and minimises

- end-point error (mm) against the phantom's truth, for the anchored fields and for the
  composed consecutive ones (myocardium weighted up),
- error of the displacement gradient in the myocardium (the error of strain, which EPE
  alone weighs too little: a wall's thickening is a small difference of displacements),
- local NCC between ED and each frame warped onto it (unsupervised),
- smoothness of the fields,
- composition consistency: consecutive fields composed along the cycle against the
  anchored ones (0->1->...->k against 0->k),

so that one set of weights serves either pairing. Training is seeded and deterministic:
sample ``i`` of the run is always the same slice, and a resumed run continues exactly
where the checkpoint stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cinestrain.inference.model.checkpoint import read_checkpoint, save_checkpoint
from cinestrain.inference.model.network import MotionConfig, MotionModel
from cinestrain.inference.model.pairing import cycle_order
from cinestrain.inference.model.warp import compose_sequence, warp_image
from cinestrain.inference.training.losses import (
    composition_consistency,
    end_point_error,
    gradient_error,
    local_ncc,
    smoothness,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """One training run. Defaults are those of the shipped weights."""

    steps: int = 6000
    lr: float = 1e-3
    seed: int = 0
    epe_weight: float = 1.0
    ncc_weight: float = 0.2
    smooth_weight: float = 0.02
    compose_weight: float = 0.1
    myocardium_weight: float = 4.0
    gradient_weight: float = 0.0
    checkpoint_every: int = 200
    log_every: int = 20
    loader_workers: int = 0
    #: passes of the network per cycle that training supervises (the shipped models: 2);
    #: recorded in the provenance, applied at run time through ``model.passes``
    passes: int = 1


def augment(sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Random 90-degree rotation / flip of frames, truth and mask, fields kept consistent.

    Transposing swaps the row and column components; flipping an axis negates its
    component. Makes the model blind to the in-plane orientation of the scan.
    """
    frames, u, myo = sample["frames"], sample["u"], sample["myocardium"]
    if rng.random() < 0.5:  # transpose rows <-> columns
        frames = frames.transpose(-1, -2)
        u = u.transpose(-1, -2)[:, [1, 0]]
        myo = myo.transpose(-1, -2)
    for axis, comp in ((-2, 0), (-1, 1)):
        if rng.random() < 0.5:
            frames = frames.flip(axis)
            u = u.flip(axis)
            u[:, comp] = -u[:, comp]
            myo = myo.flip(axis)
    return {**sample, "frames": frames.contiguous(), "u": u.contiguous(), "myocardium": myo}


class _Indexed(Dataset):
    """Sample ``i`` of the run: dataset item ``i``, augmented with a seed of its own."""

    def __init__(self, dataset: Dataset, seed: int, start: int, stop: int) -> None:
        self.dataset, self.seed, self.start, self.stop = dataset, seed, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> dict[str, Any]:
        index = self.start + i
        sample = self.dataset[index]
        sample = {
            k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in sample.items()
        }
        return augment(sample, np.random.default_rng([self.seed, index]))


def learning_rate_factor(step: int, total: int, warmup: int = 100) -> float:
    """Linear warm-up, then cosine decay to 5% at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return float(0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * progress)))  # plain float: the
    # optimiser state is saved in checkpoints that load with weights_only=True


def training_losses(
    model: MotionModel, sample: dict[str, Any], settings: TrainSettings, step: int = 0
) -> dict[str, torch.Tensor]:
    """All loss terms for one cine slice; ``total`` is their weighted sum.

    With ``settings.passes > 1`` the later passes refine the first pass of one
    pairing (anchored on even steps, consecutive on odd ones, to halve the cost); their
    end-point error and NCC count fully, the first pass's terms half (as RAFT weights
    its earlier iterates less).
    """
    # Real cine (see inference/training/real_cine.py) has no truth: only the unsupervised terms.
    supervised = bool(sample.get("supervised", True))
    epe_weight = settings.epe_weight if supervised else 0.0
    frames = sample["frames"].float()  # T, 1, H, W (acquisition order)
    truth = sample["u"].float()  # T, 2, H, W, mm
    spacing = float(sample["spacing_mm"])
    order = torch.from_numpy(cycle_order(frames.shape[0], int(sample["ed_phase"])))
    frames, truth = frames[order].unsqueeze(0), truth[order].unsqueeze(0)
    myocardium = sample["myocardium"].float()
    weight = 1.0 + (settings.myocardium_weight - 1.0) * myocardium
    grad_weight = settings.gradient_weight if supervised else 0.0
    truth_px = truth[:, 1:] / spacing

    anchored = model(frames, pairing="anchored")
    steps = model(frames, pairing="consecutive")
    composed = compose_sequence(steps)

    t = frames.shape[1]
    epe_a = end_point_error(anchored * spacing, truth[:, 1:], weight)
    epe_c = end_point_error(composed * spacing, truth[:, 1:], weight)
    grad = 0.5 * (
        gradient_error(anchored, truth_px, myocardium)
        + gradient_error(composed, truth_px, myocardium)
    )
    fixed = frames[:, :1].expand(-1, t - 1, -1, -1, -1).flatten(0, 1)
    warped = warp_image(frames[:, 1:].flatten(0, 1), anchored.flatten(0, 1))
    ncc = local_ncc(fixed, warped)
    smooth = smoothness(anchored) + smoothness(steps)
    compose = composition_consistency(steps, anchored)
    total = (
        epe_weight * 0.5 * (epe_a + epe_c)
        + grad_weight * grad
        + settings.ncc_weight * ncc
        + settings.smooth_weight * smooth
        + settings.compose_weight * compose
    )
    refined: dict[str, torch.Tensor] = {}
    if settings.passes > 1:
        estimate = model.lagrangian(anchored, "anchored") if step % 2 == 0 else model.lagrangian(
            steps, "consecutive"
        )
        for _ in range(1, settings.passes):
            estimate = model.refine_pass(frames, estimate)
        final = estimate[:, 1:]
        epe_r = end_point_error(final * spacing, truth[:, 1:], weight)
        grad = gradient_error(final, truth_px, myocardium)
        ncc_r = local_ncc(fixed, warp_image(frames[:, 1:].flatten(0, 1), final.flatten(0, 1)))
        total = (
            0.5 * total
            + epe_weight * epe_r
            + grad_weight * grad
            + settings.ncc_weight * ncc_r
            + settings.smooth_weight * smoothness(final)
        )
        refined = {"epe_refined_mm": epe_r} if supervised else {}
    epe = (
        {"epe_anchored_mm": epe_a, "epe_consecutive_mm": epe_c, "gradient": grad}
        if supervised
        else {}
    )
    return {
        "total": total,
        **refined,
        **epe,
        "ncc": ncc,
        "smooth": smooth,
        "compose_px": compose,
    }


def train(
    model_config: MotionConfig,
    dataset: Dataset,
    out_dir: str | os.PathLike[str],
    settings: TrainSettings,
    *,
    resume: bool = True,
    init: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int, dict[str, float]], None] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Train (or resume) a model; returns the path of the final checkpoint.

    ``out_dir`` receives ``last.pt`` (model, optimiser and step, every
    ``checkpoint_every`` steps), ``model.pt`` (final weights with provenance) and
    ``log.jsonl`` (one JSON object of losses every ``log_every`` steps). ``init`` starts
    a new run from the weights of another model file of the same architecture (e.g. the
    shipped weights), so training can go on where a previous machine left it.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    torch.set_flush_denormal(True)  # denormal gradients otherwise slow the CPU tenfold
    model = MotionModel(model_config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-5)
    step, elapsed = 0, 0.0
    last = out / "last.pt"
    if resume and last.exists():
        state = read_checkpoint(last)
        if not model_config.same_weights_as(state["config"]):
            raise ValueError(f"{last} was trained with another model configuration")
        model.load_state_dict(state["state_dict"])
        optimiser.load_state_dict(state["optimiser"])
        step, elapsed = int(state["step"]), float(state["elapsed_s"])
        log.info("resuming %s at step %d", out, step)
    elif init is not None:
        state = read_checkpoint(init)
        if model_config.same_weights_as(state["config"]):
            model.load_state_dict(state["state_dict"])
        elif (added := model_config.added_parts(state["config"])) is not None:
            missing, unexpected = model.load_state_dict(state["state_dict"], strict=False)
            if unexpected or any(not k.startswith(added) for k in missing):
                raise ValueError(f"{init} does not match this run's model: {missing + unexpected}")
            log.info("new parts %s start neutral (bilinear upsampling, zero context)", added)
        else:
            raise ValueError(f"{init} has another model configuration than this run")
        log.info("starting %s from the weights of %s", out, init)
    # The schedule is a pure function of the step, so a run can be resumed, and extended
    # with a larger ``steps``, without any scheduler state.
    for group in optimiser.param_groups:
        group["lr"] = settings.lr * learning_rate_factor(step, settings.steps)

    record = dict(provenance or {})
    record.update(settings=dataclasses.asdict(settings), model=model_config.to_dict())
    loader = DataLoader(
        _Indexed(dataset, settings.seed, step, settings.steps),
        batch_size=None,
        shuffle=False,
        num_workers=settings.loader_workers,
        persistent_workers=False,
    )
    model.train()
    started = time.monotonic() - elapsed
    with (out / "log.jsonl").open("a", encoding="utf-8") as log_file:
        for sample in loader:
            losses = training_losses(model, sample, settings, step)
            optimiser.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            step += 1
            for group in optimiser.param_groups:
                group["lr"] = settings.lr * learning_rate_factor(step, settings.steps)
            values = {k: v.item() for k, v in losses.items()}
            if progress is not None:
                progress(step, settings.steps, values)
            if step % settings.log_every == 0 or step == settings.steps:
                entry = {"step": step, "elapsed_s": round(time.monotonic() - started, 1), **values}
                log_file.write(json.dumps(entry) + "\n")
                log_file.flush()
            if step % settings.checkpoint_every == 0 or step == settings.steps:
                record.update(steps=step, wall_time_s=round(time.monotonic() - started, 1))
                save_checkpoint(
                    last,
                    model,
                    record,
                    extra={
                        "optimiser": optimiser.state_dict(),
                        "step": step,
                        "elapsed_s": time.monotonic() - started,
                    },
                )
    record.update(steps=step, wall_time_s=round(time.monotonic() - started, 1))
    final = out / "model.pt"
    save_checkpoint(final, model, record)
    return final
