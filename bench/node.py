"""The node's speed: receive throughput vs DCMTK ``storescp`` and a bare pynetdicom handler,
and end-to-end latency with its breakdown and peak memory (``bench/node_latency.py``).

Receive: the same short-axis stack (10 slices x 25 phases, 256 x 256 uint16, one series
per slice: 250 images of 128 KB) is pushed by DCMTK ``storescu`` over one association to
each receiver in turn, repeats interleaved so that load changes hit all alike:

- ``storescp``: DCMTK's receiver writing files (``-dhl``; it never fsyncs: not durable);
- ``pynetdicom+fsync``: the pynetdicom documentation's handler (decode the dataset, save
  it) plus an fsync of each file: the bare baseline;
- ``cinestrain``: ``cinestrain serve`` (durable spool: temp file, fsync, rename, then the
  SQLite index, before Success);
- ``cinestrain+dirfsync``: the same with ``storage.fsync_directory = true`` (a second
  flush per instance: what the folder fsync costs);
- ``pynetdicom no-op``: a handler that answers Success and writes nothing, its reader
  polling as often as the node's (``node.poll_interval_ms``): the floor of any pynetdicom
  receiver set up like ours on this machine.

Both bare pynetdicom receivers accept PDUs as large as the node's default ``node.max_pdu``;
the ``+fsync`` one keeps pynetdicom's own polling (the documented handler as it comes).

It also measures, in the same run, the latency of one write + fsync of an instance-sized
file on the spool's disk (the floor of any receiver that acknowledges only durable data:
``storescu`` waits for each answer before it sends the next instance). Both DCMTK tools
run with ``TCP_NODELAY=1``. ``--profile`` runs our SCP in this process under cProfile and
prints where the association's time goes. Prints tables and writes JSON::

    .venv/bin/python bench/node.py --repeats 5                 # receive + latency
    .venv/bin/python bench/node.py --part receive --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1]))
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
RECEIVERS = ("storescp", "pynetdicom+fsync", "cinestrain", "cinestrain+dirfsync",
             "pynetdicom no-op")


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_stack(out: Path, slices: int, phases: int, matrix: int) -> list[Path]:
    """A cine stack as classic MR files, one series per slice."""
    from cinestrain.inference.phantom.scanner import CineStudy, write_cine_classic

    rng = np.random.default_rng(0)
    study = CineStudy(
        pixels=rng.integers(0, 1000, (slices, phases, matrix, matrix)).astype(np.uint16),
        positions=np.array([[0.0, 0.0, 8.0 * s] for s in range(slices)]),
        orientation=np.array([1.0, 0, 0, 0, 1.0, 0]),
        pixel_spacing=(1.5, 1.5),
        slice_thickness=8.0,
        trigger_times=np.tile(np.arange(phases) * 35.0, (slices, 1)),
        rr_interval_ms=35.0 * phases + 20,
    )
    return write_cine_classic(study, out, per_slice_series=True)


def wait_listening(port: int, aet: str, timeout_s: float = 60) -> None:
    """Until ``echoscu`` gets an answer (or a rejection: the port is open)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout_s} s")


def push(port: int, aet: str, files: list[Path]) -> float:
    """Seconds storescu takes to send every file over one association."""
    start = time.perf_counter()
    r = subprocess.run(["storescu", "-aet", "STORESCU", "-aec", aet, "127.0.0.1", str(port),
                        *map(str, files)], capture_output=True, text=True, env=DCMTK_ENV,
                       timeout=600)
    elapsed = time.perf_counter() - start
    if r.returncode != 0 or "Store Failed" in r.stderr:
        raise RuntimeError(f"storescu failed: {r.stderr[-500:]}")
    return elapsed


def node_config(out: Path, port: int, dirfsync: bool) -> Path:
    """A node configuration for the benchmark (storage in ``out``, nothing scheduled)."""
    config = out / "node.toml"
    config.write_text(
        f'[node]\nport = {port}\nallowed_callers = [{{ae_title = "STORESCU"}}]\n'
        f'[storage]\ndirectory = "{out / "store"}"\nmin_free_mb = 100\n'
        f"fsync_directory = {'true' if dirfsync else 'false'}\n"
        "[scheduler]\nseries_stable_seconds = 3600.0\ncomplete_grace_seconds = 3600.0\n"
        '[logging]\nlevel = "INFO"\n'
    )
    return config


