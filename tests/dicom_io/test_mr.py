"""The MR writer: real MR Image / Enhanced MR Image objects that dciodvfy accepts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import (
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
)

from cinestrain.inference.phantom.scanner import CineStudy, write_cine_classic, write_cine_enhanced

needs_dciodvfy = pytest.mark.requires_tool(
    "dciodvfy", "validating the MR objects (Debian package dicom3tools)"
)


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) that dciodvfy reports for one file."""
    result = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    return (
        [line for line in lines if line.startswith("Error")],
        [line for line in lines if line.startswith("Warning")],
    )


class TestCineStudy:
    def test_generates_deterministic_uids(self, make_study):
        a, b = make_study(), make_study()
        assert a.study_instance_uid == b.study_instance_uid
        assert a.frame_of_reference_uid == b.frame_of_reference_uid
        assert a.study_instance_uid != make_study(n_slices=3).study_instance_uid

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("pixels", np.zeros((2, 3, 4), np.uint16)),
            ("pixels", np.zeros((2, 8, 4, 4), np.float32)),
            ("positions", np.zeros((3, 3))),
            ("orientation", np.array([1.0, 0, 0, 1, 0, 0])),
            ("pixel_spacing", (1.0, 0.0)),
            ("slice_thickness", 0.0),
            ("trigger_times", np.arange(7.0)),
            ("rr_interval_ms", -1.0),
        ],
    )
    def test_rejects_bad_fields_naming_them(self, make_study, field, value):
        with pytest.raises(ValueError, match=field):
            make_study(n_slices=2, n_phases=8, **{field: value})


class TestWriteClassic:
    def test_every_slice_and_phase_gets_its_own_file(self, make_study, tmp_path):
        # 11+ slices and phases: (1, 10) and (11, 0) once shared a SOP Instance UID
        study = make_study(n_slices=12, n_phases=12, rows=8, columns=8)
        paths = write_cine_classic(study, tmp_path)
        assert len(set(paths)) == 144
        assert len(list(tmp_path.iterdir())) == 144
        uids = {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in paths}
        assert len(uids) == 144

    def test_one_file_per_slice_and_phase(self, make_study, tmp_path):
        study = make_study(n_slices=2, n_phases=8)
        paths = write_cine_classic(study, tmp_path)
        assert len(paths) == 16 and all(p.name.endswith(".dcm") for p in paths)
        ds = dcmread(paths[9])  # slice 1, phase 1
        assert ds.SOPClassUID == MRImageStorage and ds.Modality == "MR"
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert float(ds.TriggerTime) == pytest.approx(study.trigger_time(1, 1), abs=1e-3)
        assert np.allclose([float(v) for v in ds.ImagePositionPatient], study.positions[1])
        assert int(ds.CardiacNumberOfImages) == 8
        assert ds.StudyInstanceUID == study.study_instance_uid
        assert np.array_equal(ds.pixel_array, study.pixels[1, 1])
        assert "RescaleSlope" not in ds  # identity rescale is not written (not in the MR IOD)

    def test_per_slice_series_and_random_names(self, make_study, tmp_path):
        study = make_study(n_slices=3, n_phases=8)
        paths = write_cine_classic(study, tmp_path, per_slice_series=True, file_names="random")
        headers = [dcmread(p, stop_before_pixels=True) for p in paths]
        assert len({h.SeriesInstanceUID for h in headers}) == 3
        assert sorted({int(h.SeriesNumber) for h in headers}) == [1, 2, 3]
        assert all("." not in p.name and len(p.name) == 12 for p in paths)

    def test_same_seed_same_uids(self, make_study, tmp_path):
        study = make_study(n_slices=1, n_phases=8)
        a = write_cine_classic(study, tmp_path / "a", seed=3)
        b = write_cine_classic(study, tmp_path / "b", seed=3)
        c = write_cine_classic(study, tmp_path / "c", seed=4)
        assert [p.name for p in a] == [p.name for p in b]
        assert a[0].name != c[0].name

    @pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless])
    def test_compressed(self, make_study, tmp_path, syntax):
        study = make_study(n_slices=1, n_phases=8)
        paths = write_cine_classic(study, tmp_path, transfer_syntax=syntax)
        ds = dcmread(paths[2])
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(ds.pixel_array, study.pixels[0, 2])


