"""Logs carry UIDs and AE titles, never patient names: a push with a known PatientName
through the whole node (SCP, scheduler, worker process, export), then a grep of every log."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from pydicom import dcmread

from cinestrain.cli.config import _without_none
from cinestrain.node.index import Index
from cinestrain.node.records import JobRow
from cinestrain.node.states import INDEX_FILE, JobState
from tests.node.conftest import phantom_files, storescu, wait_for, wait_listening

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")

#: a name no code, path or UID could contain by chance
NAME = "Zyxwvut^Quintessa^Marie"
PATIENT_ID = "PID-8842731"


def test_patient_names_never_reach_the_logs(make_config, phantom_dir, tiny_weights, tmp_path):
    files = []
    for series in phantom_files(phantom_dir).values():
        for path in series:
            ds = dcmread(path)
            ds.PatientName, ds.PatientID = NAME, PATIENT_ID
            files.append(tmp_path / "in" / path.name)
            files[-1].parent.mkdir(exist_ok=True)
            ds.save_as(files[-1])
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[{"kind": "folder", "name": "archive", "path": str(tmp_path / "out")}],
        logging={"level": "DEBUG", "file": str(tmp_path / "node.log")},
    )
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    stderr = tmp_path / "stderr.log"
    exe = Path(sys.executable).parent / "cinestrain"
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    try:
        wait_listening(cfg)
        assert storescu(cfg, *files).returncode == 0

        def jobs() -> list[JobRow]:
            index = Index(cfg.storage.directory / INDEX_FILE)
            try:
                return index.jobs()
            finally:
                index.close()

        assert wait_for(lambda: [j.state for j in jobs()] == [JobState.DONE], 120), jobs()
        assert wait_for(lambda: (tmp_path / "out").exists(), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    logs = (tmp_path / "node.log").read_text() + stderr.read_text()
    assert "C-STORE" in logs and "job 1 done" in logs  # the logs are there, at DEBUG
    assert dcmread(files[0]).SOPInstanceUID in logs  # with UIDs
    for needle in (NAME, "Zyxwvut", "Quintessa", PATIENT_ID):
        assert needle not in logs, f"{needle!r} in the logs"
