"""A real scanner export through the node: storescu -> SCP -> scheduler -> worker -> report.

Sunnybrook SCD0000201 (GE Signa 1.5 T bSSFP, 13 slices x 20 phases, ``../shared``): one
series of 260 single-frame images, each with its own frame of reference, leading-zero UID
components, anonymised dates ``20120000``, and ED late in the cycle (manual contours: ED
phase 19, ES phase 6 of 20). Pushed with DCMTK, analysed with the shipped weights on the
CPU. About 1.5-2 minutes on 2 cores.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.node.service import Node
from cinestrain.node.states import JobState
from tests.conftest import SUNNYBROOK
from tests.node.conftest import storescu, wait_for

ARCHIVE = SUNNYBROOK / "SCD0000201.tar.gz"
#: phases of the manual ED / ES contours (``IM-0001-0060`` / ``-0047``: (N - 1) % 20)
MANUAL_ED, MANUAL_ES = 19, 6

pytestmark = [
    pytest.mark.slow,
    pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)"),
    pytest.mark.requires_file(ARCHIVE, "a real scanner export (the shared Sunnybrook data)"),
    pytest.mark.requires_file(shipped_weights_path("gru"),
                              "the shipped motion model (in the repository)"),
]


def _cyclic_distance(a: int, b: int, n: int = 20) -> int:
    return min((a - b) % n, (b - a) % n)


def test_sunnybrook_study_through_the_node(make_config, tmp_path: Path) -> None:
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(tmp_path / "study", filter="data")
    files = sorted((tmp_path / "study" / "dicoms" / "SCD0000201").iterdir())
    assert len(files) == 260
    cfg = make_config(worker={"device": "cpu", "torch_threads": 2})
    node = Node(cfg)
    node.start()
    try:
        sent = storescu(cfg, *files)
        assert sent.returncode == 0, sent.stderr[-2000:]
        assert wait_for(lambda: [j.state for j in node.index.jobs()]
                        in ([JobState.DONE], [JobState.FAILED]), 400), node.index.jobs()
        [job] = node.index.jobs()
        assert job.state == JobState.DONE, job.error
        report = json.loads((job.out_dir / "report.json").read_text())
    finally:
        node.stop()
    assert report["ed_phase_source"] == "largest-blood-pool"
    assert _cyclic_distance(report["ed_phase"], MANUAL_ED) <= 1, report["ed_phase"]
    assert report["myocardium_source"] == "automatic"
    peaks = report["global"]
    assert peaks["peak_circumferential_strain_pct"] < 0 < peaks["peak_radial_strain_pct"]
    assert report["function"]["ef_pct"] > 0
    outputs = {p.name for p in job.files}
    assert {"report.json", "sr_report.dcm", "seg_myocardium.dcm"} <= outputs
