"""Receive throughput of the node's SCP vs DCMTK ``storescp`` vs a bare pynetdicom handler.

The same short-axis stack (10 slices x 25 phases, 192 x 192, one series per slice: 250
images) is pushed by DCMTK ``storescu`` to each receiver in turn, in one run:

- ``storescp``: DCMTK's receiver writing files (``-dhl``, no fsync: not durable);
- ``pynetdicom+fsync``: the pynetdicom documentation's handler (decode the dataset, save
  it) plus an fsync of each file;
- ``cinestrain``: ``cinestrain serve`` (atomic durable spool + SQLite index per instance).

Both DCMTK tools run with ``TCP_NODELAY=1``. Prints a table and writes JSON::

    .venv/bin/python bench/node.py --repeats 3 --json bench/node.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_stack(out: Path, slices: int, phases: int, matrix: int) -> list[Path]:
    """A cine stack as classic MR files, one series per slice."""
    from dicom_io.mr import CineStudy, write_cine_classic

    rng = np.random.default_rng(0)
    orientation = np.array([1.0, 0, 0, 0, 1.0, 0])
    study = CineStudy(
        pixels=rng.integers(0, 1000, (slices, phases, matrix, matrix)).astype(np.uint16),
        positions=np.array([[0.0, 0.0, 8.0 * s] for s in range(slices)]),
        orientation=orientation,
        pixel_spacing=(1.5, 1.5),
        slice_thickness=8.0,
        trigger_times=np.tile(np.arange(phases) * 35.0, (slices, 1)),
        rr_interval_ms=35.0 * phases + 20,
    )
    return write_cine_classic(study, out, per_slice_series=True)


def wait_listening(port: int, aet: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = subprocess.run(["echoscu", "-aet", "STORESCU", "-aec", aet, "127.0.0.1", str(port)],
                           capture_output=True, env=DCMTK_ENV, timeout=30)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port} after {timeout_s} s")


def push(port: int, aet: str, files: list[Path]) -> float:
    """Seconds storescu takes to send every file over one association."""
    start = time.perf_counter()
    r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", aet, "127.0.0.1", str(port),
                        *map(str, files)], capture_output=True, text=True, env=DCMTK_ENV,
                       timeout=600)
    elapsed = time.perf_counter() - start
    if r.returncode != 0:
        raise RuntimeError(f"storescu failed: {r.stderr[-500:]}")
    return elapsed


def start_receiver(kind: str, port: int, work: Path) -> subprocess.Popen:
    out = work / kind
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if kind == "storescp":
        argv = ["storescp", "-dhl", "-aet", "CINESTRAIN", "-od", str(out), str(port)]
        return subprocess.Popen(argv, env=DCMTK_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    if kind == "pynetdicom+fsync":
        argv = [sys.executable, str(HERE), "--bare-server", str(port), str(out)]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = out / "node.toml"
    config.write_text(
        f'[node]\nport = {port}\nallowed_callers = [{{ae_title = "STORESCU"}}]\n'
        f'[storage]\ndirectory = "{out / "store"}"\nmin_free_mb = 100\n'
        "[scheduler]\nseries_stable_seconds = 3600.0\ncomplete_grace_seconds = 3600.0\n"
        '[logging]\nlevel = "WARNING"\n'
    )
    exe = Path(sys.executable).parent / "cinestrain"
    return subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bare_server(port: int, out: Path) -> None:
    """pynetdicom's documented store handler (decode, save) plus fsync: the baseline."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MRImageStorage, Verification

    def handle_store(event):
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = out / f"{ds.SOPInstanceUID}.dcm"
        with path.open("wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        return 0x0000

    ae = AE(ae_title="CINESTRAIN")
    ae.add_supported_context(Verification)
    ae.add_supported_context(MRImageStorage)
    ae.start_server(("127.0.0.1", port), block=True,
                    evt_handlers=[(evt.EVT_C_STORE, handle_store),
                                  (evt.EVT_C_ECHO, lambda e: 0)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--phases", type=int, default=25)
    parser.add_argument("--matrix", type=int, default=192)
    parser.add_argument("--json", type=Path, default=Path("bench/node.json"))
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(int(args.bare_server[0]), Path(args.bare_server[1]))
        return 0
    kinds = ["storescp", "pynetdicom+fsync", "cinestrain"]
    with tempfile.TemporaryDirectory(prefix="cinestrain-bench-") as tmp:
        work = Path(tmp)
        files = make_stack(work / "stack", args.slices, args.phases, args.matrix)
        megabytes = sum(p.stat().st_size for p in files) / 1e6
        times: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(args.repeats):
            for kind in kinds:  # interleaved, so that load changes hit all alike
                port = free_port()
                proc = start_receiver(kind, port, work)
                try:
                    wait_listening(port, "CINESTRAIN")
                    times[kind].append(push(port, "CINESTRAIN", files))
                finally:
                    proc.terminate()
                    proc.wait(timeout=60)
    rows = []
    for kind in kinds:
        t = statistics.median(times[kind])
        rows.append({
            "receiver": kind, "seconds": round(t, 3),
            "instances_per_s": round(len(files) / t, 1), "mb_per_s": round(megabytes / t, 1),
            "runs_s": [round(x, 3) for x in times[kind]],
        })
    ref = {r["receiver"]: r["instances_per_s"] for r in rows}
    for row in rows:
        row["vs_storescp"] = round(row["instances_per_s"] / ref["storescp"], 2)
    result = {"instances": len(files), "megabytes": round(megabytes, 1),
              "repeats": args.repeats, "rows": rows,
              "cinestrain_vs_storescp": ref["cinestrain"] / ref["storescp"],
              "cinestrain_vs_bare": ref["cinestrain"] / ref["pynetdicom+fsync"]}
    print(f"{len(files)} instances, {megabytes:.1f} MB, median of {args.repeats} run(s)")
    print(f"{'receiver':<18} {'s':>7} {'inst/s':>8} {'MB/s':>7} {'x storescp':>10}")
    for row in rows:
        print(f"{row['receiver']:<18} {row['seconds']:>7.2f} {row['instances_per_s']:>8.1f} "
              f"{row['mb_per_s']:>7.1f} {row['vs_storescp']:>10.2f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    ok = result["cinestrain_vs_storescp"] >= 0.3 and result["cinestrain_vs_bare"] >= 1.0
    print(f"cinestrain >= 0.3 x storescp and >= bare pynetdicom+fsync: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
