"""Fixtures and helpers of the node tests: configurations on free loopback ports, small cine
studies, pushes with DCMTK, a throw-away Orthanc, waits."""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from cinestrain.config import NodeConfig
from cinestrain.config.load import parse_config
from cinestrain.node.index import Index
from cinestrain.node.receive.handlers import StoreContext
from cinestrain.node.receive.scp import start_scp
from cinestrain.node.receive.spool import Spool
from cinestrain.node.states import INDEX_FILE, SPOOL_DIR
from cinestrain.node.viewer import DICOMWEB_PLUGIN, orthanc_dicomweb_config
from cinestrain.pipeline.job import AnalysisRequest
from tests.conftest import require_file, require_tool

#: every subprocess of a test is bounded by this many seconds
TOOL_TIMEOUT_S = 60


def wait_for(predicate, timeout_s: float, poll_s: float = 0.2) -> bool:
    """Whether ``predicate()`` comes true within ``timeout_s`` (polled every ``poll_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return bool(predicate())


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., NodeConfig]:
    """``make_config(**sections)``: a node on a free port (its /healthz and /metrics on
    another), storage in ``tmp_path``, callers STORESCU and ECHOSCU allowed, quick
    scheduler ticks."""

    def factory(**sections: Any) -> NodeConfig:
        base = {
            "node": {
                "ae_title": "CINESTRAIN",
                "port": free_port(),
                "allowed_callers": [{"ae_title": "STORESCU"}, {"ae_title": "ECHOSCU"}],
            },
            "storage": {"directory": str(tmp_path / "store"), "min_free_mb": 1},
            "scheduler": {
                "series_stable_seconds": 3.0,
                "complete_grace_seconds": 0.5,
                "tick_seconds": 0.2,
            },
            "logging": {"level": "DEBUG"},
            "http": {"port": free_port()},
        }
        return parse_config(merge(base, sections))

    return factory


def results_request(cfg: NodeConfig, inputs: list[Path] | None = None) -> AnalysisRequest:
    """A job request of ``cfg`` writing under the node's results folder (for index rows
    whose job the test does not run)."""
    return AnalysisRequest.from_config(cfg, inputs or [cfg.storage.directory / "spool"],
                                       cfg.storage.directory / "results")


def run_tool(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a DCMTK tool, bounded, capturing its output."""
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env
    )


