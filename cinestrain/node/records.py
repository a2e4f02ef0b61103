"""Typed rows of the node's index: one frozen record per table.

:class:`~cinestrain.node.index.Index` returns these, never raw SQLite rows. Each record is
built in one place, :meth:`Record.from_row`, from its dataclass fields: a field reads the
column of its name (or ``column=``) and converts it with its ``load`` function (JSON text
to a tuple, a state name to its enum, a path to :class:`~pathlib.Path`). A new column is
one new field. The SQL schema and what is stored are unchanged (``index.SCHEMA``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Self

from cinestrain.node.states import ExportState, JobState, SeriesState, StackState
from cinestrain.pipeline.job import AnalysisRequest

#: a row as SQLite gives it (``sqlite3.Row``) or any mapping of column names
RowLike = sqlite3.Row | Mapping[str, Any]


def column(load: Callable[[Any], Any] | None = None, *, name: str | None = None) -> Any:
    """A record field read from the column ``name`` (default: the field's name),
    converted by ``load`` (which also gets SQL NULL as None)."""
    return field(metadata={"load": load, "column": name})


def _json_paths(text: str | None) -> tuple[Path, ...] | None:
    return None if text is None else tuple(Path(p) for p in json.loads(text))


def _json_names(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text or "[]"))


def _json_object(text: str | None) -> dict[str, Any] | None:
    return None if text is None else json.loads(text)


def local_time(ts: float | None) -> str | None:
    """Seconds since the epoch as local time in ISO 8601 with its UTC offset
    (``2025-03-01T14:02:11+01:00``); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


@cache
def _columns(cls: type) -> tuple[tuple[str, str, Callable[[Any], Any] | None], ...]:
    """(field, column, load) of each field of a record class."""
    return tuple(
        (f.name, f.metadata.get("column") or f.name, f.metadata.get("load"))
        for f in fields(cls)
    )


class Record:
    """Base of the index's records (frozen dataclasses)."""

    @classmethod
    def from_row(cls, row: RowLike) -> Self:
        """The record of one row (every column the record names must be there)."""
        values = {}
        for name, col, load in _columns(cls):
            value = row[col]
            values[name] = value if load is None else load(value)
        return cls(**values)


@dataclass(frozen=True)
class InstanceRow(Record):
    """A received instance (table ``instances``)."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    path: Path = column(Path)
    """the spooled file"""
    size: int = column()
    transfer_syntax: str | None = column()
    calling_ae: str | None = column()
    calling_host: str | None = column()
    """None in rows written before the column existed"""
    received_at: float = column()
    """the latest copy's arrival (seconds since the epoch)"""
    copies: int = column()
    """how many times the instance was received"""


@dataclass(frozen=True)
class StudyRow(Record):
    """A study and when to look at it again (table ``studies``)."""

    study_uid: str
    calling_ae: str | None
    first_received: float
    last_received: float
    next_scan_at: float | None
    """None: nothing left to decide until another instance arrives"""


@dataclass(frozen=True)
class SeriesRow(Record):
    """What became of a received series (table ``series``)."""

    series_uid: str
    study_uid: str
    state: SeriesState = column(SeriesState)
    reason: str | None = column()
    """why it was skipped"""
    stack_id: int | None = column()
    updated_at: float = column()


@dataclass(frozen=True)
class StackRow(Record):
    """A cine stack assembled from series of one study (table ``stacks``)."""

    id: int
    study_uid: str
    series_uids: tuple[str, ...] = column(_json_names)
    shape: str | None = column()
    """``"SxTxHxW"``"""
    n_instances: int = column()
    state: StackState = column(StackState)
    reason: str | None = column()
    created_at: float = column()
    updated_at: float = column()


@dataclass(frozen=True)
class JobRow(Record):
    """An analysis job of a stack (table ``jobs``).

    The request is kept as the stored JSON text (``request_json``, column ``request``)
    and parsed by :meth:`request` when needed, not when the row is read: listing, retry,
    retention and superseding work on every job row, while a request stored by another
    release may no longer validate. That is then the job's own failure when it runs, not
    one of ``cinestrain status`` or of a scheduler tick.
    """

    id: int
    stack_id: int
    state: JobState = column(JobState)
    trigger: str | None = column()
    """``"complete"`` or ``"stable"``: the rule that made the job"""
    inputs_digest: str = column()
    request_json: str = column(name="request")
    out_dir: Path = column(Path)
    """``job-N`` under the results folder"""
    attempts: int = column()
    error: str | None = column()
    files: tuple[Path, ...] | None = column(_json_paths)
    """what the job wrote; None until it is done, ``()`` once retention removed them"""
    metrics: dict[str, Any] | None = column(_json_object)
    """stage timings (s) and peak memory of the worker"""
    created_at: float = column()
    started_at: float | None = column()
    finished_at: float | None = column()

    def request(self) -> AnalysisRequest:
        """The job's :class:`AnalysisRequest` (parsed from ``request_json``)."""
        return AnalysisRequest.from_json(self.request_json)


@dataclass(frozen=True)
class ExportRow(Record):
    """One job's results towards one destination (table ``exports``)."""

    id: int
    job_id: int
    destination: str
    state: ExportState = column(ExportState)
    attempts: int = column()
    next_attempt_at: float = column()
    last_error: str | None = column()
    sent: int = column()
    delivered: tuple[str, ...] = column(_json_names)
    """names of the files the destination stored while the job ran (sent early)"""
    created_at: float = column()
    updated_at: float = column()


@dataclass(frozen=True)
class JobDetail:
    """A job with its stack and its exports: one entry of ``cinestrain status``'s job
    list and what ``cinestrain jobs show`` prints."""

    job: JobRow
    stack: StackRow | None
    """None only if the stack row is gone (never, in an index the node wrote)"""
    exports: tuple[ExportRow, ...]
    """one per destination the job's results went or go to, oldest first"""

    def as_dict(self, full: bool = False) -> dict[str, Any]:
        """Plain JSON-ready data; times as seconds since the epoch (``*_at``) and as local
        ISO 8601 text (``created``, ``finished``...).

        Parameters
        ----------
        full
            Also the request (inputs count, model settings), stage timings and memory,
            the whole error text and the list of files (``jobs show``); without it the
            error is its first line.
        """
        job, stack = self.job, self.stack
        files = job.files
        error_lines = (job.error or "").strip().splitlines()
        out: dict[str, Any] = {
            "id": job.id,
            "state": str(job.state),
            "trigger": job.trigger,
            "attempts": job.attempts,
            "stack_id": job.stack_id,
            "stack_state": None if stack is None else str(stack.state),
            "study_uid": None if stack is None else stack.study_uid,
            "series_uids": [] if stack is None else list(stack.series_uids),
            "shape": None if stack is None else stack.shape,
            "instances": None if stack is None else stack.n_instances,
            "created_at": job.created_at,
            "created": local_time(job.created_at),
            "started_at": job.started_at,
            "started": local_time(job.started_at),
            "finished_at": job.finished_at,
            "finished": local_time(job.finished_at),
            "results": str(job.out_dir),
            "results_exist": job.out_dir.is_dir(),
            "file_count": None if files is None else len(files),
            "error": job.error if full else (error_lines[0] if error_lines else None),
            "exports": [
                {"id": e.id, "destination": e.destination, "state": str(e.state),
                 "attempts": e.attempts, "sent": e.sent, "last_error": e.last_error,
                 "updated_at": e.updated_at, "updated": local_time(e.updated_at)}
                for e in self.exports
            ],
        }
        if full:
            out["request"] = self._request()
            out["metrics"] = job.metrics
            out["files"] = None if files is None else [str(p) for p in files]
        return out

    def _request(self) -> dict[str, Any]:
        """What the job was asked to do (or why its stored request cannot be read)."""
        try:
            request = self.job.request()
        except ValueError as exc:
            return {"unreadable": str(exc).splitlines()[0]}
        return {
            "inputs": len(request.inputs),
            "series_instance_uid": request.series_instance_uid,
            "uid_series": None if request.uid_series is None else list(request.uid_series),
            "model": request.model.model_dump(mode="json"),
            "device": request.device,
            "save_motion": request.save_motion,
            "seg": None if request.seg is None else str(request.seg),
        }


@dataclass(frozen=True)
class InstanceTotals(Record):
    """What the index holds of received instances."""

    instances: int
    bytes: int
    studies: int
    series: int
    last_received: float | None


@dataclass(frozen=True)
class IndexSummary:
    """The counts and problems ``cinestrain status`` shows."""

    instances: InstanceTotals
    series: dict[str, int]
    """series by state"""
    stacks: dict[str, int]
    jobs: dict[str, int]
    exports: dict[str, int]
    skipped_series: tuple[SeriesRow, ...]
    """the latest 20 skipped series, newest first"""
    failed_jobs: tuple[JobRow, ...]
    """the latest 20 failed jobs, newest first"""
    dead_exports: tuple[ExportRow, ...]
    """the latest 20 dead-lettered exports, newest first"""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the ``cinestrain status --json`` report's keys)."""
        return {
            "instances": asdict(self.instances),
            "series": dict(self.series),
            "stacks": dict(self.stacks),
            "jobs": dict(self.jobs),
            "exports": dict(self.exports),
            "skipped_series": [
                {"series_uid": s.series_uid, "study_uid": s.study_uid, "reason": s.reason}
                for s in self.skipped_series
            ],
            "failed_jobs": [
                {"id": j.id, "stack_id": j.stack_id, "error": j.error,
                 "finished_at": j.finished_at}
                for j in self.failed_jobs
            ],
            "dead_exports": [
                {"id": e.id, "job_id": e.job_id, "destination": e.destination,
                 "attempts": e.attempts, "last_error": e.last_error}
                for e in self.dead_exports
            ],
        }
