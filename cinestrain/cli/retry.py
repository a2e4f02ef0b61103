"""``cinestrain retry JOB``: run a failed job again, or send a done job's results again to
every destination configured now (also those added after the job ran)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cinestrain.config import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("job", type=int, metavar="JOB", help="job id (see cinestrain status)")
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")


def run(args: argparse.Namespace) -> int:
    """Queue the job (failed) or its exports (done); the running node picks them up."""
    from cinestrain.cli.send import not_done, queue_results
    from cinestrain.node.errors import UnknownJobError
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE, JobState

    prog = "cinestrain retry"
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    path = Path(cfg.storage.directory) / INDEX_FILE
    if not path.exists():
        print(f"{prog}: no index at {path}: the node has not run with this storage",
              file=sys.stderr)
        return 2
    index = Index(path)
    try:
        job = index.job(args.job)
        if job.state == JobState.FAILED:
            index.requeue_job(args.job)
            print(f"job {args.job} queued to run again")
            return 0
        if job.state != JobState.DONE:
            print(f"{prog}: {not_done(job)}; nothing to retry", file=sys.stderr)
            return 1
        return queue_results(cfg, index, job, [], prog)
    except UnknownJobError as exc:
        print(f"{prog}: {exc} (cinestrain status lists the jobs)", file=sys.stderr)
        return 2
    finally:
        index.close()
