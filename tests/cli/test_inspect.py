"""``cinestrain inspect``: what a folder holds, as a table or one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from cinestrain.cli.main import main
from cinestrain.dicom_io.read.cine import load_cine
from cinestrain.inference.phantom.scanner import CineStudy, write_cine_classic, write_cine_enhanced
from tests.conftest import require_file

#: keys whose values must not depend on how a stack was packaged
GEOMETRY_KEYS = (
    "slices", "phases", "rows", "columns", "pixel_spacing_mm", "slice_spacing_mm",
    "slice_thickness_mm", "slice_positions_mm", "trigger_time_range_ms", "trigger_times_ms",
    "orientation", "short_axis", "slice_normal", "loadable", "selected",
)


def inspect_json(capsys, folder: Path) -> tuple[int, dict]:
    status = main(["inspect", str(folder), "--json"])
    return status, json.loads(capsys.readouterr().out)


def write_sr(path: Path, study: CineStudy) -> None:
    ds = Dataset()
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def test_classic_enhanced_and_split_series_give_the_same_stack(make_study, tmp_path, capsys):
    """10 slices x 25 phases packaged three ways: same inspect structure, same pixels."""
    study = make_study(n_slices=10, n_phases=25, rescale_slope=2.0, rescale_intercept=-7)
    write_cine_classic(study, tmp_path / "classic", file_names="random", seed=11)
    write_cine_enhanced(study, tmp_path / "enhanced" / "cine.dcm")
    write_cine_classic(study, tmp_path / "split", per_slice_series=True, file_names="random")

    reports = {}
    for layout in ("classic", "enhanced", "split"):
        status, report = inspect_json(capsys, tmp_path / layout)
        assert status == 0
        assert len(report["stacks"]) == 1 and report["problems"] == []
        reports[layout] = report
    stacks = {k: {key: r["stacks"][0][key] for key in GEOMETRY_KEYS} for k, r in reports.items()}
    assert stacks["classic"] == stacks["enhanced"] == stacks["split"]
    stack = stacks["classic"]
    assert (stack["slices"], stack["phases"], stack["rows"], stack["columns"]) == (10, 25, 32, 32)
    assert stack["pixel_spacing_mm"] == [1.5, 1.5] and stack["slice_spacing_mm"] == 8.0
    assert len(reports["split"]["series"]) == 10
    assert len(reports["split"]["stacks"][0]["series_instance_uids"]) == 10

    pixels = {layout: load_cine(tmp_path / layout).pixels for layout in reports}
    assert np.array_equal(pixels["classic"], pixels["enhanced"])
    assert np.array_equal(pixels["classic"], pixels["split"])
    want = study.pixels.astype(np.float32) * np.float32(2.0) - np.float32(7)
    assert np.array_equal(pixels["classic"], want)


def test_json_lists_every_series_and_skipped_file(make_study, tmp_path, capsys):
    study = make_study(n_slices=3, n_phases=8, series_number=4)
    write_cine_classic(study, tmp_path / "cine")
    short = make_study(n_slices=2, n_phases=5, series_number=6)
    write_cine_classic(short, tmp_path / "short")
    write_sr(tmp_path / "report.dcm", study)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "cut.dcm").write_bytes((tmp_path / "report.dcm").read_bytes()[:200])

    status, report = inspect_json(capsys, tmp_path)

    assert status == 0
    assert set(report) >= {"series", "stacks", "problems"}
    by_modality = {s["modality"]: s for s in report["series"] if s["modality"] == "SR"}
    assert by_modality["SR"]["problems"][0]["kind"] == "NotAnImageError"
    mr = [s for s in report["series"] if s["modality"] == "MR"]
    assert sorted((s["series_number"], s["slices"], s["phases"]) for s in mr) == [
        (4, 3, 8), (6, None, None)
    ]
    short_entry = next(s for s in mr if s["series_number"] == 6)
    assert short_entry["problems"][0]["kind"] == "TooFewPhasesError"
    assert short_entry["trigger_time_range_ms"] is not None
    (stack,) = report["stacks"]
    assert stack["selected"] and stack["short_axis"] is True
    assert stack["orientation"] == "short axis (oblique)"
    assert stack["trigger_time_range_ms"][0] < stack["trigger_time_range_ms"][1]
    assert {(Path(p["path"]).name, p["kind"]) for p in report["problems"]} == {
        ("notes.txt", "NotDicomError"), ("cut.dcm", "UnreadableFileError")
    }


def test_table_output(make_study, tmp_path, capsys):
    write_cine_classic(make_study(n_slices=3, n_phases=8), tmp_path)
    assert main(["inspect", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SERIES" in out and "STACKS" in out
    assert "3x8x32x32" in out and "short axis (oblique)" in out


def test_no_stack_exits_1_and_says_why(make_study, tmp_path, capsys):
    write_cine_classic(make_study(n_slices=2, n_phases=5), tmp_path)
    assert main(["inspect", str(tmp_path), "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["stacks"] == []
    assert "TooFewPhases" in captured.err or "a cine needs at least 8" in captured.err


def test_missing_folder_exits_2(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_console_script(make_study, tmp_path):
    write_cine_enhanced(make_study(n_slices=2, n_phases=8), tmp_path / "e.dcm")
    script = require_file(Path(sys.executable).with_name("cinestrain"),
                          "running the installed console script (pip install -e .)")
    result = subprocess.run(
        [str(script), "inspect", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["stacks"][0]["slices"] == 2
