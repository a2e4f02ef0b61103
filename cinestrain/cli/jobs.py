"""``cinestrain jobs show ID``: one job whole: what it was asked (inputs, model settings),
its state, timings and memory, error, the files it wrote, and each destination's export.

Read-only: the index is opened without writing (the node may be running).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cinestrain.cli.common import UsageError, load_node_config, node_index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments (one sub-command, ``show``)."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser(
        "show", help="one job: request, state, timings, error, files, exports",
        description="One job: request (inputs, model settings), state, timings, error, "
        "the files it wrote and each destination's export. Exit 0, 1 when the job "
        "failed or an export is dead, 2 for an unknown job.",
    )
    show.add_argument("job", type=int, metavar="ID", help="job id (see cinestrain status)")
    show.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")
    show.add_argument("--json", action="store_true", help="print one JSON object")


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, int | float) else str(value)


def render(job: dict[str, Any]) -> str:
    """A job (:meth:`JobDetail.as_dict` with ``full=True``) as readable lines."""
    series = job["series_uids"]
    lines = [
        f"job {job['id']}  {job['state']}  (made when the stack was {job['trigger']}; "
        f"{job['attempts']} run(s))",
        f"study     {job['study_uid']}",
        f"series    {', '.join(series) or '-'}",
        f"stack     {job['stack_id']} ({job['stack_state']}): {job['shape']}, "
        f"{job['instances']} instances",
    ]
    request = job["request"]
    if "unreadable" in request:
        lines.append(f"request   unreadable: {request['unreadable']}")
    else:
        model = ", ".join(f"{k} {v if v is not None else '-'}"
                          for k, v in request["model"].items())
        lines.append(f"request   {request['inputs']} input file(s); device {request['device']}")
        lines.append(f"model     {model}")
    for label, key in (("created", "created"), ("started", "started"),
                       ("finished", "finished")):
        lines.append(f"{label:<9} {job[key] or '-'}")
    metrics = job["metrics"] or {}
    timings = metrics.get("timings_s") or {}
    if timings:
        lines.append("timings   " + ", ".join(f"{k.removesuffix('_s')} {_seconds(v)}"
                                              for k, v in timings.items()))
    if metrics.get("peak_rss_mb") is not None:
        lines.append(f"worker    peak {metrics['peak_rss_mb']:.0f} MB, CPU "
                     f"{_seconds(metrics.get('cpu_s'))}")
    files = job["files"]
    if files is None:
        held = ("not written yet" if job["state"] in ("pending", "running")
                else f"none: the job {job['state']}")
    elif not files or not job["results_exist"]:
        held = "removed (storage.retention_days)"
    else:
        held = f"{len(files)} file(s)"
    lines.append(f"results   {job['results']}  ({held})")
    if files and job["results_exist"]:
        root = Path(job["results"])
        for name in files:
            path = Path(name)
            lines.append(f"  {path.relative_to(root) if path.is_relative_to(root) else path}")
    if job["exports"]:
        lines.append("exports")
        for exp in job["exports"]:
            tries = "1 try" if exp["attempts"] == 1 else f"{exp['attempts']} tries"
            line = (f"  {exp['destination']}: {exp['state']}, {tries}, "
                    f"{exp['sent']} sent, {exp['updated']}")
            if exp["last_error"]:
                line += f"; last error: {exp['last_error']}"
            lines.append(line)
    elif job["state"] == "done":
        lines.append(f"exports   none (no destination then: cinestrain send {job['id']})")
    if job["error"]:
        lines.append("error")
        lines += [f"  {line}" for line in job["error"].rstrip().splitlines()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print one job; 0, 1 when it failed or an export of it is dead, 2 when unknown."""
    if args.action != "show":
        raise UsageError("say what to do: cinestrain jobs show ID")
    with node_index(load_node_config(args.config), read_only=True) as index:
        job = index.job_detail(args.job).as_dict(full=True)
    print(json.dumps(job, indent=2) if args.json else render(job))
    failed = job["state"] == "failed" or any(e["state"] == "dead" for e in job["exports"])
    return 1 if failed else 0
