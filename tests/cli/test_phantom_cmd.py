"""``cinestrain phantom``: real DICOM studies that the reader, ``inspect`` and ``dciodvfy``
accept, with a SEG over the ED images, truth files and previews."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.dicom_io.read.cine import load_cine
from cinestrain.inference.phantom import load_truth_arrays
from tests.conftest import optional_tool

#: what the phantom's objects are checked with
DCIODVFY_WHY = "validating the phantom's objects (Debian package dicom3tools)"
needs_dciodvfy = pytest.mark.requires_tool("dciodvfy", DCIODVFY_WHY)


def _dciodvfy_errors(path: Path) -> list[str]:
    """The error lines dciodvfy reports for one file."""
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (proc.stdout + proc.stderr).splitlines()
            if line.startswith("Error")]


def _check_case(case_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = json.loads((case_dir / "truth.json").read_text())
    arrays = load_truth_arrays(case_dir)
    shape = truth["shape"]
    s, t, h, w = shape["slices"], shape["phases"], shape["rows"], shape["columns"]
    assert arrays["displacement"].shape == (s, t, 2, h, w)
    # the reader gets S x T x H x W, slices along the normal as the truth says
    cine = load_cine(case_dir / "dicom")
    assert cine.shape == (s, t, h, w)
    truth_positions = np.array(truth["geometry"]["slice_positions_mm"])
    assert np.allclose(np.sort(truth_positions), cine.slice_positions, atol=1e-3)
    # cinestrain inspect finds the same stack
    capsys.readouterr()
    assert main(["inspect", str(case_dir / "dicom"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    stack = next(st for st in report["stacks"] if st["selected"])
    assert (stack["slices"], stack["phases"], stack["rows"], stack["columns"]) == (s, t, h, w)
    # the SEG references the ED image of every slice and holds the truth myocardium
    seg = dcmread(case_dir / "seg" / "seg.dcm")
    referenced = {item.ReferencedSOPInstanceUID
                  for series in seg.ReferencedSeriesSequence
                  for item in series.ReferencedInstanceSequence}
    assert referenced == set(truth["dicom"]["ed_sop_instance_uids"])
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "74281007"
    assert seg.SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    assert int(seg.NumberOfFrames) >= s
    ed_uids = truth["dicom"]["ed_sop_instance_uids"]
    for frame in seg.PerFrameFunctionalGroupsSequence:  # each frame -> its slice's ED image
        refs = [src.ReferencedSOPInstanceUID for der in frame.DerivationImageSequence
                for src in der.SourceImageSequence]
        assert len(refs) == 1 and refs[0] in ed_uids


@pytest.mark.slow
@needs_dciodvfy
def test_three_studies_seed_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's must-show: ``cinestrain phantom --out X --cases 3 --seed 1``."""
    out = tmp_path / "phantoms"
    assert main(["phantom", "--out", str(out), "--cases", "3", "--seed", "1"]) == 0
    cases = sorted(out.glob("case_*"))
    assert [c.name for c in cases] == ["case_000", "case_001", "case_002"]
    for case_dir in cases:
        _check_case(case_dir, capsys)
        classic = sorted((case_dir / "dicom").iterdir())
        for path in (classic[0], classic[-1], case_dir / "seg" / "seg.dcm"):
            assert _dciodvfy_errors(path) == [], path
    summary = json.loads((out / "phantom.json").read_text())
    assert len(summary["cases"]) == 3


def test_small_enhanced_per_slice_with_previews(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small"
    assert main(["phantom", "--out", str(out), "--cases", "1", "--seed", "7", "--slices", "3",
                 "--phases", "8", "--matrix", "112", "--per-slice-series", "--enhanced",
                 "--preview", "--ed-phase", "2"]) == 0
    case_dir = out / "case_000"
    _check_case(case_dir, capsys)
    truth = json.loads((case_dir / "truth.json").read_text())
    assert truth["ed_phase"] == 2
    assert len(truth["dicom"]["cine_series_instance_uids"]) == 3
    assert load_cine(case_dir / "enhanced").shape == load_cine(case_dir / "dicom").shape
    previews = sorted(p.name for p in (case_dir / "preview").glob("*.png"))
    assert previews == ["montage.png", "motion.png", "strain.png"]
    assert all((case_dir / "preview" / p).stat().st_size > 10_000 for p in previews)
    if optional_tool("dciodvfy", DCIODVFY_WHY):
        for path in (case_dir / "seg" / "seg.dcm", case_dir / "enhanced" / "cine.dcm"):
            assert _dciodvfy_errors(path) == [], path


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["phantom", "--out", str(tmp_path), "--cases", "0"]) == 2
    with pytest.raises(SystemExit):
        main(["phantom", "--out", str(tmp_path), "--slices", "9-3"])
