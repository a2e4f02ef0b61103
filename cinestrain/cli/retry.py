"""``cinestrain retry JOB``: send a job's results again (and run it again if it failed)."""

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
    """Queue the job's exports (or the job); the running node picks them up."""
    from cinestrain.node.errors import UnknownJobError
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE, JobState

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"cinestrain retry: {exc}", file=sys.stderr)
        return 2
    path = Path(cfg.storage.directory) / INDEX_FILE
    if not path.exists():
        print(f"cinestrain retry: no index at {path}", file=sys.stderr)
        return 2
    index = Index(path)
    try:
        job = index.job(args.job)
        if job.state == JobState.FAILED:
            index.requeue_job(args.job)
            print(f"job {args.job} queued to run again")
            return 0
        if job.state != JobState.DONE:
            print(f"cinestrain retry: job {args.job} is {job.state}; nothing to retry",
                  file=sys.stderr)
            return 1
        n = index.retry_exports(args.job)
    except UnknownJobError as exc:
        print(f"cinestrain retry: {exc}", file=sys.stderr)
        return 2
    finally:
        index.close()
    print(f"job {args.job}: {n} export(s) queued again")
    return 0
