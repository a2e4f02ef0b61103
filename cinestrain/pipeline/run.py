"""The analysis pipeline shared by ``cinestrain analyze`` and the node's worker.

Reader -> ED phase -> ED myocardium (the study's SEG, or automatic) -> motion model ->
strain and LV function -> ``report.json``, bull's-eye PNG (and ``motion.npz``) and the
DICOM results (:func:`dicom_io.write.results.write_dicom_results`: Parametric Maps, SR,
SEG, secondary captures). A stack that cannot be analysed (refused by
:mod:`pipeline.guards`: one slice, not short axis; or no LV) still gets a ``report.json``
whose ``warnings`` say why, with no numbers, and no DICOM. This
module only wires the rooms together: reading and writing are :mod:`dicom_io`'s, every
decision about the heart (ED phase, myocardium, strain) is :mod:`inference.heart`'s, the
motion is :mod:`inference.model`'s. A job is an :class:`~pipeline.job.AnalysisRequest`; the
result is files in the output folder plus an :class:`~pipeline.job.AnalysisOutcome`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pydicom.uid import SegmentationStorage

from cinestrain import __version__
from cinestrain.dicom_io import CineSeries, find_stacks, load_stack, scan_dicom
from cinestrain.dicom_io.read.seg import (
    SegMasks,
    SegmentationReadError,
    read_myocardium_segmentation,
)
from cinestrain.dicom_io.write.bullseye import save_bullseye
from cinestrain.dicom_io.write.results import (
    StrainMaps,
    one_warning_for_source_uids,
    read_source_headers,
    write_dicom_results,
)
from cinestrain.inference.heart.analysis import LVAnalysis, analyze_motion, failed_report
from cinestrain.inference.heart.centres import (
    find_heart_centres,
    motion_centres,
    normalise_intensity,
)
from cinestrain.inference.heart.ed_phase import choose_ed_phase
from cinestrain.inference.heart.myocardium import (
    AutomaticMyocardium,
    MyocardiumError,
    MyocardiumMasks,
    masks_from_segmentation,
)
from cinestrain.inference.model.checkpoint import load_model
from cinestrain.inference.model.estimate import estimate_motion, resolve_device
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.pipeline.guards import axis_refusal, header_refusal, lv_axis_tilt_deg
from cinestrain.pipeline.job import AnalysisOutcome, AnalysisRequest

log = logging.getLogger(__name__)

#: called with (stage, done, total)
Progress = Callable[[str, int, int], None]


def find_segmentation(
    cine: CineSeries, explicit: Path | None, candidates: list[Path]
) -> tuple[SegMasks | None, Path | None]:
    """The ED masks of the stack from a DICOM Segmentation.

    An explicit file must fit the stack (:class:`SegmentationReadError` otherwise);
    Segmentations found among the inputs that do not reference this stack are skipped.
    """
    if explicit is not None:
        return read_myocardium_segmentation(explicit, cine), explicit
    for path in candidates:
        try:
            return read_myocardium_segmentation(path, cine), path
        except SegmentationReadError as exc:
            log.info("SEG %s not used: %s", path, exc)
    return None, None


def _model_identity(request: AnalysisRequest, weights: Path) -> dict[str, object]:
    model = request.model
    return {"name": "cinestrain motion model", "version": __version__,
            "weights": weights.name, "pairing": model.pairing, "temporal": model.temporal,
            "passes": model.passes, "recentre_rounds": model.recentre_rounds}


def _write_json(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return path


def _masks(cine: CineSeries, seg: SegMasks | None, ed: int, segment: AutomaticMyocardium
           ) -> MyocardiumMasks:
    spacing = cine.in_plane_spacing
    if seg is None:
        return segment(ed)
    return masks_from_segmentation(seg.myocardium, spacing, lv_cavity=seg.lv_cavity,
                                   rv_cavity=seg.rv_cavity, ed_frames=cine.pixels[:, ed])


def run_analysis(request: AnalysisRequest, progress: Progress | None = None,
                 on_file: Callable[[Path], None] | None = None) -> AnalysisOutcome:
    """Run one job end to end.

    ``on_file`` is called with each DICOM result as soon as it is complete (the node's
    worker passes them on, so that they are sent while the others are written).

    Raises :class:`dicom_io.CineSeriesError` when no stack can be read,
    :class:`dicom_io.read.seg.SegmentationReadError` for an explicit SEG that does not fit;
    a stack that is read but cannot be analysed gives an outcome with ``error`` set.
    """
    timings: dict[str, float] = {}
    start = time.perf_counter()
    scan = scan_dicom(list(request.inputs))
    cine = load_stack(find_stacks(scan).select(request.series_instance_uid))
    seg_files = [p for h in scan.series if SegmentationStorage in h.sop_class_uids
                 for p in h.files]
    timings["read_s"] = time.perf_counter() - start
    log.info("series %s: %s cine loaded", cine.series_instance_uid, "x".join(map(str, cine.shape)))
    out = Path(request.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    spacing = cine.in_plane_spacing
    start = time.perf_counter()
    normalised = normalise_intensity(cine.pixels)
    centres = find_heart_centres(normalised, spacing)
    segment = AutomaticMyocardium(cine.pixels, spacing, centres)
    seg, seg_path = find_segmentation(cine, request.seg, seg_files)
    if seg is not None and request.model.ed_phase == "auto":
        ed, ed_source, warnings = seg.phase, "segmentation", []
    else:
        ed, ed_source, warnings = choose_ed_phase(cine.pixels, spacing, request.model.ed_phase,
                                                  centres, normalised=normalised,
                                                  segment=segment)
    del normalised
    if seg is not None and seg.phase != ed:
        warnings.append(f"the SEG outlines phase {seg.phase}, not phase {ed}: phase "
                        f"{seg.phase} is taken as ED")
        ed, ed_source = seg.phase, "segmentation"
    timings["heart_ed_s"] = time.perf_counter() - start
    weights = request.model.weights or shipped_weights_path(request.model.temporal)
    outcome = AnalysisOutcome(
        cine.series_instance_uid, cine.shape, ed, ed_source, warnings=warnings, timings_s=timings
    )
    identity = _model_identity(request, Path(weights))

    def fail(message: str) -> AnalysisOutcome:
        log.warning("series %s: %s", cine.series_instance_uid, message)
        outcome.error = message
        outcome.report = failed_report(
            series_instance_uid=cine.series_instance_uid, model=identity,
            trigger_times=cine.trigger_times, slice_positions=cine.slice_positions,
            ed_phase=ed, ed_phase_source=ed_source, warnings=[*warnings, message])
        outcome.files.append(_write_json(out / "report.json", outcome.report))
        return outcome

    refusal = header_refusal(cine.n_slices, cine.orientation)
    if refusal is not None:
        return fail(f"nothing analysable: {refusal}")
    start = time.perf_counter()
    try:
        masks = _masks(cine, seg, ed, segment)
    except MyocardiumError as exc:
        return fail(f"no LV found: {exc}")
    timings["myocardium_s"] = time.perf_counter() - start
    refusal = axis_refusal(
        lv_axis_tilt_deg(masks.lv_centres, cine.image_positions, cine.image_orientations,
                         cine.pixel_spacing), cine.orientation)
    if refusal is not None:
        return fail(f"nothing analysable: {refusal}")
    if seg_path is not None:
        log.info("myocardium from SEG %s (%s)", seg.sop_instance_uid, seg_path)

    start = time.perf_counter()
    model, _ = load_model(weights)
    timings["model_s"] = time.perf_counter() - start
    if model.config.temporal != request.model.temporal:
        warnings.append(f"weights {weights} are a '{model.config.temporal}' model, not "
                        f"'{request.model.temporal}'")
    start = time.perf_counter()
    u = estimate_motion(
        cine.pixels,
        spacing,
        ed,
        model,
        request.model.motion_settings(),
        centres=motion_centres(centres, masks.lv_centres),
        follow=masks.myocardium,
        device=resolve_device(request.device),
        progress=None if progress is None else (lambda d, n: progress("motion", d, n)),
    )
    timings["motion_s"] = time.perf_counter() - start
    start = time.perf_counter()
    try:
        analysis = analyze_motion(
            u, spacing, cine.slice_trigger_times, cine.slice_positions, ed, masks,
            orientation=cine.image_orientations[0],
            slice_thickness=float(np.nanmedian(cine.slice_thickness)))
    except MyocardiumError as exc:
        return fail(f"no LV found: {exc}")
    timings["strain_s"] = time.perf_counter() - start
    write_results(outcome, analysis, cine, u, out, identity, request.save_motion,
                  request.uid_series, request.write_processes, on_file)
    return outcome


def _save_motion(path: Path, u: np.ndarray, cine: CineSeries, analysis: LVAnalysis,
                 ed_phase: int) -> Path:
    np.savez_compressed(
        path,
        displacement=u.astype(np.float32, copy=False),
        slice_positions=cine.slice_positions.astype(np.float64),
        trigger_times=cine.trigger_times.astype(np.float64),
        myocardium=analysis.masks.myocardium.astype(bool),
        ed_phase=np.int64(ed_phase),
        pixel_spacing=np.asarray(cine.in_plane_spacing, np.float64),
    )
    return path


def strain_maps(analysis: LVAnalysis) -> StrainMaps:
    """The arrays of an analysis that the DICOM results show."""
    masks = analysis.masks
    return StrainMaps(
        radial_pct=analysis.strain.radial_pct,
        circumferential_pct=analysis.strain.circumferential_pct,
        ed_phase=analysis.strain.ed_phase, myocardium=masks.myocardium,
        lv_cavity=masks.lv_cavity, rv_cavity=masks.rv_cavity, aha_labels=analysis.aha_labels,
        automatic=masks.source == "automatic")


def write_results(outcome: AnalysisOutcome, analysis: LVAnalysis, cine: CineSeries,
                  u: np.ndarray, out: Path, identity: dict[str, object], save_motion: bool,
                  uid_series: tuple[str, ...] | None = None, write_processes: int = 1,
                  on_file: Callable[[Path], None] | None = None) -> None:
    """``report.json``, the bull's-eye PNG, (optionally) ``motion.npz``, and the DICOM
    results (written last, next to them; the node exports every file of the folder).

    ``motion.npz`` is compressed on a thread while the DICOM results are written (zlib
    works outside the GIL: several seconds for a 10 x 25 x 256 x 256 stack, on the other
    core).
    """
    start = time.perf_counter()
    outcome.report = analysis.report(
        series_instance_uid=cine.series_instance_uid, model=identity,
        trigger_times=cine.trigger_times, slice_positions=cine.slice_positions,
        ed_phase_source=outcome.ed_phase_source, warnings=outcome.warnings)
    outcome.warnings = list(outcome.report["warnings"])  # type: ignore[arg-type]
    outcome.files.append(_write_json(out / "report.json", outcome.report))
    peaks = {k: c.peak_circumferential_pct for k, c in analysis.strain.segments.items()}
    outcome.files.append(save_bullseye(peaks, out / "bullseye_circumferential.png"))
    with ThreadPoolExecutor(1, thread_name_prefix="motion-npz") as pool:
        motion = (pool.submit(_save_motion, out / "motion.npz", u, cine, analysis,
                              outcome.ed_phase) if save_motion else None)
        outcome.timings_s["report_s"] = time.perf_counter() - start
        start = time.perf_counter()
        with one_warning_for_source_uids(cine.series_instance_uid):
            dicom = write_dicom_results(
                cine, read_source_headers(cine), strain_maps(analysis), u, outcome.report, out,
                uid_series=uid_series, processes=write_processes, on_written=on_file,
            )
        outcome.timings_s["dicom_s"] = time.perf_counter() - start
        start = time.perf_counter()
        if motion is not None:
            outcome.files.append(motion.result())
    outcome.timings_s["motion_npz_wait_s"] = time.perf_counter() - start
    outcome.files.extend(dicom.paths)
