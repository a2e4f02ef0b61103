"""The node's index: SQLite (WAL) tables of instances, studies, series, stacks, jobs, exports.

The spool file is the durable record of an instance (fsync'ed before the ack); the index
row is written before the ack too, with ``synchronous=NORMAL``: safe against a crash of
the process, and after a power loss :meth:`Index.reconcile` re-adds spooled files the
index lost. One connection is shared by the node's threads under a lock; admin commands
(``retry``, ``send``) open their own connection, SQLite serialises the writers;
``status`` and ``jobs show`` open it read-only (``read_only=True``) and write nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cinestrain.node.errors import NodeError, UnknownJobError
from cinestrain.node.records import (
    ExportRow,
    IndexSummary,
    InstanceRow,
    InstanceTotals,
    JobDetail,
    JobRow,
    Record,
    SeriesRow,
    StackRow,
    StudyRow,
)
from cinestrain.node.states import ExportState, JobState, SeriesState, StackState
from cinestrain.pipeline.job import AnalysisRequest

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Record)

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    sop_class_uid    TEXT NOT NULL,
    study_uid        TEXT NOT NULL,
    series_uid       TEXT NOT NULL,
    path             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    transfer_syntax  TEXT,
    calling_ae       TEXT,
    calling_host     TEXT,
    received_at      REAL NOT NULL,
    copies           INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS instances_study ON instances (study_uid);
CREATE INDEX IF NOT EXISTS instances_series ON instances (series_uid);
CREATE TABLE IF NOT EXISTS studies (
    study_uid      TEXT PRIMARY KEY,
    calling_ae     TEXT,
    first_received REAL NOT NULL,
    last_received  REAL NOT NULL,
    next_scan_at   REAL          -- NULL: nothing left to decide
);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid  TEXT NOT NULL,
    state      TEXT NOT NULL,
    reason     TEXT,
    stack_id   INTEGER,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stacks (
    id          INTEGER PRIMARY KEY,
    study_uid   TEXT NOT NULL,
    series_uids TEXT NOT NULL,   -- JSON list
    shape       TEXT,            -- "SxTxHxW"
    n_instances INTEGER NOT NULL,
    state       TEXT NOT NULL,
    reason      TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS stacks_study ON stacks (study_uid);
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY,
    stack_id      INTEGER NOT NULL,
    state         TEXT NOT NULL,
    trigger       TEXT,          -- "complete" or "stable"
    inputs_digest TEXT NOT NULL,
    request       TEXT NOT NULL, -- JSON: the plain-data job
    out_dir       TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    files         TEXT,          -- JSON list of written files
    metrics       TEXT,          -- JSON: stage timings (s) and peak memory of the worker
    created_at    REAL NOT NULL,
    started_at    REAL,
    finished_at   REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS exports (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL,
    destination     TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error      TEXT,
    sent            INTEGER NOT NULL DEFAULT 0,
    delivered       TEXT,        -- JSON list: file names stored while the job ran
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS exports_state ON exports (state, next_attempt_at);
"""

#: columns added to tables after their first release (:meth:`Index._add_missing_columns`)
_ADDED_COLUMNS = {"jobs": "metrics", "instances": "calling_host", "exports": "delivered"}
#: a job's state -> its stack's state, while the job is the stack's newest
_STACK_STATE_OF_JOB = {
    JobState.PENDING: StackState.QUEUED,
    JobState.RUNNING: StackState.QUEUED,
    JobState.DONE: StackState.DONE,
    JobState.FAILED: StackState.FAILED,
}


class IndexReadOnlyError(NodeError, RuntimeError):
    """A read-only index cannot serve the request (missing, or from an older release)."""


@dataclass(frozen=True)
class InstanceRecord:
    """One received instance to record (:meth:`Index.add_instance`); the index returns
    what it holds as :class:`~cinestrain.node.records.InstanceRow`."""

    sop_instance_uid: str
    sop_class_uid: str
    study_uid: str
    series_uid: str
    path: Path
    size: int
    transfer_syntax: str
    calling_ae: str
    received_at: float
    calling_host: str = ""


