"""End to end: DCMTK pushes a phantom stack, the node analyses it, Orthanc receives results.

Real parts only: ``storescu`` over two parallel associations (random order, one series
per slice), our SCP, scheduler and worker process, the analysis pipeline with a real (small,
untrained: plumbing, not accuracy) model, and Orthanc as the destination PACS on loopback.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom import dcmread

from cinestrain.node.records import JobRow
from cinestrain.node.service import Node
from cinestrain.node.states import JobState
from tests.node.conftest import Orthanc, free_port, push_parallel, storescu, wait_for

pytestmark = [
    pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)"),
    pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)"),
]


def _get(orthanc: Orthanc, path: str) -> object:
    url = f"http://127.0.0.1:{orthanc.http_port}{path}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def node_to_orthanc(make_config, weights: Path, orthanc_port: int):
    """A node on the small test model, CPU, exporting to Orthanc ("ORTHANC") on loopback."""
    return make_config(
        model={"weights": str(weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[{"kind": "dicom", "name": "pacs", "ae_title": "ORTHANC",
                       "host": "127.0.0.1", "port": orthanc_port}],
    )


def test_scanner_to_pacs(make_config, phantom_dir, tiny_weights, tmp_path):
    orthanc_port = free_port()
    cfg = node_to_orthanc(make_config, tiny_weights, orthanc_port)
    orthanc = Orthanc(tmp_path / "orthanc", orthanc_port)
    node = Node(cfg)
    node.start()
    try:
        files = sorted((phantom_dir / "dicom").iterdir())
        push_parallel(cfg, files, seed=3)
        assert wait_for(lambda: [j.state for j in node.index.jobs()] == [JobState.DONE], 180), (
            node.index.jobs()
        )
        assert wait_for(lambda: [e.state for e in node.index.exports()] == ["done"], 60), (
            node.index.exports()
        )
        source_study = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
        studies = _get(orthanc, "/studies?expand")
        assert len(studies) == 1
        assert studies[0]["MainDicomTags"]["StudyInstanceUID"] == source_study
        series = _get(orthanc, f"/studies/{studies[0]['ID']}/series?expand")
        modalities = {s["MainDicomTags"].get("Modality") for s in series}
        assert {"SR", "SEG"} <= modalities
        descriptions = " | ".join(s["MainDicomTags"].get("SeriesDescription", "") for s in series)
        sop_classes = set()
        for s in series:
            instance = _get(orthanc, f"/instances/{s['Instances'][0]}/tags?simplify")
            sop_classes.add(instance["SOPClassUID"])
        assert "1.2.840.10008.5.1.4.1.1.30" in sop_classes, descriptions  # Parametric Map
        assert "1.2.840.10008.5.1.4.1.1.88.22" in sop_classes or (
            "1.2.840.10008.5.1.4.1.1.88.33" in sop_classes
        ), descriptions  # Enhanced / Comprehensive SR
        assert "1.2.840.10008.5.1.4.1.1.66.4" in sop_classes, descriptions  # SEG
        assert any(uid.startswith("1.2.840.10008.5.1.4.1.1.7") for uid in sop_classes), (
            descriptions
        )  # secondary captures
        [job] = node.index.jobs()
        written = [p for p in job.files if p.suffix == ".dcm"]
        assert len(_get(orthanc, "/instances")) == len(written)  # results only, each once
    finally:
        node.stop()
        orthanc.stop()


def test_sigkill_while_processing_gives_results_exactly_once(
    make_config,
    phantom_dir,
    tiny_weights,
    tmp_path,
):
    """Kill the node (and its worker) mid-job; after restart the job runs again and the
    PACS holds every result once (deterministic UIDs: a resend replaces, never adds)."""
    import os
    import signal
    import subprocess
    import sys

    import tomli_w

    from cinestrain.cli.config import _without_none
    from cinestrain.node.index import Index
    from cinestrain.node.states import INDEX_FILE

    orthanc_port = free_port()
    cfg = node_to_orthanc(make_config, tiny_weights, orthanc_port)
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    exe = Path(sys.executable).parent / "cinestrain"
    log = tmp_path / "serve.log"

    def serve() -> subprocess.Popen:
        return subprocess.Popen(
            [str(exe), "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log.open("a"),
            start_new_session=True,
        )

    def jobs() -> list[JobRow]:
        index = Index(cfg.storage.directory / INDEX_FILE)
        try:
            return index.jobs()
        finally:
            index.close()

    orthanc = Orthanc(tmp_path / "orthanc", orthanc_port)
    proc = serve()
    try:
        assert wait_for(lambda: (cfg.storage.directory / INDEX_FILE).exists(), 60)
        assert wait_for(
            lambda: storescu(cfg, *sorted((phantom_dir / "dicom").iterdir())).returncode == 0,
            60,
            0.5,
        )
        running = wait_for(lambda: any(j.state == JobState.RUNNING for j in jobs()), 120, 0.05)
        assert running, jobs()
        os.killpg(proc.pid, signal.SIGKILL)  # the node and its worker process
        proc.wait(timeout=30)
        assert orthanc.instances() == []

        proc = serve()
        assert wait_for(lambda: [j.state for j in jobs()] == [JobState.DONE], 180), jobs()
        [job] = jobs()
        written = [p for p in job.files if p.suffix == ".dcm"]
        assert written
        assert wait_for(lambda: len(orthanc.instances()) == len(written), 60)
        time.sleep(2)  # nothing more arrives
        assert len(orthanc.instances()) == len(written)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        orthanc.stop()
