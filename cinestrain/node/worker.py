"""The inference worker: each job runs :func:`pipeline.run.run_analysis` in its own process.

A job is plain data (an :class:`pipeline.job.AnalysisRequest`: instance paths, model
settings, output folder, stored as JSON in the index), so the queue is a seam: a distributed
engine (Celery, Ray) can run :func:`execute_job` instead of the local
:class:`Dispatcher`. Each job gets a fresh ``spawn`` process: a crash or leak of one job
never touches the receiver, and the process can be stopped. One process is started ahead
(``worker.keep_warm``) so that a job does not wait for torch and the pipeline to import.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing import resource_tracker
from pathlib import Path
from typing import Any

from cinestrain.config.schema import LoggingSection, NodeConfig
from cinestrain.logs import active_verbosity, configure_logging
from cinestrain.node.export import EarlyExport, Exporter, destination_names, is_dicom_file
from cinestrain.node.index import Index
from cinestrain.node.metrics import NodeMetrics
from cinestrain.node.records import JobRow
from cinestrain.node.states import JobState
from cinestrain.pipeline.job import AnalysisRequest

log = logging.getLogger(__name__)


def build_request(
    cfg: NodeConfig, paths: list[Path], series_uid: str, uid_series: list[str],
    results_dir: Path,
) -> AnalysisRequest:
    """The job for a stack (its ``out_dir`` is made per job by the index).

    Parameters
    ----------
    cfg
        Model and worker settings come from here.
    paths
        The stack's spooled instance files.
    series_uid
        A series of the stack (selects it when the files hold several).
    uid_series
        The series the result UIDs derive from: the stack's series at its first job, so
        that a grown stack's results replace the earlier ones in a PACS.
    results_dir
        The node's results folder; each job writes into ``job-N`` under it.
    """
    return AnalysisRequest.from_config(cfg, paths, results_dir,
                                       series_instance_uid=series_uid, uid_series=uid_series)


def execute_job(request: AnalysisRequest, torch_threads: int = 0,
                on_file: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Run one job (in whatever process calls it) and describe what it wrote.

    ``on_file`` is called with each DICOM result as soon as it is complete.

    Returns
    -------
    dict
        ``{"files": [...], "warnings": [...], "series_instance_uid", "shape", "ed_phase",
        "timings_s": {stage: seconds}, "peak_rss_mb", "cpu_s"}``.
    """
    start = time.perf_counter()
    import torch

    from cinestrain.pipeline.run import run_analysis

    imports_s = time.perf_counter() - start
    if torch_threads:
        torch.set_num_threads(torch_threads)
    outcome = run_analysis(request, on_file=on_file)
    result = asdict(outcome)
    result["files"] = [str(p) for p in outcome.files]
    result["timings_s"] = {"imports_s": imports_s, **outcome.timings_s}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # ru_maxrss is in KiB on Linux: the peak of this process (the worker, when spawned)
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return json.loads(json.dumps(result, default=str))


