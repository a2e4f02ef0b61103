"""``cinestrain inspect DIR``: which series and cine stacks a folder holds, and what is wrong.

Reads headers only. Exit status: 0 when a loadable cine stack was found, 1 when none
(the reason is printed), 2 on usage errors (a missing folder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cinestrain.dicom_io.geometry import classify_orientation
from cinestrain.dicom_io.read.errors import NotAnImageError, NotDicomError
from cinestrain.dicom_io.read.scan import describe_problems, scan_dicom
from cinestrain.dicom_io.read.stacks import (
    MIN_PHASES,
    CineStack,
    SeriesLayout,
    StackSearch,
    find_stacks,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("folder", type=Path, metavar="DIR", help="folder to inspect (recursive)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--min-phases",
        type=int,
        default=MIN_PHASES,
        metavar="N",
        help=f"fewest phases a cine may have (default {MIN_PHASES})",
    )


def run(args: argparse.Namespace) -> int:
    """Inspect ``args.folder``; print a table or JSON; return the exit status."""
    folder: Path = args.folder
    if not folder.is_dir():
        print(f"cinestrain inspect: no such folder: {folder}", file=sys.stderr)
        return 2
    search = find_stacks(scan_dicom(folder), min_phases=args.min_phases)
    report = build_report(search)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render_table(report))
    if any(stack["loadable"] for stack in report["stacks"]):
        return 0
    print(f"cinestrain inspect: no cine stack in {folder}: {_why_none(search)}", file=sys.stderr)
    return 1


def build_report(search: StackSearch) -> dict[str, Any]:
    """The JSON-ready report: ``{"series": [...], "stacks": [...], "problems": [...]}``."""
    selected = next((s for s in search.stacks if s.loadable), None)
    return {
        "files": search.scan.n_files,
        "series": [_series_entry(layout) for layout in search.layouts],
        "stacks": [_stack_entry(stack, stack is selected) for stack in search.stacks],
        "problems": [
            p.to_dict() for p in search.scan.problems if p.kind != NotAnImageError.__name__
        ],
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _series_entry(layout: SeriesLayout) -> dict[str, Any]:
    series = layout.series
    frame = layout.first_frame
    entry: dict[str, Any] = {
        "series_instance_uid": series.series_instance_uid,
        "study_instance_uid": series.study_instance_uid,
        "series_number": series.series_number,
        "series_description": series.series_description,
        "modality": series.modality,
        "sop_classes": series.sop_class_names,
        "instances": len(series.files),
        "frames": len(series.frames),
        "slices": len(layout.slices) if layout.slices else None,
        "phases": layout.n_phases or None,
        "rows": frame.rows if frame else None,
        "columns": frame.columns if frame else None,
        "pixel_spacing_mm": (
            [_round(v, 4) for v in frame.pixel_spacing] if frame and frame.pixel_spacing else None
        ),
        "slice_spacing_mm": None,
        "trigger_time_range_ms": None,
        "orientation": None,
        "short_axis": None,
        "cine": layout.error is None,
        "accepted_quirks": dict(series.quirks),
        "problems": [] if layout.error is None else [
            {"kind": layout.error.kind, "message": layout.error.problem}
        ],
    }
    if frame is not None and frame.orientation is not None:
        orientation = classify_orientation(np.array(frame.orientation))
        entry["orientation"] = orientation.describe()
        entry["short_axis"] = orientation.short_axis
    if layout.slices:
        positions = np.array([s.position_mm for s in layout.slices])
        if len(positions) > 1:
            entry["slice_spacing_mm"] = _round(np.median(np.diff(positions)))
        times = np.concatenate([s.trigger_times for s in layout.slices])
        entry["trigger_time_range_ms"] = [_round(times.min(), 2), _round(times.max(), 2)]
    else:
        times = [f.trigger_time for f in series.frames if f.trigger_time is not None]
        if times:
            entry["trigger_time_range_ms"] = [_round(min(times), 2), _round(max(times), 2)]
    return entry


def _stack_entry(stack: CineStack, selected: bool) -> dict[str, Any]:
    times = stack.trigger_times
    problems = [{"kind": "note", "message": note} for note in stack.notes]
    if stack.error is not None:
        problems.insert(0, {"kind": stack.error.kind, "message": str(stack.error)})
    return {
        "selected": selected,
        "loadable": stack.loadable,
        "study_instance_uid": stack.study_instance_uid,
        "series_instance_uids": list(stack.series_instance_uids),
        "slices": stack.n_slices,
        "phases": stack.n_phases,
        "rows": stack.rows,
        "columns": stack.columns,
        "pixel_spacing_mm": [_round(v, 4) for v in stack.pixel_spacing],
        "slice_spacing_mm": _round(stack.slice_spacing),
        "slice_thickness_mm": _round(stack.slice_thickness),
        "slice_positions_mm": [_round(p) for p in stack.slice_positions],
        "trigger_time_range_ms": [_round(times.min(), 2), _round(times.max(), 2)],
        "trigger_times_ms": [_round(t, 2) for t in np.median(times, axis=0)],
        "orientation": stack.orientation.describe(),
        "short_axis": stack.orientation.short_axis,
        "slice_normal": list(stack.orientation.normal),
        "frame_of_reference_uids": len(stack.frame_of_reference_uids),
        "sop_classes": sorted({n for s in stack.series for n in s.sop_class_names}),
        "problems": problems,
    }


def _why_none(search: StackSearch) -> str:
    reasons = [str(s.error) for s in search.stacks if s.error is not None]
    reasons += [
        str(layout.error) for layout in search.layouts
        if layout.error is not None and not isinstance(layout.error, NotAnImageError)
    ]
    if reasons:
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        return "; ".join(reasons[:3]) + more
    problems = search.scan.problems
    listed = f" ({describe_problems(problems)})" if problems else ""
    if search.scan.series:
        return f"none of the {len(search.scan.series)} series holds MR images{listed}"
    return f"no readable DICOM files among {search.scan.n_files} files{listed}"


def _dims(entry: dict[str, Any]) -> str:
    if entry.get("slices") and entry.get("phases"):
        return f"{entry['slices']}x{entry['phases']}x{entry['rows']}x{entry['columns']}"
    if entry.get("rows"):
        return f"?x?x{entry['rows']}x{entry['columns']}"
    return "-"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "-".join(f"{v:g}" for v in value) + unit
    return f"{value:g}{unit}"


def render_table(report: dict[str, Any]) -> str:
    """The compact human-readable form of :func:`build_report`'s output."""
    lines = [f"{report['files']} files, {len(report['series'])} series"]
    head = f"  {'#':>5} {'mod':<4} {'SOP class':<26} {'SxTxHxW':<16} {'pixel mm':<12}"
    head += f" {'slice mm':>8} {'trigger ms':<14} orientation"
    lines += ["SERIES", head]
    for s in report["series"]:
        sop = ", ".join(s["sop_classes"])[:26]
        spacing = _fmt(s["pixel_spacing_mm"][0]) if s["pixel_spacing_mm"] else "-"
        lines.append(
            f"  {s['series_number'] if s['series_number'] is not None else '-':>5} "
            f"{s['modality'][:4]:<4} {sop:<26} {_dims(s):<16} {spacing:<12} "
            f"{_fmt(s['slice_spacing_mm']):>8} {_fmt(s['trigger_time_range_ms']):<14} "
            f"{s['orientation'] or '-'}"
        )
        lines.append(f"        {s['series_instance_uid']}")
        for p in s["problems"]:
            lines.append(f"        ! {p['kind']}: {p['message']}")
    lines.append("STACKS" if report["stacks"] else "STACKS: none")
    for i, st in enumerate(report["stacks"], 1):
        mark = "*" if st["selected"] else ("x" if not st["loadable"] else " ")
        lines.append(
            f" {mark}{i:>3} {_dims(st):<16} pixel {_fmt(st['pixel_spacing_mm'][0])} mm, "
            f"slices {_fmt(st['slice_spacing_mm'])} mm apart, trigger "
            f"{_fmt(st['trigger_time_range_ms'])} ms, {st['orientation']}, "
            f"{len(st['series_instance_uids'])} series"
        )
        for p in st["problems"]:
            lines.append(f"        ! {p['kind']}: {p['message']}")
    if report["problems"]:
        lines.append(f"FILES SKIPPED ({len(report['problems'])})")
        not_dicom = [p for p in report["problems"] if p["kind"] == NotDicomError.__name__]
        for p in report["problems"]:
            if p["kind"] != NotDicomError.__name__:
                lines.append(f"  {p['kind']}: {p['path']}: {p['message']}")
        if not_dicom:
            examples = ", ".join(Path(p["path"]).name for p in not_dicom[:3])
            more = ", ..." if len(not_dicom) > 3 else ""
            lines.append(f"  {len(not_dicom)} files are not DICOM ({examples}{more})")
    if any(st["selected"] for st in report["stacks"]):
        lines.append("* = the stack that would be analysed; x = cannot be loaded")
    return "\n".join(lines)