def start_receiver(kind: str, port: int, work: Path) -> subprocess.Popen:
    """Start one receiver on ``port`` writing under ``work/<kind>``."""
    out = work / kind.replace(" ", "_")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if kind == "storescp":
        argv = ["storescp", "-dhl", "-aet", "CINESTRAIN", "-od", str(out), str(port)]
        return subprocess.Popen(argv, env=DCMTK_ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    if kind in ("pynetdicom+fsync", "pynetdicom no-op"):
        mode = "fsync" if kind == "pynetdicom+fsync" else "noop"
        argv = [sys.executable, str(HERE), "--bare-server", mode, str(port), str(out)]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = node_config(out, port, dirfsync=kind == "cinestrain+dirfsync")
    exe = Path(sys.executable).parent / "cinestrain"
    log = out / "serve.log"
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("w"))
    wait_for_log(log, WORKER_READY)
    return proc


#: what the node's warm worker process logs once its imports are done
WORKER_READY = "worker process"


def wait_for_log(log: Path, text: str, timeout_s: float = 120) -> None:
    """Until ``text`` appears in a log file: the node is running idle (its spare worker
    process has imported torch and the pipeline), as it is between studies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{text!r} not in {log} after {timeout_s} s")


def bare_server(mode: str, port: int, out: Path) -> None:
    """pynetdicom's documented store handler (decode, save) plus fsync; or a no-op."""
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import MRImageStorage, Verification

    from cinestrain.config.schema import NodeSection
    from cinestrain.node.receive.handlers import handle_connection_open

    node = NodeSection()

    def handle_store(event):
        if mode == "noop":
            return 0x0000
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = out / f"{ds.SOPInstanceUID}.dcm"
        with path.open("wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
            fh.flush()
            os.fsync(fh.fileno())
        return 0x0000

    ae = AE(ae_title="CINESTRAIN")
    ae.maximum_pdu_size = node.max_pdu  # the node's default: a like-for-like floor
    ae.add_supported_context(Verification)
    ae.add_supported_context(MRImageStorage)
    handlers = [(evt.EVT_C_STORE, handle_store), (evt.EVT_C_ECHO, lambda e: 0)]
    if mode == "noop":
        handlers.append((evt.EVT_CONN_OPEN, handle_connection_open, [node]))
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=handlers)


def fsync_floor_ms(folder: Path, size: int, n: int = 100) -> float:
    """Median milliseconds of writing a new ``size``-byte file and fsync'ing it."""
    folder.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    times = []
    for i in range(n):
        start = time.perf_counter()
        fd = os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        times.append(time.perf_counter() - start)
    shutil.rmtree(folder, ignore_errors=True)
    return 1000 * statistics.median(times)


def profile_receive(files: list[Path], work: Path) -> str:
    """Run our SCP in this process under cProfile and say where the time goes."""
    from pynetdicom.association import Association
    from pynetdicom.dul import DULServiceProvider

    from cinestrain.config.load import parse_config
    from cinestrain.node.index import Index
    from cinestrain.node.receive.handlers import StoreContext
    from cinestrain.node.receive.scp import start_scp
    from cinestrain.node.receive.spool import Spool

    profiles: list[tuple[str, cProfile.Profile]] = []

    def profiled(cls):
        original = cls.run

        def run(self):
            prof = cProfile.Profile()
            profiles.append((cls.__name__, prof))
            prof.enable()
            try:
                original(self)
            finally:
                prof.disable()

        cls.run = run
        return original

    originals = {cls: profiled(cls) for cls in (Association, DULServiceProvider)}
    root = work / "profile"
    port = free_port()
    cfg = parse_config({"node": {"port": port, "allow_any_caller": True},
                        "storage": {"directory": str(root), "min_free_mb": 100}})
    index = Index(root / "index.sqlite")
    server = start_scp(cfg.node, StoreContext(Spool(root / "spool", 100), index, 3600.0))
    try:
        wall = push(port, "CINESTRAIN", files)
    finally:
        server.shutdown()
        index.close()
        for cls, original in originals.items():
            cls.run = original
    out = io.StringIO()
    out.write(f"profiled push of {len(files)} instances: {wall:.2f} s wall (with profiler)\n")
    for name, prof in profiles:
        stats = pstats.Stats(prof, stream=out)
        out.write(f"\n--- {name} thread, by own time\n")
        stats.sort_stats("tottime").print_stats(8)
    [assoc] = [p for n, p in profiles if n == "Association"]
    out.write("\n--- the C-STORE handler, cumulative\n")
    pstats.Stats(assoc, stream=out).sort_stats("cumtime").print_stats(
        r"handlers.py.*(handle_store|read_header|check_lengths)|filemeta.py.*file_header"
        r"|spool.py.*(store|write_atomic|check_space)|index.py.*add_instance"
        r"|encoded_dataset|posix.fsync|dimse.py.*send_msg"
    )
    return out.getvalue()