def storescu(
    cfg: NodeConfig,
    *files: str | Path,
    calling: str = "STORESCU",
    called: str | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """Push files with DCMTK ``storescu`` to the configured node."""
    return run_tool(
        "storescu",
        "-aet",
        calling,
        "-aec",
        called or cfg.node.ae_title,
        *extra,
        "127.0.0.1",
        str(cfg.node.port),
        *files,
    )


def wait_listening(cfg) -> None:
    """Wait (up to 60 s) until the node of ``cfg`` answers DCMTK ``echoscu``."""
    ok = wait_for(lambda: run_tool("echoscu", "-aet", "ECHOSCU", "-aec", cfg.node.ae_title,
                                   "127.0.0.1", str(cfg.node.port)).returncode == 0, 60, 0.3)
    assert ok, "node did not start listening"


def push_parallel(cfg, files: list[Path], seed: int = 0) -> None:
    """Files in random order over two parallel storescu associations."""
    files = list(files)
    random.Random(seed).shuffle(files)
    halves = [files[0::2], files[1::2]]
    procs = [
        subprocess.Popen(
            ["storescu", "-R", "-aet", "STORESCU", "-aec", cfg.node.ae_title, "127.0.0.1",
             str(cfg.node.port), *map(str, half)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for half in halves
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=TOOL_TIMEOUT_S)
        assert proc.returncode == 0, err


class Receiver:
    """An SCP with its spool and index, started and stopped by the test."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        root = cfg.storage.directory
        self.spool = Spool(root / SPOOL_DIR, cfg.storage.min_free_mb)
        self.index = Index(root / INDEX_FILE)
        self.server = start_scp(
            cfg.node,
            StoreContext(
                self.spool,
                self.index,
                min(cfg.scheduler.complete_grace_seconds, cfg.scheduler.series_stable_seconds),
            ),
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.index.close()

    def spooled(self) -> list[Path]:
        return sorted(self.spool.iter_instances())


@pytest.fixture
def receiver(make_config) -> Iterator[Receiver]:
    """An SCP with spool and index on the default test configuration."""
    node = Receiver(make_config())
    yield node
    node.stop()


def last_received(receiver) -> float:
    """When the receiver's last instance arrived (``received_at`` in its index)."""
    return max(r["received_at"] for r in receiver.index._all("SELECT received_at FROM instances"))


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """A real phantom study: 3 slices x 8 phases, 64 x 64, one series per slice, plus
    its myocardium SEG (``seg/seg.dcm``)."""
    out = tmp_path_factory.mktemp("phantom")
    result = subprocess.run(
        [
            "cinestrain",
            "phantom",
            "--out",
            str(out),
            "--cases",
            "1",
            "--seed",
            "8",
            "--per-slice-series",
            "--slices",
            "3-3",
            "--phases",
            "8-8",
            "--matrix",
            "64-64",
            "--file-names",
            "random",
            "--no-noise",
        ],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr
    return out / "case_000"


def phantom_files(phantom_dir: Path) -> dict[str, list[Path]]:
    """The phantom's files by series UID."""
    by_series: dict[str, list[Path]] = {}
    for path in sorted((phantom_dir / "dicom").iterdir()):
        by_series.setdefault(dcmread(path, stop_before_pixels=True).SeriesInstanceUID,
                             []).append(path)
    return by_series


class Orthanc:
    """Orthanc on loopback with a throw-away configuration (no auth, store from anyone).
    Tests that start one say ``pytest.mark.requires_tool("Orthanc", why)``; without the
    program, starting one skips the test (fails it under CI).

    ``dicomweb=True`` loads the DICOMweb plugin (as the local viewer does), at
    :attr:`dicomweb_url`; ``users`` (name -> password) turns HTTP basic authentication on.
    """

    def __init__(self, root: Path, dicom_port: int, dicomweb: bool = False,
                 users: dict[str, str] | None = None) -> None:
        program = require_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
        if dicomweb:
            require_file(DICOMWEB_PLUGIN, "Orthanc's DICOMweb plugin (Debian package "
                         "orthanc-dicomweb)")
        self.users = dict(users or {})
        self.dicom_port, self.http_port = dicom_port, free_port()
        config = {
            "Name": "cinestrain-test",
            "StorageDirectory": str(root / "storage"),
            "IndexDirectory": str(root / "index"),
            "DicomAet": "ORTHANC",
            "DicomPort": dicom_port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": {},
            "DicomAlwaysAllowStore": True,
            **(orthanc_dicomweb_config() if dicomweb else {}),
            **({"AuthenticationEnabled": True, "RegisteredUsers": self.users}
               if self.users else {}),
        }
        root.mkdir(parents=True, exist_ok=True)
        (root / "orthanc.json").write_text(json.dumps(config))
        self.log = (root / "orthanc.log").open("w")
        self.proc = subprocess.Popen(
            [program, str(root / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.instances()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("Orthanc did not start within 30 s")

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (with ``dicomweb=True``)."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def get(self, path: str) -> Any:
        """GET ``path`` of the REST API (as the first registered user, if any): JSON."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        if self.users:
            user, password = next(iter(self.users.items()))
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def instances(self) -> list[str]:
        return self.get("/instances")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.log.close()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A real but untrained small model (plumbing, not accuracy)."""
    from cinestrain.inference.model.checkpoint import save_checkpoint
    from cinestrain.inference.model.network import MotionConfig, MotionModel

    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    config = MotionConfig(grid_size=32, channels=(8, 16, 16), decoder_width=16)
    save_checkpoint(path, MotionModel(config), {"note": "test"})
    return path


def running_job(cfg: NodeConfig, index: Index, make_study: Callable[..., Any]
                ) -> tuple[int, list[Path]]:
    """A claimed job whose output folder holds 3 DICOM objects and a report.json."""
    from cinestrain.inference.phantom.scanner import write_cine_classic

    stack_id = index.upsert_stack("1.2.3", ["1.2.3.4"], "1x8x32x32", 8, "queued")
    job_id = index.create_job(stack_id, "digest", results_request(cfg), "complete")
    out_dir = index.job(job_id).out_dir
    files = write_cine_classic(make_study(n_slices=1, n_phases=3), out_dir)
    (out_dir / "report.json").write_text("{}")
    index.claim_job()
    return job_id, files


def write_config(cfg: NodeConfig, tmp_path: Path) -> Path:
    """``cfg`` written as ``tmp_path/node.toml`` (what ``--config`` reads)."""
    import tomli_w

    from cinestrain.cli.config import _without_none

    path = tmp_path / "node.toml"
    path.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    return path