class Index:
    """The SQLite index of a node.

    Rows come back as the typed, frozen records of :mod:`cinestrain.node.records`
    (:class:`InstanceRow`, :class:`StudyRow`, :class:`SeriesRow`, :class:`StackRow`,
    :class:`JobRow`, :class:`ExportRow`).

    Parameters
    ----------
    path
        The database file (created with its schema when missing).
    busy_timeout_s
        How long a writer waits for another process's lock, seconds.
    read_only
        Open an existing database for reading only (``cinestrain status``, ``jobs show``):
        no schema is created, nothing is written.

    Raises
    ------
    IndexReadOnlyError
        ``read_only`` and the file is missing, or lacks columns of this release (the
        node adds them at its next start).
    """

    def __init__(self, path: Path, busy_timeout_s: float = 30.0, *,
                 read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        if read_only:
            if not self.path.is_file():
                raise IndexReadOnlyError(
                    f"no index at {self.path}: the node has not run with this storage")
            self._db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=busy_timeout_s,
                check_same_thread=False, isolation_level=None,
            )
            self._db.row_factory = sqlite3.Row
            missing = self._missing_columns()
            if missing:
                self._db.close()
                raise IndexReadOnlyError(
                    f"{self.path} is from an earlier release (no {', '.join(missing)});"
                    " start the node once to bring it up to date")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._add_missing_columns()

    def _missing_columns(self) -> list[str]:
        """``table.column`` of each column this release added that the database lacks."""
        missing = []
        with self._lock:
            for table, name in _ADDED_COLUMNS.items():
                have = {row["name"] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if name not in have:
                    missing.append(f"{table}.{name}")
        return missing

    def _add_missing_columns(self) -> None:
        """Columns added after a database was created (an index of an older version)."""
        with self._lock:
            for column in self._missing_columns():
                table, name = column.split(".")
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} TEXT")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _all(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._db.execute(sql, tuple(params)).fetchall()]

    def _one(self, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _records(self, cls: type[R], sql: str, params: Iterable[Any] = ()) -> list[R]:
        """The rows of a query as records of ``cls``."""
        with self._lock:
            rows = self._db.execute(sql, tuple(params)).fetchall()
        return [cls.from_row(row) for row in rows]

    def _record(self, cls: type[R], sql: str, params: Iterable[Any] = ()) -> R | None:
        rows = self._records(cls, sql, params)
        return rows[0] if rows else None

    # ---------------------------------------------------------------- instances
    def add_instance(self, rec: InstanceRecord, scan_delay_s: float) -> bool:
        """Record a spooled instance; a duplicate SOP Instance UID updates the row.

        Parameters
        ----------
        rec
            The instance.
        scan_delay_s
            The study is looked at again this many seconds after its latest instance.

        Returns
        -------
        bool
            True when the SOP Instance UID was new.
        """
        with self._tx() as db:
            (copies,) = db.execute(
                "INSERT INTO instances (sop_instance_uid, sop_class_uid, study_uid, series_uid,"
                " path, size, transfer_syntax, calling_ae, received_at, calling_host)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (sop_instance_uid) DO UPDATE SET path = excluded.path,"
                " size = excluded.size, transfer_syntax = excluded.transfer_syntax,"
                " received_at = excluded.received_at, calling_ae = excluded.calling_ae,"
                " calling_host = excluded.calling_host, copies = copies + 1"
                " RETURNING copies",
                (
                    rec.sop_instance_uid, rec.sop_class_uid, rec.study_uid, rec.series_uid,
                    str(rec.path), rec.size, rec.transfer_syntax, rec.calling_ae,
                    rec.received_at, rec.calling_host,
                ),
            ).fetchone()
            db.execute(
                "INSERT INTO studies (study_uid, calling_ae, first_received, last_received,"
                " next_scan_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (study_uid) DO UPDATE SET last_received = excluded.last_received,"
                " next_scan_at = excluded.next_scan_at, calling_ae = excluded.calling_ae",
                (
                    rec.study_uid, rec.calling_ae, rec.received_at, rec.received_at,
                    rec.received_at + scan_delay_s,
                ),
            )
            db.execute(
                "INSERT INTO series (series_uid, study_uid, state, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (series_uid) DO NOTHING",
                (rec.series_uid, rec.study_uid, SeriesState.RECEIVED, rec.received_at),
            )
        return copies == 1

    def instance(self, sop_instance_uid: str) -> InstanceRow | None:
        """One instance."""
        return self._record(
            InstanceRow, "SELECT * FROM instances WHERE sop_instance_uid = ?",
            (sop_instance_uid,),
        )

    def study_instances(self, study_uid: str) -> list[InstanceRow]:
        """Every instance of a study."""
        return self._records(
            InstanceRow, "SELECT * FROM instances WHERE study_uid = ?", (study_uid,)
        )

    def stack_callers(self, stack_id: int) -> list[tuple[str, str]]:
        """(calling AE title, host) of whoever sent the instances of a stack."""
        stack = self.stack(stack_id)
        if stack is None:
            return []
        marks = ", ".join("?" * len(stack.series_uids))
        rows = self._all(
            "SELECT DISTINCT calling_ae, calling_host FROM instances"
            f" WHERE series_uid IN ({marks}) ORDER BY calling_ae, calling_host",
            stack.series_uids,
        )
        return [(r["calling_ae"] or "", r["calling_host"] or "") for r in rows]

    def known_paths(self) -> set[str]:
        """Paths of every indexed instance."""
        return {r["path"] for r in self._all("SELECT path FROM instances")}

    # ------------------------------------------------------------------ studies
    def due_studies(self, now: float) -> list[StudyRow]:
        """Studies whose stacks should be looked at now."""
        return self._records(
            StudyRow,
            "SELECT * FROM studies WHERE next_scan_at IS NOT NULL AND next_scan_at <= ?"
            " ORDER BY next_scan_at",
            (now,),
        )

    def study(self, study_uid: str) -> StudyRow | None:
        """One study."""
        return self._record(StudyRow, "SELECT * FROM studies WHERE study_uid = ?", (study_uid,))

    def set_next_scan(self, study_uid: str, seen_last_received: float, at: float | None) -> None:
        """Schedule the next look at a study, unless an instance arrived meanwhile."""
        with self._tx() as db:
            db.execute(
                "UPDATE studies SET next_scan_at = ? WHERE study_uid = ? AND last_received = ?",
                (at, study_uid, seen_last_received),
            )

    def set_series(
        self,
        series_uid: str,
        study_uid: str,
        state: SeriesState,
        reason: str | None = None,
        stack_id: int | None = None,
    ) -> None:
        """Record what became of a series."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO series (series_uid, study_uid, state, reason, stack_id, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (series_uid) DO UPDATE SET"
                " state = excluded.state, reason = excluded.reason,"
                " stack_id = excluded.stack_id, updated_at = excluded.updated_at",
                (series_uid, study_uid, state, reason, stack_id, time.time()),
            )

    def series(self, series_uid: str) -> SeriesRow | None:
        """One series."""
        return self._record(SeriesRow, "SELECT * FROM series WHERE series_uid = ?", (series_uid,))

    # ------------------------------------------------------------------- stacks
    def upsert_stack(
        self,
        study_uid: str,
        series_uids: list[str],
        shape: str,
        n_instances: int,
        state: StackState,
        reason: str | None = None,
    ) -> int:
        """Create or update the stack of a study that shares any series with ``series_uids``."""
        now = time.time()
        with self._tx() as db:
            match = None
            for stack_id, uids in db.execute(
                "SELECT id, series_uids FROM stacks WHERE study_uid = ? ORDER BY id", (study_uid,)
            ):
                if set(json.loads(uids)) & set(series_uids):
                    match = stack_id
                    break
            values = (json.dumps(sorted(series_uids)), shape, n_instances, state, reason, now)
            if match is None:
                cur = db.execute(
                    "INSERT INTO stacks (series_uids, shape, n_instances, state, reason,"
                    " updated_at, study_uid, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*values, study_uid, now),
                )
                return int(cur.lastrowid)
            db.execute(
                "UPDATE stacks SET series_uids = ?, shape = ?, n_instances = ?, state = ?,"
                " reason = ?, updated_at = ? WHERE id = ?",
                (*values, match),
            )
            return int(match)

    def stack(self, stack_id: int) -> StackRow | None:
        """One stack."""
        return self._record(StackRow, "SELECT * FROM stacks WHERE id = ?", (stack_id,))

    def stacks(self, study_uid: str | None = None) -> list[StackRow]:
        """Stacks (of one study), oldest first."""
        if study_uid is None:
            return self._records(StackRow, "SELECT * FROM stacks ORDER BY id")
        return self._records(
            StackRow, "SELECT * FROM stacks WHERE study_uid = ? ORDER BY id", (study_uid,)
        )

    # --------------------------------------------------------------------- jobs
    def create_job(
        self, stack_id: int, digest: str, request: AnalysisRequest, trigger: str
    ) -> int:
        """Queue a job for a stack; an earlier job of it not yet started is superseded.

        The job writes into ``job-N`` under ``request.out_dir`` (N: its id)."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished_at = ? WHERE stack_id = ? AND state = ?",
                (JobState.SUPERSEDED, now, stack_id, JobState.PENDING),
            )
            cur = db.execute(
                "INSERT INTO jobs (stack_id, state, trigger, inputs_digest, request, out_dir,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stack_id, JobState.PENDING, trigger, digest, request.to_json(), "", now),
            )
            job_id = int(cur.lastrowid)
            request = request.in_folder(request.out_dir / f"job-{job_id}")
            db.execute(
                "UPDATE jobs SET request = ?, out_dir = ? WHERE id = ?",
                (request.to_json(), str(request.out_dir), job_id),
            )
        return job_id

    def job(self, job_id: int) -> JobRow:
        """One job.

        Raises
        ------
        UnknownJobError
            No such job.
        """
        row = self._record(JobRow, "SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise UnknownJobError(f"no job {job_id} in {self.path}")
        return row

    def jobs(self, stack_id: int | None = None) -> list[JobRow]:
        """Jobs (of one stack), oldest first."""
        if stack_id is None:
            return self._records(JobRow, "SELECT * FROM jobs ORDER BY id")
        return self._records(
            JobRow, "SELECT * FROM jobs WHERE stack_id = ? ORDER BY id", (stack_id,)
        )

    def latest_job(self, stack_id: int) -> JobRow | None:
        """The newest job of a stack that is not superseded."""
        return self._record(
            JobRow,
            "SELECT * FROM jobs WHERE stack_id = ? AND state != ? ORDER BY id DESC LIMIT 1",
            (stack_id, JobState.SUPERSEDED),
        )

    def claim_job(self) -> JobRow | None:
        """Take the oldest pending job: it becomes running (attempts + 1).

        The record is the job as it was before the claim (state pending, the attempts
        before this one)."""
        with self._tx() as db:
            row = db.execute(
                "SELECT * FROM jobs WHERE state = ? ORDER BY id LIMIT 1", (JobState.PENDING,)
            ).fetchone()
            if row is None:
                return None
            job = JobRow.from_row(row)
            db.execute(
                "UPDATE jobs SET state = ?, started_at = ?, attempts = attempts + 1"
                " WHERE id = ?",
                (JobState.RUNNING, time.time(), job.id),
            )
        return job

    def finish_job(
        self,
        job_id: int,
        files: list[str],
        destinations: list[str],
        metrics: dict[str, Any] | None = None,
        delivered: dict[str, list[str]] | None = None,
        complete: Iterable[str] = (),
        refused: str | None = None,
    ) -> list[JobRow]:
        """Mark a job done, queue its exports, and supersede older jobs of its stack.

        ``refused``: the stack could not be analysed (not short axis, no LV, ...); the job
        is done (its ``report.json`` says why, with no numbers) and the stack is recorded
        as skipped with this reason.

        ``metrics`` (stage timings, peak memory of the worker) is kept with the job.
        ``delivered``: per destination, the files it stored while the job ran (an early
        export); the destinations in ``complete`` stored every result, so their exports
        are done at once, the others send only what is not ``delivered``.

        Returns
        -------
        list of JobRow
            The superseded jobs as they were before (their result folders may be removed).
        """
        now = time.time()
        with self._tx() as db:
            (stack_id,) = db.execute(
                "SELECT stack_id FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            db.execute(
                "UPDATE jobs SET state = ?, files = ?, metrics = ?, error = NULL,"
                " finished_at = ? WHERE id = ?",
                (JobState.DONE, json.dumps(files), json.dumps(metrics or {}), now, job_id),
            )
            older = [
                JobRow.from_row(r)
                for r in db.execute(
                    "SELECT * FROM jobs WHERE stack_id = ? AND id < ? AND state IN (?, ?)",
                    (stack_id, job_id, JobState.DONE, JobState.FAILED),
                )
            ]
            for old in older:
                db.execute(
                    "UPDATE jobs SET state = ? WHERE id = ?", (JobState.SUPERSEDED, old.id)
                )
                db.execute(
                    "UPDATE exports SET state = ?, updated_at = ? WHERE job_id = ?"
                    " AND state IN (?, ?, ?)",
                    (
                        ExportState.CANCELLED, now, old.id, ExportState.PENDING,
                        ExportState.RETRY, ExportState.DEAD,
                    ),
                )
            done = set(complete)
            for name in destinations:
                early = (delivered or {}).get(name, [])
                state = ExportState.DONE if name in done else ExportState.PENDING
                db.execute(
                    "INSERT INTO exports (job_id, destination, state, attempts, sent,"
                    " delivered, next_attempt_at, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (job_id, name, state, int(name in done), len(early), json.dumps(early),
                     now, now, now),
                )
            _settle_stack(db, stack_id, now)
            if refused is not None:
                db.execute("UPDATE stacks SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                           (StackState.SKIPPED, refused, now, stack_id))
        return older

    def fail_job(self, job_id: int, error: str) -> None:
        """Mark a job failed with its error (its inputs are kept); its stack says failed,
        with the error's first line as the reason."""
        now = time.time()
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (JobState.FAILED, error, now, job_id),
            )
            row = db.execute("SELECT stack_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is not None:
                _settle_stack(db, row["stack_id"], now)

    def requeue_job(self, job_id: int) -> None:
        """Run a failed job again (its stack is queued again)."""
        job = self.job(job_id)
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = NULL WHERE id = ? AND state = ?",
                (JobState.PENDING, job_id, JobState.FAILED),
            )
            _settle_stack(db, job.stack_id, time.time())

    def settle_stack(self, stack_id: int) -> StackState | None:
        """Give a stack the state of its newest job (queued while it is pending or running,
        then done or failed); a stack waiting for instances or skipped keeps its state.

        Returns
        -------
        StackState or None
            The stack's state now (None: no such stack).
        """
        with self._tx() as db:
            _settle_stack(db, stack_id, time.time())
        stack = self.stack(stack_id)
        return None if stack is None else stack.state

    def recover(self) -> tuple[int, int]:
        """After a crash: running jobs run again, interrupted exports are retried.

        Returns
        -------
        tuple of int
            (jobs requeued, exports requeued)
        """
        with self._tx() as db:
            jobs = db.execute(
                "UPDATE jobs SET state = ? WHERE state = ?", (JobState.PENDING, JobState.RUNNING)
            ).rowcount
            exports = db.execute(
                "UPDATE exports SET state = ?, next_attempt_at = ? WHERE state = ?",
                (ExportState.RETRY, time.time(), ExportState.SENDING),
            ).rowcount
            # stacks an earlier release left "queued" after their job was done or failed
            now = time.time()
            for (stack_id,) in db.execute(
                "SELECT id FROM stacks WHERE state IN (?, ?, ?)",
                (StackState.QUEUED, StackState.DONE, StackState.FAILED),
            ).fetchall():
                _settle_stack(db, stack_id, now)
        return jobs, exports

    # ------------------------------------------------------------------ exports
    def due_exports(self, now: float) -> list[ExportRow]:
        """Exports to try now, oldest first."""
        return self._records(
            ExportRow,
            "SELECT * FROM exports WHERE state IN (?, ?) AND next_attempt_at <= ? ORDER BY id",
            (ExportState.PENDING, ExportState.RETRY, now),
        )

    def exports(self, job_id: int | None = None) -> list[ExportRow]:
        """Exports (of one job), oldest first."""
        if job_id is None:
            return self._records(ExportRow, "SELECT * FROM exports ORDER BY id")
        return self._records(
            ExportRow, "SELECT * FROM exports WHERE job_id = ? ORDER BY id", (job_id,)
        )

    def update_export(
        self,
        export_id: int,
        state: ExportState,
        *,
        attempts: int | None = None,
        next_attempt_at: float | None = None,
        error: str | None = None,
        sent: int | None = None,
    ) -> None:
        """Change an export's state (and its counters)."""
        with self._tx() as db:
            db.execute(
                "UPDATE exports SET state = ?, attempts = COALESCE(?, attempts),"
                " next_attempt_at = COALESCE(?, next_attempt_at), last_error = ?,"
                " sent = COALESCE(?, sent), updated_at = ? WHERE id = ?",
                (state, attempts, next_attempt_at, error, sent, time.time(), export_id),
            )

    def retry_exports(self, job_id: int) -> int:
        """Send a job's results again to every destination (``cinestrain retry``).

        Returns
        -------
        int
            How many exports were queued.
        """
        self.job(job_id)
        now = time.time()
        with self._tx() as db:
            return db.execute(
                "UPDATE exports SET state = ?, attempts = 0, next_attempt_at = ?,"
                " delivered = NULL, updated_at = ? WHERE job_id = ? AND state != ?",
                (ExportState.PENDING, now, now, job_id, ExportState.SENDING),
            ).rowcount

    def queue_exports(self, job_id: int, destinations: Iterable[str]
                      ) -> tuple[list[str], list[str]]:
        """Queue a job's results to each destination named (``cinestrain send``, ``retry``).

        A destination the job already has an export to is queued again from the start
        (tries and what was delivered early forgotten); one it has none to (added to the
        configuration after the job ran) gets a new export. An export being sent right now
        is left alone. The running node's exporter picks the queued ones up at its next
        tick (it reads the index).

        Returns
        -------
        tuple of list of str
            (destinations queued, destinations left alone because they are being sent).

        Raises
        ------
        UnknownJobError
            No such job.
        """
        self.job(job_id)
        now = time.time()
        queued: list[str] = []
        busy: list[str] = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, destination, state FROM exports WHERE job_id = ? ORDER BY id",
                (job_id,),
            ).fetchall()
            existing: dict[str, list[tuple[int, str]]] = {}
            for row in rows:
                existing.setdefault(row["destination"], []).append((row["id"], row["state"]))
            for name in dict.fromkeys(destinations):
                rows_of = existing.get(name)
                if rows_of is None:
                    db.execute(
                        "INSERT INTO exports (job_id, destination, state, attempts, sent,"
                        " delivered, next_attempt_at, created_at, updated_at)"
                        " VALUES (?, ?, ?, 0, 0, '[]', ?, ?, ?)",
                        (job_id, name, ExportState.PENDING, now, now, now),
                    )
                    queued.append(name)
                    continue
                if any(state == ExportState.SENDING for _, state in rows_of):
                    busy.append(name)
                    continue
                db.executemany(
                    "UPDATE exports SET state = ?, attempts = 0, next_attempt_at = ?,"
                    " delivered = NULL, last_error = NULL, updated_at = ? WHERE id = ?",
                    [(ExportState.PENDING, now, now, export_id) for export_id, _ in rows_of],
                )
                queued.append(name)
        return queued, busy

    # ---------------------------------------------------------------- retention
    def purgeable_jobs(self, cutoff: float) -> list[JobRow]:
        """Done or superseded jobs finished before ``cutoff`` with nothing left to send."""
        return self._records(
            JobRow,
            "SELECT * FROM jobs WHERE state IN (?, ?) AND finished_at < ?"
            " AND NOT EXISTS (SELECT 1 FROM exports e WHERE e.job_id = jobs.id"
            " AND e.state IN (?, ?, ?, ?))",
            (
                JobState.DONE, JobState.SUPERSEDED, cutoff, ExportState.PENDING,
                ExportState.SENDING, ExportState.RETRY, ExportState.DEAD,
            ),
        )

    def purgeable_series(self, cutoff: float) -> list[SeriesRow]:
        """Series decided (stacked into a stack whose newest job is done, or skipped)
        before ``cutoff``, with no instance received since."""
        return self._records(
            SeriesRow,
            "SELECT s.* FROM series s WHERE s.updated_at < ? AND ("
            " s.state = ? OR (s.state = ? AND EXISTS (SELECT 1 FROM jobs j"
            "  WHERE j.stack_id = s.stack_id AND j.state = ? AND j.finished_at < ?)"
            "  AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.stack_id = s.stack_id"
            "  AND j.state IN (?, ?))))"
            " AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_uid = s.series_uid"
            " AND i.received_at >= ?)",
            (
                cutoff, SeriesState.SKIPPED, SeriesState.STACKED, JobState.DONE, cutoff,
                JobState.PENDING, JobState.RUNNING, cutoff,
            ),
        )

    def series_instances(self, series_uid: str) -> list[InstanceRow]:
        """Every instance of a series."""
        return self._records(
            InstanceRow, "SELECT * FROM instances WHERE series_uid = ?", (series_uid,)
        )

    def forget_instances(self, sop_instance_uids: list[str], series_uid: str) -> None:
        """Drop purged instances; the series stays, marked purged."""
        with self._tx() as db:
            db.executemany(
                "DELETE FROM instances WHERE sop_instance_uid = ?",
                [(uid,) for uid in sop_instance_uids],
            )
            db.execute(
                "UPDATE series SET state = ?, updated_at = ? WHERE series_uid = ?",
                (SeriesState.PURGED, time.time(), series_uid),
            )

    def forget_job_files(self, job_id: int) -> None:
        """The job's result folder was purged."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET files = '[]' WHERE id = ?", (job_id,))

    # ------------------------------------------------------------------- status
    def job_detail(self, job_id: int) -> JobDetail:
        """A job with its stack and exports (``cinestrain jobs show``).

        Raises
        ------
        UnknownJobError
            No such job.
        """
        job = self.job(job_id)
        return JobDetail(job, self.stack(job.stack_id), tuple(self.exports(job_id)))

    def recent_jobs(self, limit: int | None = 20) -> list[JobDetail]:
        """The newest jobs first, with their stacks and exports (``cinestrain status``).

        Parameters
        ----------
        limit
            At most this many (None: every job).
        """
        sql = "SELECT * FROM jobs ORDER BY id DESC"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        jobs = self._records(JobRow, sql, params)
        return [JobDetail(j, self.stack(j.stack_id), tuple(self.exports(j.id))) for j in jobs]

    def stacks_in(self, state: StackState, limit: int = 20) -> list[StackRow]:
        """The latest stacks in one state, newest first (skipped and failed ones, with
        their reasons, for ``cinestrain status``)."""
        return self._records(
            StackRow, "SELECT * FROM stacks WHERE state = ? ORDER BY updated_at DESC, id DESC"
            " LIMIT ?", (state, limit),
        )

    def summary(self) -> IndexSummary:
        """Counts for ``cinestrain status`` (:meth:`IndexSummary.as_dict` is its report)."""

        def counts(table: str) -> dict[str, int]:
            with self._lock:
                rows = self._db.execute(
                    f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state"
                ).fetchall()
            return {state: n for state, n in rows}

        with self._lock:
            totals = self._db.execute(
                "SELECT COUNT(*) AS instances, COALESCE(SUM(size), 0) AS bytes,"
                " COUNT(DISTINCT study_uid) AS studies, COUNT(DISTINCT series_uid) AS series,"
                " MAX(received_at) AS last_received FROM instances"
            ).fetchone()  # an aggregate: always one row
        return IndexSummary(
            instances=InstanceTotals.from_row(totals),
            series=counts("series"),
            stacks=counts("stacks"),
            jobs=counts("jobs"),
            exports=counts("exports"),
            skipped_series=tuple(self._records(
                SeriesRow,
                "SELECT * FROM series WHERE state = ? ORDER BY updated_at DESC LIMIT 20",
                (SeriesState.SKIPPED,),
            )),
            failed_jobs=tuple(self._records(
                JobRow,
                "SELECT * FROM jobs WHERE state = ? ORDER BY id DESC LIMIT 20",
                (JobState.FAILED,),
            )),
            dead_exports=tuple(self._records(
                ExportRow,
                "SELECT * FROM exports WHERE state = ? ORDER BY id DESC LIMIT 20",
                (ExportState.DEAD,),
            )),
        )


def _settle_stack(db: sqlite3.Connection, stack_id: int, now: float) -> None:
    """Inside a write transaction: the stack takes the state of its newest job that is not
    superseded (:data:`_STACK_STATE_OF_JOB`; a failed job's first error line is the
    reason), unless it waits for new instances or was skipped."""
    row = db.execute(
        "SELECT state, error FROM jobs WHERE stack_id = ? AND state != ? ORDER BY id DESC"
        " LIMIT 1", (stack_id, JobState.SUPERSEDED),
    ).fetchone()
    if row is None:
        return
    state = _STACK_STATE_OF_JOB[JobState(row["state"])]
    lines = (row["error"] or "").strip().splitlines()
    reason = lines[0] if state == StackState.FAILED and lines else None
    db.execute(
        "UPDATE stacks SET state = ?, reason = ?, updated_at = ? WHERE id = ?"
        " AND state IN (?, ?, ?) AND (state != ? OR reason IS NOT ?)",
        (state, reason, now, stack_id, StackState.QUEUED, StackState.DONE, StackState.FAILED,
         state, reason),
    )