def bench_receive(args: argparse.Namespace, work: Path) -> dict:
    """Interleaved pushes to every receiver; medians and paired ratios."""
    files = make_stack(work / "stack", args.slices, args.phases, args.matrix)
    megabytes = sum(p.stat().st_size for p in files) / 1e6
    kinds = list(args.receivers)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for kind in kinds:
            port = free_port()
            proc = start_receiver(kind, port, work)
            try:
                wait_listening(port, "CINESTRAIN")
                times[kind].append(push(port, "CINESTRAIN", files))
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    floor_ms = fsync_floor_ms(work / "fsync-floor", files[0].stat().st_size)
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
        row["vs_storescp"] = round(row["instances_per_s"] / ref["storescp"], 3)

    def paired(a: str, b: str) -> float | None:
        """Median over repeats of throughput(a) / throughput(b) measured side by side."""
        if a not in times or b not in times:
            return None
        return round(statistics.median(tb / ta for ta, tb in zip(times[a], times[b],
                                                                    strict=True)), 3)

    result = {
        "instances": len(files), "megabytes": round(megabytes, 1),
        "instance_bytes": files[0].stat().st_size, "repeats": args.repeats, "rows": rows,
        "fsync_floor_ms": round(floor_ms, 2),
        "durable_ceiling_vs_storescp": round(
            (len(files) / (len(files) * floor_ms / 1000)) / ref["storescp"], 3),
        "cinestrain_vs_storescp": paired("cinestrain", "storescp"),
        "cinestrain_vs_bare": paired("cinestrain", "pynetdicom+fsync"),
        "dirfsync_vs_cinestrain": paired("cinestrain+dirfsync", "cinestrain"),
        "noop_vs_storescp": paired("pynetdicom no-op", "storescp"),
    }
    if args.profile:
        result["profile"] = profile_receive(files, work)
    return result


def print_receive(result: dict) -> None:
    """The receive table and what it means."""
    print(f"\nReceive: {result['instances']} instances of {result['instance_bytes']} bytes "
          f"({result['megabytes']} MB) by storescu, one association; "
          f"median of {result['repeats']} interleaved runs")
    print(f"{'receiver':<22} {'s':>7} {'inst/s':>8} {'MB/s':>7} {'x storescp':>10}")
    for row in result["rows"]:
        print(f"{row['receiver']:<22} {row['seconds']:>7.2f} {row['instances_per_s']:>8.1f} "
              f"{row['mb_per_s']:>7.1f} {row['vs_storescp']:>10.3f}")
    print(f"paired ratios (median over runs): cinestrain / storescp "
          f"{result['cinestrain_vs_storescp']}, cinestrain / bare pynetdicom+fsync "
          f"{result['cinestrain_vs_bare']}, with folder fsync / without "
          f"{result['dirfsync_vs_cinestrain']}, pynetdicom no-op / storescp "
          f"{result['noop_vs_storescp']}")
    print(f"write+fsync of one instance on this disk: {result['fsync_floor_ms']} ms median: "
          f"no receiver that answers only durable instances can exceed "
          f"{result['durable_ceiling_vs_storescp']} x storescp here")
    if "profile" in result:
        print("\n" + result["profile"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "receive", "latency"), default="all")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--phases", type=int, default=25)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--receivers", nargs="+", choices=RECEIVERS, default=list(RECEIVERS))
    parser.add_argument("--profile", action="store_true", help="profile our receive path")
    parser.add_argument("--latency-repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=Path("bench/out/node.json"))
    parser.add_argument("--bare-server", nargs=3, metavar=("MODE", "PORT", "DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server[0], int(args.bare_server[1]), Path(args.bare_server[2]))
        return 0
    if "storescp" not in args.receivers:
        parser.error("--receivers must include storescp (the reference)")
    result: dict = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="cinestrain-bench-") as tmp:
        work = Path(tmp)
        if args.part in ("all", "receive"):
            result["receive"] = bench_receive(args, work)
            print_receive(result["receive"])
        if args.part in ("all", "latency"):
            from bench.node_latency import bench_latency, print_latency

            result["latency"] = bench_latency(work / "latency", args.latency_repeats)
            print_latency(result["latency"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
