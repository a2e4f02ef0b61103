"""The whole node: storescu -> spool -> stack -> job on the worker -> export; crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from pydicom import dcmread
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from cinestrain.cli.config import _without_none
from cinestrain.node.index import Index
from cinestrain.node.service import Node
from cinestrain.node.states import INDEX_FILE, PARTIAL_SUFFIX, JobState
from tests.node.conftest import TOOL_TIMEOUT_S, storescu, wait_for, wait_listening

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")


def test_pushed_stack_is_analysed_and_exported(make_config, phantom_dir, tiny_weights, tmp_path):
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[{"kind": "folder", "name": "archive", "path": str(tmp_path / "out")}],
    )
    node = Node(cfg)
    node.start()
    try:
        files = sorted((phantom_dir / "dicom").iterdir())
        assert storescu(cfg, *files).returncode == 0
        index = node.index
        assert wait_for(lambda: [j.state for j in index.jobs()] == [JobState.DONE], 120), (
            index.jobs()
        )
        [job] = index.jobs()
        outputs = job.files
        [npz] = [p for p in outputs if p.name == "motion.npz"]
        motion = np.load(npz)
        assert motion["displacement"].shape == (3, 8, 2, 64, 64)
        assert wait_for(lambda: [e.state for e in index.exports()] == ["done"], 20)
        copied = {p.name for p in (tmp_path / "out").rglob("*") if p.is_file()}
        assert copied == {p.name for p in outputs}
    finally:
        node.stop()


def test_failed_job_keeps_inputs_and_records_the_error(make_config, phantom_dir, tmp_path):
    cfg = make_config(model={"weights": str(tmp_path / "missing.pt")}, worker={"device": "cpu"})
    node = Node(cfg)
    node.start()
    try:
        files = sorted((phantom_dir / "dicom").iterdir())
        assert storescu(cfg, *files).returncode == 0
        assert wait_for(lambda: [j.state for j in node.index.jobs()] == [JobState.FAILED], 90)
        [job] = node.index.jobs()
        assert "missing.pt" in job.error
        assert all(p.is_file() for p in job.request().inputs)
    finally:
        node.stop()


def serve(config: Path, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).parent / "cinestrain"
    return subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=log.open("a"))


def test_sigkill_while_receiving_loses_no_acknowledged_instance(make_config, make_study,
                                                               tmp_path):
    from cinestrain.inference.phantom.scanner import write_cine_classic

    cfg = make_config(scheduler={"series_stable_seconds": 600, "complete_grace_seconds": 600})
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    files = write_cine_classic(make_study(n_slices=6, n_phases=25, rows=64, columns=64),
                               tmp_path / "cine", file_names="random")
    log = tmp_path / "serve.log"
    proc = serve(config, log)
    acked: list[str] = []
    try:
        wait_listening(cfg)

        def push() -> None:
            ae = AE(ae_title="STORESCU")
            ae.add_requested_context(MRImageStorage)
            assoc = ae.associate("127.0.0.1", cfg.node.port, ae_title=cfg.node.ae_title)
            try:
                for path in files:
                    ds = dcmread(path)
                    status = assoc.send_c_store(ds)
                    if not status or status.Status != 0:
                        return
                    acked.append(ds.SOPInstanceUID)
            finally:
                if assoc.is_established:
                    assoc.release()

        sender = threading.Thread(target=push, daemon=True)
        sender.start()
        assert wait_for(lambda: len(acked) >= 40, 60, 0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=TOOL_TIMEOUT_S)
        sender.join(timeout=TOOL_TIMEOUT_S)
        assert 40 <= len(acked) < len(files)

        proc = serve(config, log)
        wait_listening(cfg)
        index = Index(cfg.storage.directory / INDEX_FILE)
        try:
            for uid in acked:
                row = index.instance(uid)
                assert row is not None, f"acknowledged {uid} missing from the index"
                assert dcmread(row.path).SOPInstanceUID == uid
        finally:
            index.close()
        assert not list(cfg.storage.directory.rglob(f"*{PARTIAL_SUFFIX}"))
        assert storescu(cfg, *files).returncode == 0  # the sender's retry: duplicates are fine
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=30) == 0, log.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
