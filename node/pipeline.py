"""The analysis pipeline shared by ``cinestrain analyze`` and the node's worker.

Reader -> ED phase -> motion model -> outputs. A job is plain data
(:class:`AnalysisRequest`); the result is files in the output folder plus an
:class:`AnalysisOutcome`, so the same job can later run on another queue or machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dicom_io import CineSeries, load_cine
from inference.checkpoint import load_model, shipped_weights_path
from inference.motion import estimate_motion
from inference.phases import detect_ed_phase
from inference.preprocess import find_heart_centres, normalise_intensity

log = logging.getLogger(__name__)

#: called with (stage, done, total)
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AnalysisRequest:
    """One analysis job.

    Attributes
    ----------
    inputs
        DICOM files and/or folders holding the cine stack.
    out_dir
        Where results are written (created).
    pairing, temporal
        Model variant (DESIGN.md § Pairing, § The motion model).
    weights
        Model file; ``None``: the weights shipped for ``temporal``.
    ed_phase
        ``"auto"`` (largest LV blood pool) or a fixed 0-based phase index.
    device
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    save_motion
        Also write ``motion.npz`` (DESIGN.md § report.json).
    series_instance_uid
        Analyse the stack this series belongs to, not the best one found.
    """

    inputs: tuple[Path, ...]
    out_dir: Path
    pairing: Literal["anchored", "consecutive"] = "anchored"
    temporal: Literal["gru", "transformer", "none"] = "gru"
    weights: Path | None = None
    ed_phase: Literal["auto"] | int = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    save_motion: bool = False
    series_instance_uid: str | None = None


@dataclass
class AnalysisOutcome:
    """What a job produced."""

    series_instance_uid: str
    shape: tuple[int, int, int, int]
    ed_phase: int
    ed_phase_source: str
    files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``auto`` means the GPU when one is present."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def choose_ed_phase(
    cine: CineSeries, requested: Literal["auto"] | int, centres: np.ndarray
) -> tuple[int, str, list[str]]:
    """The ED phase, how it was chosen, and any warning.

    A fixed index wins; ``auto`` takes the phase with the largest LV blood pool, and
    falls back to phase 0 (the R-wave trigger) when the images give no clear answer.
    """
    t = cine.n_phases
    if requested != "auto":
        if not 0 <= int(requested) < t:
            raise ValueError(f"ed_phase {requested} is outside 0..{t - 1} for this cine")
        return int(requested), "fixed", []
    estimate = detect_ed_phase(normalise_intensity(cine.pixels), cine.in_plane_spacing, centres)
    if not estimate.reliable:
        return (
            0,
            "fallback-first-phase",
            ["ED could not be told from the blood-pool area; phase 0 (R-wave) assumed"],
        )
    return estimate.ed_phase, "largest-blood-pool", []


def run_analysis(request: AnalysisRequest, progress: Progress | None = None) -> AnalysisOutcome:
    """Run one job end to end; raises :class:`dicom_io.CineSeriesError` on bad input."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    cine = load_cine(list(request.inputs), series_instance_uid=request.series_instance_uid)
    timings["read_s"] = time.perf_counter() - start
    log.info("series %s: %s cine loaded", cine.series_instance_uid, "x".join(map(str, cine.shape)))

    spacing = cine.in_plane_spacing
    centres = find_heart_centres(normalise_intensity(cine.pixels), spacing)
    ed, ed_source, warnings = choose_ed_phase(cine, request.ed_phase, centres)

    weights = request.weights or shipped_weights_path(request.temporal)
    model, _ = load_model(weights, pairing=request.pairing)
    if model.config.temporal != request.temporal:
        warnings.append(
            f"weights {weights} are a '{model.config.temporal}' model, not '{request.temporal}'"
        )
    start = time.perf_counter()
    u = estimate_motion(
        cine.pixels,
        spacing,
        ed,
        model,
        centres=centres,
        device=resolve_device(request.device),
        progress=None if progress is None else (lambda d, n: progress("motion", d, n)),
    )
    timings["motion_s"] = time.perf_counter() - start

    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcome = AnalysisOutcome(
        cine.series_instance_uid, cine.shape, ed, ed_source, warnings=warnings, timings_s=timings
    )
    if request.save_motion:
        path = out / "motion.npz"
        np.savez_compressed(
            path,
            displacement=u.astype(np.float32),
            slice_positions=cine.slice_positions.astype(np.float64),
            trigger_times=cine.trigger_times.astype(np.float64),
            ed_phase=np.int64(ed),
            pixel_spacing=np.asarray(spacing, np.float64),
        )
        outcome.files.append(path)
    return outcome
