"""End-to-end latency of the node: from the last C-STORE of a stack to the last result
stored in Orthanc, with its breakdown and the peak memory of the node and the worker.

A phantom stack of 10 slices x 25 phases, 256 x 256 (``cinestrain phantom``, one series
per slice) is pushed by DCMTK ``storescu`` to ``cinestrain serve`` running idle (its warm
worker process ready; the shipped weights, the CPU, the default scheduler and worker
settings), which exports every DICOM result to
Orthanc started on loopback. The stack is complete (every slice has its
``CardiacNumberOfImages`` phases), so it becomes a job once no new slice arrived for
``scheduler.complete_grace_seconds``: that quiet period is every node's rule, not work,
and is excluded (and stated). Run by ``bench/node.py`` (``--part latency``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.node import DCMTK_ENV, WORKER_READY, free_port, wait_for_log, wait_listening

#: the quiet period after a complete stack (excluded from the latency), seconds
GRACE_S = 10.0
#: scheduler tick (the default), seconds
TICK_S = 2.0


class Orthanc:
    """Orthanc on loopback with a throw-away configuration (no auth, store from anyone)."""

    def __init__(self, root: Path) -> None:
        self.dicom_port, self.http_port = free_port(), free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "cinestrain-bench", "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"), "DicomAet": "ORTHANC",
            "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomModalities": {}, "DicomAlwaysAllowStore": True,
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        self.proc = subprocess.Popen([shutil.which("Orthanc") or "Orthanc",
                                      str(root / "orthanc.json")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.count()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("Orthanc did not start within 60 s")

    def count(self) -> int:
        """Instances stored."""
        url = f"http://127.0.0.1:{self.http_port}/statistics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(json.loads(response.read())["CountInstances"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def make_phantom(out: Path, seed: int) -> list[Path]:
    """The 10 x 25 x 256 x 256 phantom stack, one series per slice."""
    exe = Path(sys.executable).parent / "cinestrain"
    subprocess.run([str(exe), "phantom", "--out", str(out), "--cases", "1", "--seed",
                    str(seed), "--per-slice-series", "--slices", "10-10", "--phases", "25-25",
                    "--matrix", "256-256"], check=True, capture_output=True, timeout=600)
    return sorted(p for p in (out / "case_000" / "dicom").iterdir() if p.is_file())


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a running process, MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def one_run(work: Path, files: list[Path]) -> dict[str, Any]:
    """Push the stack to a fresh node and time everything until Orthanc holds the results."""
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE, ExportState, JobState

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    orthanc = Orthanc(work / "orthanc")
    port = free_port()
    store = work / "store"
    config = work / "node.toml"
    config.write_text(
        f'[node]\nport = {port}\nallowed_callers = [{{ae_title = "STORESCU"}}]\n'
        f'[storage]\ndirectory = "{store}"\nmin_free_mb = 100\n'
        f"[scheduler]\ncomplete_grace_seconds = {GRACE_S}\ntick_seconds = {TICK_S}\n"
        '[worker]\ndevice = "cpu"\n'
        '[[destinations]]\nkind = "dicom"\nname = "pacs"\nae_title = "ORTHANC"\n'
        f'host = "127.0.0.1"\nport = {orthanc.dicom_port}\n'
    )
    exe = Path(sys.executable).parent / "cinestrain"
    node = subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=(work / "serve.log").open("w"))
    try:
        wait_for_log(work / "serve.log", WORKER_READY)
        wait_listening(port, "CINESTRAIN")
        r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", "CINESTRAIN", "127.0.0.1",
                            str(port), *map(str, files)], capture_output=True, text=True,
                           env=DCMTK_ENV, timeout=600)
        last_store = time.time()
        if r.returncode != 0:
            raise RuntimeError(f"storescu failed: {r.stderr[-500:]}")
        index = Index(store / INDEX_FILE)  # the node's own index, read beside it
        deadline = time.monotonic() + 900
        export = job = None
        try:
            while time.monotonic() < deadline:
                job = next(reversed(index.jobs()), None)
                export = next(reversed(index.exports()), None)
                if job is not None and job.state == JobState.FAILED:
                    raise RuntimeError(f"job failed: {job.error}")
                if export is not None and export.state in (ExportState.DONE, ExportState.DEAD):
                    break
                time.sleep(0.05)
        finally:
            index.close()
        if job is None or export is None or export.state != ExportState.DONE:
            raise RuntimeError(f"no export done: {export}")
        node_rss = peak_rss_mb(node.pid)
        stored = orthanc.count()
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
        orthanc.stop()
    metrics = job.metrics or {}
    t = metrics.get("timings_s", {})
    early_s = (metrics.get("early_export") or {}).get("wait_s", 0.0)
    in_worker = job.finished_at - job.started_at
    stages = {
        "wait (after the quiet period)": job.started_at - last_store - GRACE_S,
        "worker (imports, hand-over)": t.get("imports_s", 0.0),
        "load (read stack, model)": t.get("read_s", 0.0) + t.get("model_s", 0.0),
        "heart centres, ED phase": t.get("heart_ed_s", 0.0),
        "myocardium": t.get("myocardium_s", 0.0),
        "inference (motion model)": t.get("motion_s", 0.0),
        "strain": t.get("strain_s", 0.0),
        # motion.npz is compressed on a thread beside the DICOM writing: its wait is the
        # part that was not hidden
        "writing: report, PNG, motion.npz": t.get("report_s", 0.0)
        + t.get("motion_npz_wait_s", 0.0),
        "writing: DICOM results": t.get("dicom_s", 0.0),
        # results are sent while they are written (export.while_writing): what is left
        # after the worker is done, then the export of anything not yet stored
        "export (after the last result written)": early_s
        + export.updated_at - job.finished_at,
    }
    accounted = sum(v for k, v in stages.items() if not k.startswith(("wait", "export")))
    stages["worker (imports, hand-over)"] += max(in_worker - early_s - accounted, 0.0)
    total = export.updated_at - last_store
    return {
        "latency_s": total - GRACE_S, "measured_s": total, "stages_s": stages,
        "results_in_orthanc": stored, "results_sent": export.sent,
        "worker_metrics": metrics,
        "node_peak_rss_mb": node_rss, "worker_peak_rss_mb": metrics.get("peak_rss_mb"),
        "worker_cpu_s": metrics.get("cpu_s"), "load_average": os.getloadavg()[0],
    }


def bench_latency(work: Path, repeats: int) -> dict[str, Any]:
    """Several runs on the same phantom; medians per stage."""
    files = make_phantom(work / "phantom", seed=7)
    runs = [one_run(work / f"run{i}", files) for i in range(repeats)]
    stages = {k: round(statistics.median(r["stages_s"][k] for r in runs), 2)
              for k in runs[0]["stages_s"]}
    return {
        "stack": "10 slices x 25 phases, 256 x 256, one series per slice (cinestrain phantom)",
        "instances": len(files), "quiet_period_excluded_s": GRACE_S, "tick_s": TICK_S,
        "cpus": os.cpu_count(), "repeats": repeats,
        "latency_s": round(statistics.median(r["latency_s"] for r in runs), 2),
        "latency_runs_s": [round(r["latency_s"], 2) for r in runs],
        "stages_s": stages,
        "stages_runs_s": [{k: round(v, 2) for k, v in r["stages_s"].items()} for r in runs],
        "results_in_orthanc": runs[-1]["results_in_orthanc"],
        "node_peak_rss_mb": round(max(r["node_peak_rss_mb"] or 0 for r in runs), 1),
        "worker_peak_rss_mb": round(max(r["worker_peak_rss_mb"] or 0 for r in runs), 1),
        "worker_cpu_s": round(statistics.median(r["worker_cpu_s"] or 0 for r in runs), 1),
        "load_average_1min": [round(r["load_average"], 1) for r in runs],
    }


def print_latency(result: dict[str, Any]) -> None:
    """The latency table."""
    print(f"\nEnd to end: {result['stack']}, {result['instances']} instances, "
          f"{result['cpus']} CPUs, median of {result['repeats']} run(s)")
    print(f"last C-STORE -> last result stored in Orthanc: {result['latency_s']:.1f} s "
          f"(runs {result['latency_runs_s']}; the {result['quiet_period_excluded_s']:.0f} s "
          "quiet period after a complete stack excluded)")
    for stage, seconds in result["stages_s"].items():
        print(f"  {stage:<32} {seconds:>6.2f} s")
    print(f"results stored in Orthanc: {result['results_in_orthanc']}; peak RSS: node "
          f"{result['node_peak_rss_mb']} MB, worker {result['worker_peak_rss_mb']} MB; "
          f"worker CPU time {result['worker_cpu_s']} s; 1-min load average at the end of "
          f"each run {result['load_average_1min']} (on {result['cpus']} CPUs)")
