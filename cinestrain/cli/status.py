"""``cinestrain status``: what the node received, what it is doing and what failed."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from cinestrain.config import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def collect(cfg: Any) -> dict[str, Any]:
    """The status report of the node whose storage ``cfg`` names."""
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE

    root = Path(cfg.storage.directory)
    usage = shutil.disk_usage(root) if root.exists() else None
    report: dict[str, Any] = {
        "storage": str(root),
        "disk": {
            "free_mb": usage.free // 2**20 if usage else None,
            "total_mb": usage.total // 2**20 if usage else None,
            "min_free_mb": cfg.storage.min_free_mb,
        },
    }
    if not (root / INDEX_FILE).exists():
        report["note"] = "no index yet: the node has not run with this storage"
        return report
    index = Index(root / INDEX_FILE)
    try:
        report.update(index.summary().as_dict())
    finally:
        index.close()
    return report


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).isoformat(" ", "seconds") if ts else "-"


def render(report: dict[str, Any]) -> str:
    """The report as a few readable lines."""
    disk = report["disk"]
    lines = [
        f"storage   {report['storage']}  ({disk['free_mb']} MB free, "
        f"floor {disk['min_free_mb']} MB)",
    ]
    if "note" in report:
        return "\n".join([*lines, report["note"]])

    def states(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

    inst = report["instances"]
    lines += [
        f"received  {inst['instances']} instances ({inst['bytes'] // 2**20} MB), "
        f"{inst['series']} series, {inst['studies']} studies; last {_when(inst['last_received'])}",
        f"series    {states(report['series'])}",
        f"stacks    {states(report['stacks'])}",
        f"jobs      {states(report['jobs'])}",
        f"exports   {states(report['exports'])}",
    ]
    for job in report["failed_jobs"]:
        first = (job["error"] or "").splitlines()[0] if job["error"] else ""
        lines.append(f"FAILED job {job['id']} (stack {job['stack_id']}): {first}")
    for exp in report["dead_exports"]:
        lines.append(
            f"DEAD export {exp['id']} of job {exp['job_id']} -> {exp['destination']} after "
            f"{exp['attempts']} tries: {exp['last_error']}  (cinestrain retry {exp['job_id']})"
        )
    for series in report["skipped_series"]:
        lines.append(f"skipped series {series['series_uid']}: {series['reason']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the status; 1 when something failed or is dead-lettered."""
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"cinestrain status: {exc}", file=sys.stderr)
        return 2
    report = collect(cfg)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report.get("failed_jobs") or report.get("dead_exports") else 0
