"""``cinestrain status``: what the node received, what it is doing, what failed, and where
each job's results are and where they went.

Read-only: the index is opened without writing (the node may be running).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from cinestrain.cli.common import load_node_config

#: how many of the newest jobs ``status`` lists unless told (``--jobs``)
DEFAULT_JOBS = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
        help=f"list the N newest jobs (default {DEFAULT_JOBS}; 0: every job)",
    )


def collect(cfg: Any, jobs: int | None = DEFAULT_JOBS) -> dict[str, Any]:
    """The status report of the node whose storage ``cfg`` names.

    Parameters
    ----------
    cfg
        The configuration (its ``storage``).
    jobs
        How many of the newest jobs to list in ``recent_jobs`` (None: every job).

    Raises
    ------
    IndexReadOnlyError
        The index cannot be read (from an earlier release the node has not opened yet).
    """
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE, StackState

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
    index = Index(root / INDEX_FILE, read_only=True)
    try:
        report.update(index.summary().as_dict())
        report["recent_jobs"] = [d.as_dict() for d in index.recent_jobs(jobs)]
        report["skipped_stacks"] = [
            {"id": s.id, "study_uid": s.study_uid, "series_uids": list(s.series_uids),
             "shape": s.shape, "reason": s.reason}
            for s in index.stacks_in(StackState.SKIPPED)
        ]
        report["failed_stacks"] = []
        for stack in index.stacks_in(StackState.FAILED):
            latest = index.latest_job(stack.id)
            report["failed_stacks"].append(
                {"id": stack.id, "study_uid": stack.study_uid,
                 "series_uids": list(stack.series_uids), "shape": stack.shape,
                 "reason": stack.reason, "job_id": None if latest is None else latest.id})
    finally:
        index.close()
    return report


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def render_job(job: dict[str, Any]) -> list[str]:
    """One job of the report (``recent_jobs``) as a few indented lines."""
    when = job["created"] or "-"
    if job["finished"]:
        when += f" -> {job['finished']}"
    lines = [f"job {job['id']}  {job['state']}  {when}"]
    series = job["series_uids"]
    more = f" (+{len(series) - 1} more series)" if len(series) > 1 else ""
    lines.append(f"  study    {job['study_uid']}")
    lines.append(f"  series   {series[0] if series else '-'}{more}  "
                 f"[{job['shape']}, {job['instances']} instances]")
    if job["state"] == "done":
        if job["results_exist"] and job["file_count"]:
            held = _plural(job["file_count"], "file")
        else:
            held = "removed (storage.retention_days)"
    elif job["state"] in ("pending", "running"):
        held = "not written yet"
    else:
        held = f"the job {job['state']}"
    lines.append(f"  results  {job['results']}  ({held})")
    if job["error"]:
        lines.append(f"  error    {job['error']}  (cinestrain jobs show {job['id']})")
    for exp in job["exports"]:
        detail = f"{exp['state']}, {_plural(exp['attempts'], 'try')}"
        if exp["state"] == "done":
            detail += f", {exp['sent']} sent"
        if exp["last_error"]:
            detail += f": {exp['last_error']}"
        if exp["state"] == "dead":
            detail += f"  (cinestrain send {job['id']} {exp['destination']})"
        lines.append(f"  export   {exp['destination']}: {detail}")
    if job["state"] == "done" and not job["exports"]:
        lines.append(f"  export   none (no destination then: cinestrain send {job['id']})")
    return lines


def render(report: dict[str, Any]) -> str:
    """The report as readable lines."""
    disk = report["disk"]
    lines = [
        f"storage   {report['storage']}  ({disk['free_mb']} MB free, "
        f"floor {disk['min_free_mb']} MB)",
    ]
    if "note" in report:
        return "\n".join([*lines, report["note"]])

    from cinestrain.node.records import local_time

    def states(counts: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"

    inst = report["instances"]
    lines += [
        f"received  {inst['instances']} instances ({inst['bytes'] // 2**20} MB), "
        f"{inst['series']} series, {inst['studies']} studies; "
        f"last {local_time(inst['last_received']) or '-'}",
        f"series    {states(report['series'])}",
        f"stacks    {states(report['stacks'])}",
        f"jobs      {states(report['jobs'])}",
        f"exports   {states(report['exports'])}",
    ]
    if report["recent_jobs"]:
        lines += ["", "newest jobs first (--jobs N lists more):"]
        for job in report["recent_jobs"]:
            lines += render_job(job)
    problems: list[str] = []
    studies = {s["id"]: s["study_uid"] for s in report["failed_stacks"]}
    for job in report["failed_jobs"]:
        first = (job["error"] or "").splitlines()[0] if job["error"] else ""
        study = f", study {studies[job['stack_id']]}" if job["stack_id"] in studies else ""
        problems.append(f"FAILED job {job['id']} (stack {job['stack_id']}{study}): {first}"
                        f"  (cinestrain retry {job['id']})")
    for exp in report["dead_exports"]:
        problems.append(
            f"DEAD export {exp['id']} of job {exp['job_id']} -> {exp['destination']} after "
            f"{exp['attempts']} tries: {exp['last_error']}  (cinestrain retry {exp['job_id']})"
        )
    listed = {job["id"] for job in report["failed_jobs"]}
    for stack in report["failed_stacks"]:
        if stack["job_id"] in listed:
            continue  # said with its job
        problems.append(f"failed stack {stack['id']} (study {stack['study_uid']}, job "
                        f"{stack['job_id']}): {stack['reason']}")
    covered = []
    for stack in report["skipped_stacks"]:
        covered.append(f"stack {stack['id']}: ")
        problems.append(f"skipped stack {stack['id']} (study {stack['study_uid']}, "
                        f"{len(stack['series_uids'])} series): {stack['reason']}")
    for series in report["skipped_series"]:
        if not (series["reason"] or "").startswith(tuple(covered)):
            problems.append(f"skipped series {series['series_uid']}: {series['reason']}")
    if problems:
        lines += ["", *problems]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the status; 1 when something failed or is dead-lettered, 2 on a bad
    configuration or an index this release cannot read."""
    from cinestrain.node.index import IndexReadOnlyError

    cfg = load_node_config(args.config)
    if args.jobs < 0:
        print("cinestrain status: --jobs takes 0 (every job) or more", file=sys.stderr)
        return 2
    try:
        report = collect(cfg, args.jobs or None)
    except IndexReadOnlyError as exc:
        print(f"cinestrain status: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 1 if report.get("failed_jobs") or report.get("dead_exports") else 0
