"""The inference worker: each job runs :func:`node.pipeline.run_analysis` in its own process.

A job is plain data (a JSON-ready dict of :class:`node.pipeline.AnalysisRequest` fields:
instance paths, model settings, output folder), so the queue is a seam: a distributed
engine (Celery, Ray) can run :func:`execute_job` instead of the local
:class:`Dispatcher`. Each job gets a fresh ``spawn`` process: a crash or leak of one job
never touches the receiver, and the process can be stopped.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import resource
import shutil
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from config.schema import NodeConfig
from node.index import Index

log = logging.getLogger(__name__)


def build_request(cfg: NodeConfig, paths: list[Path], series_uid: str) -> dict[str, Any]:
    """The plain-data job for a stack (``out_dir`` is filled in by the index).

    Parameters
    ----------
    cfg
        Model and worker settings come from here.
    paths
        The stack's spooled instance files.
    series_uid
        A series of the stack (selects it when the files hold several).
    """
    model = cfg.model
    return {
        "inputs": [str(p) for p in paths],
        "out_dir": "",
        "pairing": model.pairing,
        "temporal": model.temporal,
        "weights": str(model.weights) if model.weights is not None else None,
        "ed_phase": model.ed_phase,
        "device": cfg.worker.device,
        "save_motion": cfg.worker.save_motion,
        "series_instance_uid": series_uid,
    }


def execute_job(request: dict[str, Any], torch_threads: int = 0) -> dict[str, Any]:
    """Run one job (in whatever process calls it) and describe what it wrote.

    Returns
    -------
    dict
        ``{"files": [...], "warnings": [...], "series_instance_uid", "shape", "ed_phase",
        "timings_s": {stage: seconds}, "peak_rss_mb"}``.
    """
    start = time.perf_counter()
    import torch

    from node.pipeline import AnalysisRequest, run_analysis

    imports_s = time.perf_counter() - start
    if torch_threads:
        torch.set_num_threads(torch_threads)
    fields = dict(request)
    fields["inputs"] = tuple(Path(p) for p in fields["inputs"])
    fields["out_dir"] = Path(fields["out_dir"])
    fields["weights"] = Path(fields["weights"]) if fields.get("weights") else None
    outcome = run_analysis(AnalysisRequest(**fields))
    result = asdict(outcome)
    result["files"] = [str(p) for p in outcome.files]
    result["timings_s"] = {"imports_s": imports_s, **outcome.timings_s}
    # ru_maxrss is in KiB on Linux: the peak of this process (the worker, when spawned)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return json.loads(json.dumps(result, default=str))


def _job_process(request: dict[str, Any], torch_threads: int, conn: Any) -> None:
    """Entry point of a job's process: send ``("ok", result)`` or ``("error", text)``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(name)s: %(message)s")
    try:
        conn.send(("ok", execute_job(request, torch_threads)))
    except Exception as exc:  # the job's failure is data for the index, not a crash
        detail = traceback.format_exc(limit=4)
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{detail}"))
    finally:
        conn.close()


class Dispatcher:
    """Runs pending jobs of the index, ``worker.processes`` at a time.

    Parameters
    ----------
    cfg
        Worker settings and destinations (exports are queued when a job is done).
    index
        Where jobs are claimed and their outcome recorded.
    """

    def __init__(self, cfg: NodeConfig, index: Index) -> None:
        self.cfg = cfg
        self.index = index
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._running: dict[int, Any] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False

    @property
    def busy(self) -> int:
        """Jobs running now."""
        with self._lock:
            return len(self._running)

    def poll(self) -> None:
        """Start pending jobs while a worker slot is free."""
        while not self._stopping and self.busy < self.cfg.worker.processes:
            job = self.index.claim_job()
            if job is None:
                return
            thread = threading.Thread(
                target=self._run, args=(job,), name=f"job-{job['id']}", daemon=True
            )
            with self._lock:
                self._running[job["id"]] = None
                self._threads.append(thread)
            thread.start()

    def _run(self, job: dict[str, Any]) -> None:
        job_id = int(job["id"])
        request = json.loads(job["request"])
        log.info(
            "job %d (stack %d, attempt %d): %d instances, series %s",
            job_id, job["stack_id"], job["attempts"] + 1, len(request["inputs"]),
            request["series_instance_uid"],
        )
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_job_process,
            args=(request, self.cfg.worker.torch_threads, sender),
            name=f"cinestrain-job-{job_id}",
        )
        try:
            with self._lock:
                self._running[job_id] = process
            process.start()
            sender.close()
            message = receiver.recv() if receiver.poll(None) else None
        except EOFError:
            message = None
        finally:
            process.join()
            receiver.close()
            with self._lock:
                self._running.pop(job_id, None)
        if self._stopping and message is None:
            log.info("job %d interrupted by shutdown; it runs again at start-up", job_id)
            return
        if message is None:
            error = f"worker process ended without a result (exit code {process.exitcode})"
            self._fail(job_id, error)
        elif message[0] == "error":
            self._fail(job_id, message[1])
        else:
            self._done(job_id, message[1])

    def _fail(self, job_id: int, error: str) -> None:
        log.error("job %d failed (inputs kept): %s", job_id, error.splitlines()[0])
        self.index.fail_job(job_id, error)

    def _done(self, job_id: int, result: dict[str, Any]) -> None:
        names = [d.name for d in self.cfg.destinations]
        metrics = {"timings_s": result.get("timings_s", {}),
                   "peak_rss_mb": result.get("peak_rss_mb")}
        superseded = self.index.finish_job(job_id, result["files"], names, metrics)
        log.info(
            "job %d done: series %s, %d file(s), %d export(s) queued",
            job_id, result.get("series_instance_uid"), len(result["files"]), len(names),
        )
        for old in superseded:
            shutil.rmtree(old["out_dir"], ignore_errors=True)
            log.info("job %d superseded by job %d: its results were removed", old["id"], job_id)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop running jobs (they stay 'running' and run again at the next start)."""
        self._stopping = True
        with self._lock:
            processes = [p for p in self._running.values() if p is not None]
        for process in processes:
            process.terminate()
        for thread in self._threads:
            thread.join(timeout_s)
