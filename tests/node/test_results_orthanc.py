"""``cinestrain analyze`` writes the DICOM results next to report.json, and Orthanc (the
receiving PACS, on loopback) accepts every one of them from DCMTK ``storescu`` and lists
them in the source study; the same for the results of an Enhanced MR (multi-frame) stack.

The motion model here is an untrained small one saved by the test (or the phantom's truth
motion): these tests check the plumbing (objects written, accepted, filed in the right
study), not the accuracy, so they run without the shipped weights.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.dicom_io.write.results import write_dicom_results
from cinestrain.inference.model.checkpoint import save_checkpoint
from cinestrain.inference.model.network import MotionConfig, MotionModel
from tests.helpers.results import phantom_result
from tests.node.conftest import Orthanc, free_port, run_tool


@pytest.fixture(scope="module")
def analyzed(phantom_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of ``cinestrain analyze`` on the phantom with its SEG."""
    root = tmp_path_factory.mktemp("analyze")
    torch.manual_seed(0)
    weights = root / "tiny.pt"
    save_checkpoint(weights, MotionModel(MotionConfig(grid_size=32)).eval(),
                    {"purpose": "test: untrained"})
    out = root / "out"
    assert main(["analyze", str(phantom_dir / "dicom"), "--seg",
                 str(phantom_dir / "seg" / "seg.dcm"), "--weights", str(weights),
                 "--device", "cpu", "--out", str(out)]) == 0
    return out


def test_analyze_writes_every_kind_next_to_report_json(analyzed: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    report = json.loads((analyzed / "report.json").read_text())
    names = {p.name for p in analyzed.glob("*.dcm")}
    phases = len(report["trigger_times_ms"])
    for quantity in ("radial_strain", "circumferential_strain", "displacement_x",
                     "displacement_y", "displacement_z"):
        assert {f"pm_{quantity}_t{t:02d}.dcm" for t in range(phases)} <= names
    assert {"sr_report.dcm", "seg_myocardium.dcm", "sc_bullseye.dcm"} <= names
    assert any(n.startswith("sc_overlay_s") for n in names)
    sr = dcmread(analyzed / "sr_report.dcm")
    assert sr.SeriesDescription == "cinestrain report"
    assert sr.StudyInstanceUID == dcmread(analyzed / "seg_myocardium.dcm").StudyInstanceUID


def _get(orthanc: Orthanc, path: str) -> object:
    url = f"http://127.0.0.1:{orthanc.http_port}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def orthanc(tmp_path: Path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc", free_port())
    yield server
    server.stop()


def _send_and_list(orthanc: Orthanc, sources: list[Path], results: list[Path]
                   ) -> list[dict]:
    """C-STORE sources and results with ``storescu``; check that Orthanc holds them all in
    one study, the source's, each result by its SOP Instance UID; return its series."""
    sent = run_tool("storescu", "-R", "-aet", "STORESCU", "-aec", "ORTHANC", "127.0.0.1",
                    str(orthanc.dicom_port), *sources, *results)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert len(orthanc.instances()) == len(sources) + len(results)
    study_uid = str(dcmread(sources[0], stop_before_pixels=True).StudyInstanceUID)
    studies = _get(orthanc, "/studies?expand")
    assert [s["MainDicomTags"]["StudyInstanceUID"] for s in studies] == [study_uid]
    listed = {i["MainDicomTags"]["SOPInstanceUID"]
              for i in _get(orthanc, f"/studies/{studies[0]['ID']}/instances?expand")}
    assert {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in results} <= listed
    return _get(orthanc, f"/studies/{studies[0]['ID']}/series?expand")


@pytest.mark.requires_tool("storescu", "sending to Orthanc (Debian package dcmtk)")
@pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
def test_orthanc_accepts_every_object_into_the_source_study(
        analyzed: Path, phantom_dir: Path, orthanc: Orthanc) -> None:
    sources = sorted(p for p in (phantom_dir / "dicom").iterdir() if p.is_file())
    series = _send_and_list(orthanc, sources, sorted(analyzed.glob("*.dcm")))
    described = {s["MainDicomTags"].get("SeriesDescription", ""): len(s["Instances"])
                 for s in series}
    phases = len(json.loads((analyzed / "report.json").read_text())["trigger_times_ms"])
    assert described["cinestrain report"] == 1
    assert described["cinestrain myocardium (ED)"] == 1
    assert described["cinestrain bull's-eye"] == 1
    assert described["cinestrain strain overlay"] >= 1
    assert described["cinestrain radial Lagrangian strain (%)"] == phases
    assert described["cinestrain circumferential Lagrangian strain (%)"] == phases
    assert sum(1 for d in described if d.startswith("cinestrain Lagrangian displacement")
               ) == 3


@pytest.mark.requires_tool("storescu", "sending to Orthanc (Debian package dcmtk)")
@pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
def test_orthanc_accepts_the_results_of_an_enhanced_stack(orthanc: Orthanc,
                                                          tmp_path: Path) -> None:
    """One Enhanced MR object in, every kind out (SEG included), all in its study."""
    p = phantom_result("enhanced")
    results = write_dicom_results(p.cine, p.images, p.maps, p.u, p.report, tmp_path)
    sources = sorted({f.path for row in p.cine.sources for f in row})
    assert len(sources) == 1
    series = _send_and_list(orthanc, sources, results.paths)
    modalities = {s["MainDicomTags"].get("SeriesDescription", ""): s["MainDicomTags"].get(
        "Modality") for s in series}
    assert modalities["cinestrain myocardium (ED)"] == "SEG"
    assert modalities["cinestrain report"] == "SR"
    assert len(series) == 1 + len({str(dcmread(f, stop_before_pixels=True).SeriesInstanceUID)
                                   for f in results.paths})
