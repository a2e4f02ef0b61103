"""The scheduler: periodic ticks (APScheduler) that turn received studies into jobs,
start jobs on the worker, try due exports and purge what retention allows.

Each tick runs in APScheduler's thread pool, one instance at a time (``max_instances=1``,
missed runs coalesced), and works only from the index, so it holds no state of its own.
"""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from cinestrain.config.schema import NodeConfig
from cinestrain.node.export import Exporter
from cinestrain.node.index import Index
from cinestrain.node.readiness import StackCandidate, assess_study, readiness
from cinestrain.node.receive.spool import Spool
from cinestrain.node.records import JobRow, StudyRow
from cinestrain.node.states import JobState, SeriesState, StackState
from cinestrain.node.systemd_notify import notify
from cinestrain.node.worker import Dispatcher, build_request

log = logging.getLogger(__name__)


class StackTracker:
    """Looks at studies whose instances went quiet and decides what each stack becomes.

    Parameters
    ----------
    cfg
        Scheduler rules and model settings (for the jobs it queues).
    index
        Studies, series, stacks and jobs.
    results
        Folder under which each job gets its output folder.
    """

    def __init__(self, cfg: NodeConfig, index: Index, results: Path) -> None:
        self.cfg = cfg
        self.index = index
        self.results = results

    def tick(self, now: float | None = None) -> None:
        """Look at every study that is due."""
        now = time.time() if now is None else now
        for study in self.index.due_studies(now):
            try:
                self.look_at(study, now)
            except Exception:  # one bad study must not stop the others
                log.exception("study %s: cannot assess its stacks", study.study_uid)
                self.index.set_next_scan(
                    study.study_uid, study.last_received,
                    now + self.cfg.scheduler.series_stable_seconds,
                )

    def look_at(self, study: StudyRow, now: float) -> None:
        """Assess one study's stacks; queue jobs, record skipped series, reschedule."""
        study_uid, last = study.study_uid, study.last_received
        rules = self.cfg.scheduler
        quiet = now - last
        stable = quiet >= rules.series_stable_seconds
        rows = self.index.study_instances(study_uid)
        assessment = assess_study([r.path for r in rows])
        waiting = False
        for series_uid, reason in assessment.not_images:
            self._skip_series(series_uid, study_uid, reason)
        for series_uid, reason in assessment.unusable:
            if stable:
                self._skip_series(series_uid, study_uid, reason)
            else:
                waiting = True
        # an MR series that does not lay out yet (a slice still arriving) may join a
        # stack: while the study is not stable, no stack of it is complete
        hold = waiting
        for candidate in assessment.candidates:
            waiting |= not self._decide(study_uid, candidate, quiet, stable, hold)
        next_at = last + rules.series_stable_seconds if waiting and not stable else None
        self.index.set_next_scan(study_uid, last, next_at)

    def _skip_series(self, series_uid: str, study_uid: str, reason: str) -> None:
        row = self.index.series(series_uid)
        if row is None or row.state != SeriesState.SKIPPED or row.reason != reason:
            log.info("study %s series %s skipped: %s", study_uid, series_uid, reason)
            self.index.set_series(series_uid, study_uid, SeriesState.SKIPPED, reason)

    def _decide(
        self, study_uid: str, candidate: StackCandidate, quiet: float, stable: bool,
        hold: bool = False,
    ) -> bool:
        """Record one stack; return False while it waits for more instances."""
        n = len(candidate.sop_instance_uids)
        if candidate.problem is not None:
            if not stable:
                return False
            stack_id = self.index.upsert_stack(
                study_uid, list(candidate.series_uids), candidate.shape, n,
                StackState.SKIPPED, candidate.problem,
            )
            for uid in candidate.series_uids:
                self._skip_series(uid, study_uid, f"stack {stack_id}: {candidate.problem}")
            return True
        rule = None if hold else readiness(candidate, quiet, self.cfg.scheduler)
        if rule is None:
            self.index.upsert_stack(
                study_uid, list(candidate.series_uids), candidate.shape, n, StackState.WAITING
            )
            return False
        stack_id = self.index.upsert_stack(
            study_uid, list(candidate.series_uids), candidate.shape, n, StackState.QUEUED
        )
        for uid in candidate.series_uids:
            self.index.set_series(uid, study_uid, SeriesState.STACKED, stack_id=stack_id)
        latest = self.index.latest_job(stack_id)
        if latest is not None and latest.inputs_digest == candidate.digest:
            self.index.settle_stack(stack_id)  # done / failed again, not queued
            log.info("study %s: %s", study_uid, _already(latest))
            return True
        jobs = self.index.jobs(stack_id)
        first = jobs[0].request().uid_series if jobs else None
        uid_series = list(first or candidate.series_uids)
        request = build_request(self.cfg, list(candidate.paths), candidate.series_uids[0],
                                uid_series, self.results)
        job_id = self.index.create_job(stack_id, candidate.digest, request, rule)
        log.info(
            "study %s stack %d (%s, %d instances, series %s) %s: job %d queued%s",
            study_uid, stack_id, candidate.shape, n, ", ".join(candidate.series_uids), rule,
            job_id, "" if latest is None else f" (replaces job {latest.id}: the stack grew)",
        )
        return True