def _job_process(conn: Any, logging_section: LoggingSection | None = None,
                 verbosity: int = 0) -> None:
    """Entry point of a worker process: import the pipeline, wait for one job, run it.

    The heavy imports (torch, highdicom, matplotlib: several seconds) happen before the job
    comes, so a process started ahead takes a job at once. Receives
    ``(request, torch_threads)``; sends ``("file", path)`` for each DICOM result as soon
    as it is written, then ``("ok", result)`` or ``("error", text)``.

    Logging is the main process's own set-up (:func:`logs.configure_logging` with the
    node's ``[logging]`` section and ``-v`` count). Ctrl-C in a terminal reaches every
    process of the node: this one ignores it (it was started with SIGINT blocked, see
    :meth:`Dispatcher._spawn`) and is stopped by the main process instead.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    configure_logging(logging_section or LoggingSection(), verbosity)
    # torch's OpenMP threads spin while they wait for one another (libgomp's default): on
    # a CPU shared with other work (the receiver, the exporter, another job) a spinning
    # thread keeps its sibling from running, which can more than double a model run,
    # while passive waiting costs nothing on idle cores. Read when torch loads, so set
    # before it; a setting in the node's environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import cinestrain.pipeline.run  # noqa: F401  (the imports the job needs, done while idle)

    log.info("worker process %d ready", multiprocessing.current_process().pid)
    try:
        request, torch_threads = conn.recv()
    except EOFError:  # the node stopped before a job came
        return
    try:
        conn.send(("ok", execute_job(request, torch_threads,
                                     lambda path: conn.send(("file", str(path))))))
    except Exception as exc:  # the job's failure is data for the index, not a crash
        detail = traceback.format_exc(limit=4)
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{detail}"))
    finally:
        conn.close()


class Dispatcher:
    """Runs pending jobs of the index, ``worker.processes`` at a time.

    Each job runs in its own process. With ``worker.keep_warm`` one process is started
    ahead (at start-up and after each job), its imports done, waiting for the next job.

    Parameters
    ----------
    cfg
        Worker settings and destinations (exports are queued when a job is done).
    index
        Where jobs are claimed and their outcome recorded.
    metrics
        Where each job's duration is recorded when it ends (done or failed).
    """

    def __init__(self, cfg: NodeConfig, index: Index, metrics: NodeMetrics | None = None
                 ) -> None:
        self.cfg = cfg
        self.index = index
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._running: dict[int, Any] = {}
        self._threads: list[threading.Thread] = []
        self._spare: tuple[Any, Any] | None = None
        self._stopping = False
        #: called after each job is recorded (the scheduler sends its exports at once)
        self.on_done: Callable[[], None] | None = None

    @property
    def busy(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._running)

    def _spawn(self) -> tuple[Any, Any]:
        """Start a worker process; return it and our end of its pipe.

        The process starts with SIGINT blocked (a blocked signal stays blocked through
        fork and exec), so that Ctrl-C while it imports does not print a traceback; it
        then ignores SIGINT for good (:func:`_job_process`).
        """
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_job_process, args=(theirs, self.cfg.logging, active_verbosity()),
            name="cinestrain-worker")
        # multiprocessing's resource tracker unblocks SIGINT when it starts its own process
        # (at the first spawn): have it running before SIGINT is blocked for ours
        resource_tracker.ensure_running()
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        theirs.close()
        return process, ours

    def keep_warm(self) -> None:
        """Start the spare worker process if ``worker.keep_warm`` and there is none."""
        if not self.cfg.worker.keep_warm:
            return
        with self._lock:
            if self._stopping or self._spare is not None:
                return
            self._spare = self._spawn()

    def _take_process(self) -> tuple[Any, Any]:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare[0].is_alive():
            return spare
        if spare is not None:
            spare[1].close()
        return self._spawn()

    def poll(self) -> None:
        """Start pending jobs while a worker slot is free."""
        while not self._stopping and self.busy < self.cfg.worker.processes:
            job = self.index.claim_job()
            if job is None:
                return
            thread = threading.Thread(
                target=self._run, args=(job,), name=f"job-{job.id}", daemon=True
            )
            with self._lock:
                self._running[job.id] = None
                self._threads.append(thread)
            thread.start()

    def _run(self, job: JobRow) -> None:
        job_id = job.id
        started = time.monotonic()
        try:
            request = job.request()
        except ValueError as exc:  # a stored request this release cannot read
            self._fail(job_id, f"unreadable job request: {exc}")
            self.metrics.job_ended(JobState.FAILED, time.monotonic() - started)
            with self._lock:
                self._running.pop(job_id, None)
            return
        log.info(
            "job %d (stack %d, attempt %d): %d instances, series %s",
            job_id, job.stack_id, job.attempts + 1, len(request.inputs),
            request.series_instance_uid,
        )
        names = self._destinations(job)
        early = (Exporter(self.cfg, self.index).early(names)
                 if self.cfg.export.while_writing else None)
        process, conn = self._take_process()
        message = None
        try:
            with self._lock:
                self._running[job_id] = process
            conn.send((request, self.cfg.worker.torch_threads))
            while conn.poll(None):
                kind, value = conn.recv()
                if kind != "file":
                    message = (kind, value)
                    break
                if early is not None:
                    early.add(Path(value))
        except (EOFError, OSError):
            message = None
        try:
            if message is None:
                process.join()  # it died or was stopped: its exit code says how
            if early is not None and (message is None or message[0] != "ok"):
                early.abort()
            if self._stopping and message is None:
                log.info("job %d interrupted by shutdown; it runs again at start-up", job_id)
                return
            if message is None:
                error = (f"worker process ended without a result "
                         f"(exit code {process.exitcode})")
                self._fail(job_id, error)
            elif message[0] == "error":
                self._fail(job_id, message[1])
            else:
                self._done(job_id, message[1], names, early)
            done = message is not None and message[0] == "ok"
            self.metrics.job_ended(JobState.DONE if done else JobState.FAILED,
                                   time.monotonic() - started)
        finally:
            # a process that sent its result exits by itself (freeing a large heap takes
            # a moment): the outcome is recorded first
            process.join()
            conn.close()
            with self._lock:
                self._running.pop(job_id, None)
        if self.on_done is not None:
            self.on_done()
        self.keep_warm()

    def _fail(self, job_id: int, error: str) -> None:
        log.error("job %d failed (inputs kept): %s", job_id, error.splitlines()[0])
        self.index.fail_job(job_id, error)

    def _destinations(self, job: JobRow) -> list[str]:
        """Export names of a job: the configured destinations and the callers that get
        their results back."""
        return destination_names(self.cfg, self.index.stack_callers(job.stack_id))

    def _done(self, job_id: int, result: dict[str, Any], names: list[str] | None = None,
              early: EarlyExport | None = None) -> None:
        """Record a finished job: wait for its early export (what it stored is not sent
        again), queue its exports, remove what it supersedes."""
        if names is None:
            names = self._destinations(self.index.job(job_id))
        metrics = {key: result.get(key) for key in ("timings_s", "peak_rss_mb", "cpu_s")}
        delivered: dict[str, list[str]] = {}
        complete: list[str] = []
        if early is not None:
            start = time.perf_counter()
            delivered = early.finish(self.cfg.node.timeouts.dimse_s)
            dicom = {Path(p).name for p in result["files"] if is_dicom_file(Path(p))}
            complete = [n for n, stored in delivered.items() if dicom <= set(stored)]
            metrics["early_export"] = {
                "wait_s": time.perf_counter() - start,
                "stored": {n: len(stored) for n, stored in delivered.items()},
                "results": len(dicom)}
        refused = result.get("error")
        superseded = self.index.finish_job(job_id, result["files"], names, metrics,
                                           delivered, complete, refused=refused)
        job = self.index.job(job_id)
        stack = self.index.stack(job.stack_id)
        study = "?" if stack is None else stack.study_uid
        if refused is not None:
            log.info("study %s: not analysable (job %d): %s; stack skipped, report.json in %s",
                     study, job_id, refused, job.out_dir)
        else:
            sending = (f"{len(names)} export(s) queued ({len(complete)} complete already)"
                       if names else f"no destination configured: cinestrain send {job_id}"
                       " sends them to one added later")
            log.info("study %s: analysed as job %d, results in %s (series %s, %d file(s), %s)",
                     study, job_id, job.out_dir, result.get("series_instance_uid"),
                     len(result["files"]), sending)
        for old in superseded:
            shutil.rmtree(old.out_dir, ignore_errors=True)
            log.info("job %d superseded by job %d: its results were removed", old.id, job_id)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop running jobs (they stay 'running' and run again at the next start)."""
        self._stopping = True
        with self._lock:
            processes = [p for p in self._running.values() if p is not None]
            spare, self._spare = self._spare, None
        if spare is not None:
            spare[1].close()  # the idle process sees the end of its pipe and exits
            spare[0].join(timeout_s)
            if spare[0].is_alive():
                spare[0].terminate()
        for process in processes:
            process.terminate()
        for thread in self._threads:
            thread.join(timeout_s)
