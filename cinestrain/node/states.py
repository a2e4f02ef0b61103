"""State names and file names of the node, in one place.

The values are what the index (SQLite) stores and what ``cinestrain status`` shows, so
they never change spelling. Folder and file names under ``storage.directory`` are here
too, so that every module agrees on the layout::

    <storage.directory>/
        index.sqlite          instances, studies, series, stacks, jobs, exports
        spool/<study>/<series>/<sop>.dcm    received instances
        results/job-<id>/     what a job wrote
"""

from __future__ import annotations

from enum import StrEnum


class SeriesState(StrEnum):
    """What became of a received series."""

    RECEIVED = "received"
    """instances arrived; not decided yet"""
    STACKED = "stacked"
    """part of a cine stack"""
    SKIPPED = "skipped"
    """not a cine (or not usable); the reason is recorded"""
    PURGED = "purged"
    """removed by retention"""


class StackState(StrEnum):
    """What became of a cine stack assembled from received series."""

    WAITING = "waiting"
    """incomplete and not stable yet"""
    QUEUED = "queued"
    """a job was made for the current instances (pending or running)"""
    DONE = "done"
    """the job of the current instances is done: its results are in its folder"""
    FAILED = "failed"
    """the job of the current instances failed; the reason is recorded (its first line)"""
    SKIPPED = "skipped"
    """cannot be analysed (not short axis, inconsistent, ...); the reason is recorded"""
    PURGED = "purged"


class JobState(StrEnum):
    """Life of an analysis job."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    """the stack grew (a late slice): a newer job replaces this one"""


class ExportState(StrEnum):
    """Life of one job's results towards one destination."""

    PENDING = "pending"
    SENDING = "sending"
    RETRY = "retry"
    """a try failed; the next one is at ``next_attempt_at``"""
    DONE = "done"
    DEAD = "dead"
    """every try failed: dead letter, until ``cinestrain retry JOB``"""
    CANCELLED = "cancelled"
    """the job was superseded before its results were sent"""


#: index database inside storage.directory
INDEX_FILE = "index.sqlite"
#: received instances
SPOOL_DIR = "spool"
#: job outputs
RESULTS_DIR = "results"
#: suffix of files being written; never a final name, removed at start-up
PARTIAL_SUFFIX = ".part"
#: extension of spooled instances
INSTANCE_SUFFIX = ".dcm"


def job_dir_name(job_id: int) -> str:
    """The results folder name of a job."""
    return f"job-{job_id}"
