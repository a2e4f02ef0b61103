"""``cinestrain retry JOB``: run a failed job again, or send a done job's results again to
every destination configured now (also those added after the job ran)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinestrain.cli.common import load_node_config, node_index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("job", type=int, metavar="JOB", help="job id (see cinestrain status)")
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")


def run(args: argparse.Namespace) -> int:
    """Queue the job (failed) or its exports (done); the running node picks them up."""
    from cinestrain.cli.send import not_done, queue_results
    from cinestrain.node.states import JobState

    cfg = load_node_config(args.config)
    with node_index(cfg) as index:
        job = index.job(args.job)
        if job.state == JobState.FAILED:
            index.requeue_job(args.job)
            print(f"job {args.job} queued to run again")
            return 0
        if job.state != JobState.DONE:
            print(f"cinestrain retry: {not_done(job)}; nothing to retry", file=sys.stderr)
            return 1
        return queue_results(cfg, index, job, [], "cinestrain retry")
