"""``cinestrain analyze`` end to end on a small phantom study: report.json, bull's-eye,
motion.npz, the truth SEG; a stack that is not short axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.dicom_io.read.cine import load_cine
from cinestrain.dicom_io.read.seg import SegmentationReadError, read_myocardium_segmentation
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.inference.phantom.scanner import write_cine_classic
from tests.conftest import SUNNYBROOK

WEIGHTS = shipped_weights_path("gru")
needs_weights = pytest.mark.requires_file(WEIGHTS, "the shipped motion model (in the repository)")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    assert main(["phantom", "--out", str(out), "--slices", "6", "--phases", "10",
                 "--matrix", "128", "--seed", "3", "--no-noise"]) == 0
    return out / "case_000"


def test_seg_reader_matches_the_truth(study: Path) -> None:
    cine = load_cine(study / "dicom")
    seg = read_myocardium_segmentation(study / "seg" / "seg.dcm", cine)
    truth = np.load(study / "truth.npz")
    order = np.argsort(json.loads((study / "truth.json").read_text())
                       ["geometry"]["slice_positions_mm"])
    assert seg.phase == 0 and seg.labels.keys() == {"myocardium", "lv_cavity", "rv_cavity"}
    assert np.array_equal(seg.myocardium, truth["myocardium"][order])
    assert np.array_equal(seg.rv_cavity, truth["rv_cavity"][order])


def test_seg_of_another_stack_is_refused(study: Path, tmp_path: Path, make_study) -> None:
    write_cine_classic(make_study(n_slices=3, n_phases=8, rows=128, columns=128), tmp_path)
    other = load_cine(tmp_path)
    with pytest.raises(SegmentationReadError, match="references no image"):
        read_myocardium_segmentation(study / "seg" / "seg.dcm", other)
    with pytest.raises(SegmentationReadError, match="not a DICOM Segmentation"):
        read_myocardium_segmentation(next((study / "dicom").iterdir()), other)


def test_not_short_axis_gives_a_report_without_numbers(tmp_path: Path, make_study,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    axial = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
    write_cine_classic(make_study(orientation=axial), tmp_path / "in")
    assert main(["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any("not a short-axis view" in w for w in report["warnings"])
    assert report["global"]["peak_circumferential_strain_pct"] is None
    assert report["function"] is None
    assert "not a short-axis view" in capsys.readouterr().err


@needs_weights
def test_analyze_with_the_study_seg(study: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["analyze", str(study / "dicom"), "--seg", str(study / "seg" / "seg.dcm"),
                 "--out", str(out), "--save-motion", "--device", "cpu"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["myocardium_source"] == "seg"
    assert report["model"]["recentre_rounds"] == 1  # the default, recorded with the model
    assert set(report["segments"]) == {str(k) for k in range(1, 17)}
    assert report["global"]["peak_circumferential_strain_pct"] < 0
    assert report["function"]["ef_pct"] > 0
    assert (out / "bullseye_circumferential.png").read_bytes()[:4] == b"\x89PNG"
    with np.load(out / "motion.npz") as motion:
        assert motion["myocardium"].dtype == bool and motion["myocardium"].any()
    text = capsys.readouterr().out
    assert "EF" in text and "basal anterior" in text


@needs_weights
def test_analyze_finds_the_myocardium_itself(study: Path, tmp_path: Path) -> None:
    assert main(["analyze", str(study / "dicom"), "--out", str(tmp_path), "--device",
                 "cpu"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["myocardium_source"] == "automatic"
    assert report["global"]["peak_circumferential_strain_pct"] < 0


def test_seg_is_read_by_header(study: Path) -> None:
    assert dcmread(study / "seg" / "seg.dcm", stop_before_pixels=True).Modality == "SEG"


@pytest.mark.requires_file(SUNNYBROOK / "SCD0000101.tar.gz",
                           "a real GE export (the shared Sunnybrook data)")
@needs_weights
def test_real_sunnybrook_study_end_to_end(tmp_path, capsys):
    """A real GE export with its quirks (leading-zero UIDs, anonymised dates '00000000',
    a frame of reference per image, ED late in the cycle) runs through analyze."""
    import tarfile

    with tarfile.open(SUNNYBROOK / "SCD0000101.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    [dicoms] = list(tmp_path.rglob("dicoms/SCD0000101"))
    out = tmp_path / "out"
    assert main(["analyze", str(dicoms), "--out", str(out)]) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert abs(report["ed_phase"] - 18) <= 1  # the manual ED frame is phase 18 of 20
    assert report["global"]["peak_circumferential_strain_pct"] < 0
    assert report["global"]["peak_radial_strain_pct"] > 0
    assert len(list(out.glob("*.dcm"))) > 100


@pytest.mark.slow
@needs_weights
def test_ed_phase_fixed_by_option_or_config(study: Path, tmp_path: Path) -> None:
    """``--ed-phase N`` and ``model.ed_phase`` both fix ED; report.json records it as
    ``fixed``, and the option wins over the configuration."""
    config = tmp_path / "node.toml"
    config.write_text("[model]\ned_phase = 2\n")
    runs = {"option": ["--ed-phase", "3"], "config": ["--config", str(config)],
            "both": ["--config", str(config), "--ed-phase", "4"]}
    for name, extra in runs.items():
        out = tmp_path / name
        assert main(["analyze", str(study / "dicom"), "--out", str(out), "--device", "cpu",
                     "--save-motion", *extra]) == 0
        report = json.loads((out / "report.json").read_text())
        expected = {"option": 3, "config": 2, "both": 4}[name]
        assert (report["ed_phase"], report["ed_phase_source"]) == (expected, "fixed")
        with np.load(out / "motion.npz") as motion:
            assert int(motion["ed_phase"]) == expected
            assert not motion["displacement"][:, expected].any()


@pytest.mark.slow
@needs_weights
def test_recentre_rounds_from_the_config_reach_the_motion(study: Path, tmp_path: Path) -> None:
    """``model.recentre_rounds = 0`` (a fixed crop) gives another field than the default
    following crop, and report.json says which was used."""
    config = tmp_path / "node.toml"
    config.write_text("[model]\nrecentre_rounds = 0\n")
    fields = {}
    for name, extra in {"fixed": ["--config", str(config)], "default": []}.items():
        out = tmp_path / name
        assert main(["analyze", str(study / "dicom"), "--seg", str(study / "seg" / "seg.dcm"),
                     "--out", str(out), "--device", "cpu", "--save-motion", *extra]) == 0
        report = json.loads((out / "report.json").read_text())
        assert report["model"]["recentre_rounds"] == {"fixed": 0, "default": 1}[name]
        with np.load(out / "motion.npz") as motion:
            fields[name] = motion["displacement"]
    moved = np.abs(fields["default"] - fields["fixed"]).max()
    assert 0.01 < moved < 5.0  # mm: a correction, not another answer


def test_a_variant_without_shipped_weights_is_refused_up_front(tmp_path: Path, capsys) -> None:
    if shipped_weights_path("transformer").is_file():
        pytest.skip("transformer weights are shipped now: no variant lacks them")
    (tmp_path / "in").mkdir()
    code = main(["analyze", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                 "--temporal", "transformer"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no weights are shipped for the 'transformer' model" in err
    assert "cinestrain train --temporal transformer" in err and "--weights" in err
    assert not (tmp_path / "out").exists()
