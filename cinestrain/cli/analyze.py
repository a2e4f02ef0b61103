"""``cinestrain analyze``: the whole pipeline on a folder of DICOM files, no networking."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from cinestrain.cli.common import FAILED, USAGE, fail, load_node_config
from cinestrain.cli.view import add_viewer_arguments, send_and_print, settings_from
from cinestrain.dicom_io import CineSeriesError
from cinestrain.dicom_io.read.seg import SegmentationReadError
from cinestrain.inference.heart.aha import SEGMENT_NAMES
from cinestrain.inference.model.checkpoint import CheckpointError
from cinestrain.inference.model.settings import PAIRINGS, TEMPORALS
from cinestrain.inference.model.shipped_weights import missing_weights
from cinestrain.pipeline.job import AnalysisRequest
from cinestrain.pipeline.run import run_analysis


def _ed_phase(value: str) -> str | int:
    if value == "auto":
        return value
    try:
        index = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be 'auto' or a 0-based phase index") from None
    if index < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="DICOM folder(s) or files")
    parser.add_argument("--out", type=Path, required=True, help="output folder (created)")
    parser.add_argument("--config", type=Path, help="node configuration for model defaults")
    parser.add_argument("--pairing", choices=PAIRINGS, help="default: config")
    parser.add_argument("--temporal", choices=TEMPORALS, help="default: config")
    parser.add_argument("--weights", type=Path, help="model file (default: the shipped weights)")
    parser.add_argument(
        "--ed-phase", type=_ed_phase, help="'auto' (largest LV blood pool) or a phase index"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: config")
    parser.add_argument("--series", help="SeriesInstanceUID of the stack to analyse")
    parser.add_argument(
        "--save-motion", action="store_true", help="also write motion.npz (displacement in mm)"
    )
    parser.add_argument(
        "--seg", type=Path, metavar="PATH",
        help="DICOM Segmentation of the ED myocardium (default: a SEG among the inputs that "
        "references the stack, else automatic)",
    )
    parser.add_argument(
        "--view", action="store_true",
        help="send the study and its results to the local OHIF viewer (`make viewer`) and "
        "print its URL",
    )
    add_viewer_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = load_node_config(args.config)  # invalid: main prints it, exit 2
    overrides = {"pairing": args.pairing, "temporal": args.temporal, "weights": args.weights,
                 "ed_phase": args.ed_phase}
    request = AnalysisRequest.from_config(
        cfg, args.inputs, args.out,
        model={k: v for k, v in overrides.items() if v is not None},
        device=args.device, save_motion=args.save_motion, series_instance_uid=args.series,
        seg=args.seg,
    )
    for path in (*request.inputs, *([request.seg] if request.seg else [])):
        if not path.exists():
            return fail("analyze", f"{path}: no such file or folder", USAGE)
    problem = missing_weights(request.model.temporal, request.model.weights)
    if problem is not None:
        return fail("analyze", problem, USAGE)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            # motion counts model passes over a slice: 1 + model.recentre_rounds per slice
            unit = "slice pass" if stage == "motion" else "slice"
            bar = bars[stage] = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr)
        bar.n = done
        bar.refresh()

    try:
        with logging_redirect_tqdm():  # log lines above the progress bars, not over them
            outcome = run_analysis(request, progress)
    except (CineSeriesError, SegmentationReadError, CheckpointError, ValueError) as exc:
        return fail("analyze", exc, FAILED)  # nothing analysable
    finally:
        for bar in bars.values():
            bar.close()
    s, t, h, w = outcome.shape
    print(f"series {outcome.series_instance_uid}: {s} slices x {t} phases, {h}x{w}")
    print(f"ED phase {outcome.ed_phase} ({outcome.ed_phase_source})")
    if "motion_s" in outcome.timings_s:
        print(
            f"motion: {request.model.temporal} model, {request.model.pairing} pairing, "
            f"{outcome.timings_s['motion_s']:.1f} s"
        )
    if outcome.report is not None and outcome.error is None:
        print_summary(outcome.report)
    for warning in outcome.warnings:
        print(f"warning: {warning}")
    dicom = [p for p in outcome.files if p.suffix == ".dcm"]
    for path in outcome.files:
        if path.suffix != ".dcm":
            print(f"wrote {path}")
    if dicom:
        print(f"wrote {len(dicom)} DICOM objects in {dicom[0].parent}: {_kinds(dicom)}")
    if outcome.error is not None:
        return fail("analyze", outcome.error, FAILED)
    if args.view:
        return send_and_print(settings_from(args), [*request.inputs, *dicom])
    return 0


def _kinds(paths: list[Path]) -> str:
    """``pm_radial_strain x10, sr_report x1, ...``: files counted by name without the
    phase or slice suffix."""
    counts = Counter(re.sub(r"_[ts]\d+$", "", p.stem) for p in paths)
    return ", ".join(f"{kind} x{n}" for kind, n in counts.items())


def _fmt(value: object, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_summary(report: dict) -> None:
    """Global peaks, LV function and the 16-segment table of a report, for a human."""
    g = report["global"]
    print(f"ES phase {report['es_phase']}; myocardium: {report['myocardium_source']}")
    print(
        f"global peak circumferential strain {_fmt(g['peak_circumferential_strain_pct'])} % "
        f"at {_fmt(g['time_to_peak_circumferential_ms'], '.0f')} ms, "
        f"radial {_fmt(g['peak_radial_strain_pct'])} % "
        f"at {_fmt(g['time_to_peak_radial_ms'], '.0f')} ms"
    )
    f = report.get("function")
    if f:
        print(
            f"EDV {f['edv_ml']:.0f} ml, ESV {f['esv_ml']:.0f} ml, SV {f['sv_ml']:.0f} ml, "
            f"EF {f['ef_pct']:.0f} %, mass {f['mass_g']:.0f} g"
        )
    print(f"{'seg':>3s}  {'name':24s} {'circ %':>7s} {'t ms':>6s} {'rad %':>7s} {'t ms':>6s}")
    for key in map(str, range(1, 17)):
        v = report["segments"][key]
        print(
            f"{key:>3s}  {SEGMENT_NAMES[int(key)]:24s} "
            f"{_fmt(v['peak_circumferential_strain_pct']):>7s} "
            f"{_fmt(v['time_to_peak_circumferential_ms'], '.0f'):>6s} "
            f"{_fmt(v['peak_radial_strain_pct']):>7s} "
            f"{_fmt(v['time_to_peak_radial_ms'], '.0f'):>6s}"
        )