class TestWriteEnhanced:
    def test_frames_and_functional_groups(self, make_study, tmp_path):
        study = make_study(n_slices=3, n_phases=8, rescale_slope=0.5, rescale_intercept=-20)
        path = write_cine_enhanced(study, tmp_path / "sub" / "cine.dcm")
        ds = dcmread(path)
        assert ds.SOPClassUID == EnhancedMRImageStorage and int(ds.NumberOfFrames) == 24
        frame = ds.PerFrameFunctionalGroupsSequence[8 + 3]  # slice 1, phase 3
        cardiac = frame.CardiacSynchronizationSequence[0]
        assert cardiac.NominalCardiacTriggerDelayTime == pytest.approx(study.trigger_time(1, 3))
        content = frame.FrameContentSequence[0]
        assert list(content.DimensionIndexValues) == [1, 2, 4]
        assert content.InStackPositionNumber == 2 and content.TemporalPositionIndex == 4
        position = frame.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose([float(v) for v in position], study.positions[1], atol=1e-3)
        shared = ds.SharedFunctionalGroupsSequence[0]
        assert float(shared.PixelValueTransformationSequence[0].RescaleSlope) == 0.5
        assert np.array_equal(ds.pixel_array[11], study.pixels[1, 3])


@needs_dciodvfy
class TestDciodvfy:
    """Every object the writer produces passes dciodvfy without errors."""

    def test_classic(self, make_study, tmp_path):
        study = make_study(n_slices=2, n_phases=8)
        paths = write_cine_classic(study, tmp_path, per_slice_series=True)
        for path in (paths[0], paths[-1]):
            errors, warnings = dciodvfy(path)
            assert errors == [], errors
            assert warnings == [], warnings

    def test_classic_signed_compressed(self, make_study, tmp_path):
        study = make_study(n_slices=1, n_phases=8)
        study = make_study(
            n_slices=1, n_phases=8, pixels=study.pixels.astype(np.int32) - 300
        )
        for syntax in (RLELossless, JPEG2000Lossless):
            path = write_cine_classic(study, tmp_path / syntax.name, transfer_syntax=syntax)[0]
            errors, _ = dciodvfy(path)
            assert errors == [], (syntax.name, errors)

    def test_classic_with_rescale_only_warns_about_rescale(self, make_study, tmp_path):
        study = make_study(n_slices=1, n_phases=8, rescale_slope=2.0, rescale_intercept=-10)
        errors, warnings = dciodvfy(write_cine_classic(study, tmp_path)[0])
        assert errors == [], errors
        # Rescale Slope/Intercept are not in the MR IOD; scanners write them anyway
        assert all("Rescale" in w or "Standard Extended" in w for w in warnings), warnings

    @pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless])
    def test_enhanced(self, make_study, tmp_path, syntax):
        study = make_study(n_slices=3, n_phases=8, rescale_slope=2.0, rescale_intercept=-10)
        path = write_cine_enhanced(study, tmp_path / "cine.dcm", transfer_syntax=syntax)
        errors, warnings = dciodvfy(path)
        assert errors == [], errors
        assert warnings == [], warnings


def test_written_study_round_trips_through_reader(make_study, tmp_path):
    """The writer's own files load back unchanged (the reader has its own, wider tests)."""
    from cinestrain.dicom_io.read.cine import load_cine

    study = make_study(n_slices=2, n_phases=8)
    write_cine_classic(study, tmp_path)
    cine = load_cine(tmp_path)
    assert np.array_equal(cine.pixels, study.pixels.astype(np.float32))
    assert isinstance(study, CineStudy)
