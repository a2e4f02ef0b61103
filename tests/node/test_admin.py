"""What a new admin does, as the admin does it: start ``cinestrain serve`` with no
destination, push a phantom study with DCMTK ``storescu``, find the job and its results
with ``cinestrain status --json``, add an Orthanc destination to the configuration,
restart the node, ``cinestrain send 1``: Orthanc then holds every DICOM result once.
Pushing the same study again makes no second job and says so in one log line.

Real parts only: the node and the commands as subprocesses (the console script of this
environment), a real (small, untrained: plumbing, not accuracy) model, Orthanc on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from cinestrain.config import NodeConfig
from tests.node.conftest import (
    TOOL_TIMEOUT_S,
    Orthanc,
    free_port,
    storescu,
    wait_for,
    wait_listening,
)

pytestmark = [
    pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)"),
    pytest.mark.requires_tool("echoscu", "waiting for the node to listen (Debian dcmtk)"),
    pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)"),
]

EXE = Path(sys.executable).parent / "cinestrain"


def write_config(cfg: NodeConfig, path: Path) -> Path:
    """``cfg`` as the TOML file the admin edits."""
    import tomli_w

    from cinestrain.cli.config import _without_none

    path.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    return path


def cinestrain(*argv: str, config: Path) -> subprocess.CompletedProcess:
    """Run an admin command, bounded."""
    return subprocess.run([str(EXE), *argv, "--config", str(config)], capture_output=True,
                          text=True, timeout=TOOL_TIMEOUT_S)


def status(config: Path) -> dict[str, Any]:
    """``cinestrain status --json``."""
    done = cinestrain("status", "--json", config=config)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


class Served:
    """``cinestrain serve`` in its own process group, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.proc = subprocess.Popen(
            [str(EXE), "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
            stderr=log.open("a"), start_new_session=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def orthanc_sop_instance_uids(orthanc: Orthanc) -> list[str]:
    """The SOP Instance UID of every instance Orthanc holds (repeats kept)."""
    url = f"http://127.0.0.1:{orthanc.http_port}/instances?expand"
    with urllib.request.urlopen(url, timeout=10) as response:
        instances = json.loads(response.read())
    return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in instances)


def test_a_new_admin_finds_the_results_and_sends_them_to_a_pacs_added_later(
        make_config, phantom_dir, tiny_weights, tmp_path):
    cfg = make_config(model={"weights": str(tiny_weights)},
                      worker={"device": "cpu", "torch_threads": 1},
                      logging={"level": "INFO"})
    assert cfg.destinations == []
    config = write_config(cfg, tmp_path / "node.toml")
    log = tmp_path / "serve.log"
    files = sorted((phantom_dir / "dicom").iterdir())
    study_uid = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    orthanc = None

    # 1. start the node with no destination, push a study
    node = Served(config, log)
    try:
        wait_listening(cfg)
        assert storescu(cfg, *files).returncode == 0

        # 2. status --json: the job is done, its results folder holds the results
        def jobs() -> list[dict[str, Any]]:
            return status(config).get("recent_jobs", [])

        assert wait_for(lambda: [j["state"] for j in jobs()] == ["done"], 240, 1.0), (
            log.read_text()[-3000:])
        report = status(config)
        [job] = report["recent_jobs"]
        assert (job["id"], job["study_uid"]) == (1, study_uid)
        assert report["stacks"] == {"done": 1} and job["stack_state"] == "done"
        results = Path(job["results"])
        assert job["results_exist"] and results.is_dir()
        assert (results / "report.json").is_file()
        written = sorted(p for p in results.rglob("*.dcm"))
        assert written and job["file_count"] >= len(written) + 1
        assert job["exports"] == []  # nowhere to send yet
        assert f"study {study_uid}: analysed as job 1, results in {results}" in log.read_text()
        node.stop()

        # 3. add Orthanc to the configuration, restart, send job 1
        orthanc_port = free_port()
        orthanc = Orthanc(tmp_path / "orthanc", orthanc_port)
        with_pacs = cfg.model_copy(update={"destinations": make_config(destinations=[
            {"kind": "dicom", "name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1",
             "port": orthanc_port}]).destinations})
        write_config(with_pacs, config)
        node = Served(config, log)
        wait_listening(cfg)
        assert orthanc.instances() == []  # nothing is sent by itself
        sent = cinestrain("send", "1", config=config)
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("job 1: 1 export(s) queued: orthanc\n")

        def export_states() -> list[str]:
            return [e["state"] for e in status(config)["recent_jobs"][0]["exports"]]

        assert wait_for(lambda: export_states() == ["done"], 120, 1.0), (
            status(config)["recent_jobs"][0]["exports"])
        expected = sorted(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
                          for p in written)
        assert wait_for(lambda: len(orthanc.instances()) >= len(written), 30)
        time.sleep(2)  # nothing more arrives
        assert orthanc_sop_instance_uids(orthanc) == expected  # every result, once

        # 4. the same study pushed again: no second job, one line that says so
        assert storescu(cfg, *files).returncode == 0
        assert wait_for(lambda: "already analysed as job 1, nothing to do" in log.read_text(),
                        60, 0.5), log.read_text()[-3000:]
        report = status(config)
        assert [j["id"] for j in report["recent_jobs"]] == [1]
        assert report["stacks"] == {"done": 1}
        assert log.read_text().count("already analysed as job 1") == 1
    finally:
        node.stop()
        if orthanc is not None:
            orthanc.stop()