def _already(job: JobRow) -> str:
    """What the scheduler says when a stack's instances arrive again unchanged."""
    if job.state == JobState.DONE:
        return f"already analysed as job {job.id}, nothing to do (results in {job.out_dir})"
    if job.state == JobState.FAILED:
        return (f"already analysed as job {job.id}, which failed; nothing to do"
                f" (cinestrain retry {job.id} runs it again)")
    return f"already queued as job {job.id} ({job.state}), nothing to do"


def purge_expired(cfg: NodeConfig, index: Index, spool: Spool, now: float | None = None) -> int:
    """Remove processed inputs and results older than ``storage.retention_days``.

    Only series that were decided (skipped, or stacked with a done job) and results whose
    exports are finished are removed; nothing unprocessed is. Returns files removed.
    """
    days = cfg.storage.retention_days
    if days <= 0:
        return 0
    cutoff = (time.time() if now is None else now) - days * 86400
    removed = 0
    for job in index.purgeable_jobs(cutoff):
        # files == (): already purged; None (a job superseded before it ran) is looked at
        if job.files != () and job.out_dir.exists():
            shutil.rmtree(job.out_dir, ignore_errors=True)
            index.forget_job_files(job.id)
            removed += 1
    for series in index.purgeable_series(cutoff):
        rows = index.series_instances(series.series_uid)
        for row in rows:
            spool.remove(row.path)
        index.forget_instances([r.sop_instance_uid for r in rows], series.series_uid)
        removed += len(rows)
        log.info("retention: series %s purged (%d instances)", series.series_uid, len(rows))
    return removed


class NodeScheduler:
    """The node's periodic work on an APScheduler background scheduler."""

    def __init__(
        self,
        cfg: NodeConfig,
        tracker: StackTracker,
        dispatcher: Dispatcher,
        exporter: Exporter,
        index: Index,
        spool: Spool,
    ) -> None:
        self.cfg = cfg
        self.tracker = tracker
        self.dispatcher = dispatcher
        self.exporter = exporter
        self.index = index
        self.spool = spool
        self._scheduler = BackgroundScheduler(
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        )
        tick = cfg.scheduler.tick_seconds
        self._scheduler.add_job(self._stacks_and_jobs, "interval", seconds=tick, id="stacks")
        self._scheduler.add_job(self._exports, "interval", seconds=tick, id="exports")
        self._scheduler.add_job(
            self._purge, "interval", seconds=cfg.scheduler.purge_interval_seconds, id="purge"
        )
        dispatcher.on_done = self.export_now
        #: time.monotonic() of the start, and of the start and end of each stacks tick
        self._heartbeat: float | None = None

    @property
    def running(self) -> bool:
        """Whether the scheduler is started and not stopped."""
        return bool(self._scheduler.running)

    def tick_age_s(self) -> float | None:
        """Seconds since the scheduler started or a stacks-and-jobs tick began or ended
        (None before :meth:`start`): grows without bound when ticks stop or one hangs."""
        beat = self._heartbeat
        return None if beat is None else time.monotonic() - beat

    def export_now(self) -> None:
        """Try due exports now (a job just finished), not at the next tick."""
        try:
            self._scheduler.modify_job("exports", next_run_time=datetime.now(UTC))
        except Exception:  # not running (stopping): the next start sends them
            log.debug("exports not rescheduled: the scheduler is not running")

    def _stacks_and_jobs(self) -> None:
        self._heartbeat = time.monotonic()
        self.tracker.tick()
        self.dispatcher.poll()
        self._heartbeat = time.monotonic()
        notify("WATCHDOG=1")  # under systemd with WatchdogSec=: the ticks go on

    def _exports(self) -> None:
        self.exporter.poll()

    def _purge(self) -> None:
        purge_expired(self.cfg, self.index, self.spool)

    def start(self) -> None:
        """Start ticking."""
        self._heartbeat = time.monotonic()
        self._scheduler.start()

    def stop(self) -> None:
        """Stop ticking (waits for a tick in progress)."""
        self._scheduler.shutdown(wait=True)

