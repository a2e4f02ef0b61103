"""``cinestrain send JOB [DEST...]``: queue a done job's results to the destinations
configured now (every one, or those named), including destinations added to the
configuration after the job ran.

The command writes the exports into the index; the running node sends them at its next
tick (a node started before a destination was added to its configuration must be
restarted to know it). ``cinestrain retry`` uses the same queueing for a done job.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cinestrain.cli.common import load_node_config, node_index


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    parser.add_argument("job", type=int, metavar="JOB", help="job id (see cinestrain status)")
    parser.add_argument(
        "destinations", nargs="*", metavar="DEST",
        help="destination names in the configuration (default: every destination)",
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML configuration")


def queue_results(cfg: Any, index: Any, job: Any, names: list[str], prog: str) -> int:
    """Queue a done job's results to ``names`` (empty: every destination configured now and
    the callers that get results back) and say what was queued.

    Parameters
    ----------
    cfg
        The configuration in force now.
    index
        The node's index (writable).
    job
        The job (:class:`~cinestrain.node.records.JobRow`), done.
    names
        Destination names asked for.
    prog
        The command, for messages (``cinestrain send``).

    Returns
    -------
    int
        The exit status: 0 queued, 1 the results are gone, 2 an unknown destination or
        none configured.
    """
    from cinestrain.node.export import destination_names, result_files

    if not result_files(job.out_dir):
        print(f"{prog}: job {job.id}'s results are no longer in {job.out_dir} (removed by "
              "storage.retention_days); nothing to send", file=sys.stderr)
        return 1
    known = destination_names(cfg, index.stack_callers(job.stack_id))
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"{prog}: no destination {', '.join(map(repr, unknown))} in the configuration"
              f" (configured: {', '.join(known) or 'none'})", file=sys.stderr)
        return 2
    if not known:
        print(f"{prog}: no destination configured: add a [[destinations]] entry to the "
              "configuration (README, Configure), restart the node, then run this again",
              file=sys.stderr)
        return 2
    targets = names or known
    queued, busy = index.queue_exports(job.id, targets)
    print(f"job {job.id}: {len(queued)} export(s) queued"
          + (f": {', '.join(queued)}" if queued else ""))
    if busy:
        print(f"job {job.id}: being sent right now, left as is: {', '.join(busy)}")
    if not names:
        gone = sorted({e.destination for e in index.exports(job.id)} - set(known))
        if gone:
            print(f"job {job.id}: no longer configured, left as is: {', '.join(gone)}")
    if queued:
        print("the running node sends them at its next tick (restart it first if a "
              "destination was added to the configuration after it started); "
              "cinestrain status shows how they go")
    return 0


def run(args: argparse.Namespace) -> int:
    """Queue the job's exports; the running node sends them."""
    from cinestrain.node.states import JobState

    cfg = load_node_config(args.config)
    with node_index(cfg) as index:
        job = index.job(args.job)
        if job.state != JobState.DONE:
            print(f"cinestrain send: {not_done(job)}", file=sys.stderr)
            return 1
        return queue_results(cfg, index, job, list(args.destinations), "cinestrain send")


def not_done(job: Any) -> str:
    """Why a job that is not done has no results to send."""
    from cinestrain.node.states import JobState

    if job.state == JobState.FAILED:
        return (f"job {job.id} failed, it has no results to send "
                f"(cinestrain retry {job.id} runs it again)")
    if job.state == JobState.SUPERSEDED:
        return (f"job {job.id} was replaced by a later job of its stack (the stack grew); "
                "cinestrain status lists that one")
    return (f"job {job.id} is {job.state}: its results go to every destination of the "
            "node's configuration when it is done")
