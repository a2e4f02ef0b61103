"""Reading cine stacks: classic, enhanced, split series, compressed, and every bad input."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    BasicTextSRStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from cinestrain.dicom_io.geometry import classify_orientation
from cinestrain.dicom_io.read.cine import load_cine
from cinestrain.dicom_io.read.errors import (
    CineSeriesError,
    DuplicateFrameError,
    InconsistentGeometryError,
    MissingTimingError,
    MixedOrientationError,
    NoCineStackError,
    NotAnImageError,
    NotDicomError,
    TooFewPhasesError,
    UnequalPhaseCountError,
    UnreadableFileError,
)
from cinestrain.dicom_io.read.scan import scan_dicom
from cinestrain.dicom_io.read.stacks import find_stacks
from cinestrain.inference.phantom.scanner import CineStudy, write_cine_classic, write_cine_enhanced
from tests.conftest import SUNNYBROOK, require_tool

#: a real GE export (Sunnybrook SCD0000101)
SCD0000101 = SUNNYBROOK / "SCD0000101.tar.gz"


def edit_files(paths: list[Path], change: Callable[[Dataset], None]) -> None:
    """Apply ``change`` to each file's dataset and save it in place."""
    for path in paths:
        ds = dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=True)


def series_uid(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SeriesInstanceUID)


def expected(study: CineStudy) -> np.ndarray:
    """What the reader must return: rescaled float32 values."""
    values = study.pixels.astype(np.float32) * np.float32(study.rescale_slope)
    return values + np.float32(study.rescale_intercept)


def write_sr(path: Path, study: CineStudy) -> Path:
    """A minimal Basic Text SR of the same study."""
    ds = Dataset()
    ds.SOPClassUID = BasicTextSRStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study.study_instance_uid
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SR"
    ds.SeriesNumber = 99
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.ValueType = "CONTAINER"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def write_localizer(folder: Path, make_study, study: CineStudy) -> str:
    """A three-plane localizer in one series: no trigger time, three orientations."""
    planes = ([1, 0, 0, 0, 1, 0], [1, 0, 0, 0, 0, -1], [0, 1, 0, 0, 0, -1])
    uid = generate_uid()
    for i, orientation in enumerate(planes):
        scout = make_study(
            n_slices=1, n_phases=1, orientation=np.array(orientation, float),
            study_instance_uid=study.study_instance_uid, series_number=50 + i,
        )
        paths = write_cine_classic(scout, folder / f"loc{i}")

        def change(ds: Dataset) -> None:
            ds.SeriesInstanceUID = uid
            ds.SeriesNumber = 50
            del ds.TriggerTime

        edit_files(paths, change)
    return uid


class TestClassic:
    def test_random_order_meaningless_names(self, make_study, tmp_path):
        study = make_study(n_slices=4, n_phases=10, rescale_slope=2.0, rescale_intercept=-100)
        # slices given from the highest position down: the reader must reverse them
        study = make_study(
            n_slices=4, n_phases=10, rescale_slope=2.0, rescale_intercept=-100,
            pixels=study.pixels[::-1], positions=study.positions[::-1],
            trigger_times=study.trigger_times[::-1],
        )
        paths = write_cine_classic(study, tmp_path, file_names="random", seed=7)
        assert [p.name for p in paths] != sorted(p.name for p in paths)

        cine = load_cine(tmp_path)

        assert cine.shape == (4, 10, 32, 32) and cine.pixels.dtype == np.float32
        assert np.array_equal(cine.pixels, expected(study)[::-1])
        assert np.all(np.diff(cine.slice_positions) == pytest.approx(8.0, abs=1e-3))
        normal = np.cross(study.orientation[:3], study.orientation[3:])
        assert np.allclose(cine.slice_normal, normal, atol=1e-6)
        assert np.allclose(cine.image_positions, study.positions[::-1], atol=1e-3)
        assert np.allclose(cine.image_orientations, study.orientation, atol=1e-6)
        assert np.allclose(cine.pixel_spacing, 1.5) and np.allclose(cine.slice_thickness, 8.0)
        assert np.allclose(
            cine.trigger_times, np.median(study.trigger_times, axis=0), atol=1e-3
        )
        assert np.allclose(cine.slice_trigger_times, study.trigger_times[::-1], atol=1e-3)
        assert cine.rr_interval_ms == pytest.approx(study.rr_interval_ms, abs=1)
        assert cine.orientation.short_axis is True
        # provenance of every (slice, phase)
        source = cine.sources[0][3]
        ds = dcmread(source.path, stop_before_pixels=True)
        assert ds.SOPInstanceUID == source.sop_instance_uid and source.frame_number is None
        assert float(ds.TriggerTime) == pytest.approx(study.trigger_time(3, 3), abs=1e-3)
        assert cine.source_paths[0][3] == source.path
        # patient and study identity for the result objects
        ps = cine.patient_study
        assert (ps.patient_id, ps.patient_name, ps.study_id) == ("CS-PHANTOM", "PHANTOM^CINE", "1")
        assert ps.study_instance_uid == study.study_instance_uid == cine.study_instance_uid
        assert cine.series_instance_uids == (series_uid(paths[0]),)
        assert cine.frame_of_reference_uid == study.frame_of_reference_uid

    def test_slices_with_differing_trigger_times_match_by_rank(self, make_study, tmp_path):
        study = make_study(n_slices=3, n_phases=8)
        trigger = np.arange(8) * 40.0 + np.array([[0.0], [7.5], [-3.0]])
        study = make_study(n_slices=3, n_phases=8, trigger_times=trigger)
        write_cine_classic(study, tmp_path)
        cine = load_cine(tmp_path)
        assert np.array_equal(cine.pixels, expected(study))
        assert np.allclose(cine.trigger_times, np.arange(8) * 40.0)
        assert np.allclose(cine.slice_trigger_times, trigger)


def test_enhanced_multiframe(make_study, tmp_path):
    study = make_study(n_slices=3, n_phases=9, rescale_slope=0.5, rescale_intercept=10)
    path = write_cine_enhanced(study, tmp_path / "enhanced.dcm")
    cine = load_cine(path)
    assert np.array_equal(cine.pixels, expected(study))
    assert np.allclose(cine.slice_trigger_times, study.trigger_times, atol=1e-6)
    frames = [[src.frame_number for src in row] for row in cine.sources]
    assert frames == [[s * 9 + t + 1 for t in range(9)] for s in range(3)]
    assert {src.sop_class_uid for row in cine.sources for src in row} == {
        "1.2.840.10008.5.1.4.1.1.4.1"
    }


def test_legacy_converted_enhanced(make_study, tmp_path):
    """highdicom's Legacy Converted Enhanced MR keeps TriggerTime in unassigned groups."""
    from highdicom.legacy import LegacyConvertedEnhancedMRImage

    study = make_study(n_slices=2, n_phases=8)
    classic = [dcmread(p) for p in write_cine_classic(study, tmp_path / "classic")]
    converted = LegacyConvertedEnhancedMRImage(
        classic, series_instance_uid=generate_uid(), series_number=9,
        sop_instance_uid=generate_uid(), instance_number=1,
    )
    converted.save_as(tmp_path / "converted.dcm", enforce_file_format=True)
    cine = load_cine(tmp_path / "converted.dcm")
    assert np.array_equal(cine.pixels, expected(study))
    assert np.allclose(cine.slice_trigger_times, study.trigger_times, atol=1e-3)


def test_dicomdir_is_skipped(make_study, tmp_path):
    from pydicom.fileset import FileSet

    study = make_study(n_slices=2, n_phases=8)
    fileset = FileSet()
    for path in write_cine_classic(study, tmp_path / "src"):
        fileset.add(dcmread(path))
    fileset.write(tmp_path / "media")
    scan = scan_dicom(tmp_path / "media")
    assert [(p.kind, p.path.name) for p in scan.problems] == [("NotAnImageError", "DICOMDIR")]
    assert np.array_equal(load_cine(tmp_path / "media").pixels, expected(study))


def test_stack_split_over_series_with_a_replaced_slice(make_study, tmp_path):
    study = make_study(n_slices=4, n_phases=8)
    paths = write_cine_classic(study, tmp_path / "first", per_slice_series=True)

    def own_frame_of_reference(ds: Dataset) -> None:
        ds.FrameOfReferenceUID = generate_uid()

    edit_files(paths, own_frame_of_reference)
    # slice 2 acquired again, in a later series with other content
    again = make_study(
        n_slices=1, n_phases=8, pixels=study.pixels[2:3] + 1000, positions=study.positions[2:3],
        trigger_times=study.trigger_times[2:3], study_instance_uid=study.study_instance_uid,
        frame_of_reference_uid=study.frame_of_reference_uid, series_number=20,
    )
    again_paths = write_cine_classic(again, tmp_path / "again", seed=1)

    cine = load_cine(tmp_path)

    want = expected(study)
    want[2] = expected(again)[0]
    assert np.array_equal(cine.pixels, want)
    replaced = series_uid(paths[2 * 8])
    assert replaced not in cine.series_instance_uids
    assert cine.series_instance_uids[-1] == series_uid(again_paths[0])
    assert len(cine.series_instance_uids) == 4
    assert any("replaced by later series" in note for note in cine.notes)
    assert any("FrameOfReferenceUIDs" in note for note in cine.notes)


@pytest.mark.parametrize("syntax", ["jpeg-lossless-sv1", "jpeg-lossless", "jpeg2000", "rle"])
def test_compressed_transfer_syntaxes_with_rescale(make_study, tmp_path, syntax):
    study = make_study(n_slices=2, n_phases=8, rescale_slope=1.5, rescale_intercept=-50)
    expected_uid = {
        "jpeg-lossless-sv1": "1.2.840.10008.1.2.4.70",
        "jpeg-lossless": "1.2.840.10008.1.2.4.57",
        "jpeg2000": JPEG2000Lossless,
        "rle": RLELossless,
    }[syntax]
    if syntax.startswith("jpeg-lossless"):
        dcmcjpeg = require_tool("dcmcjpeg", "JPEG-compressing the cine (Debian package dcmtk)")
        plain = write_cine_classic(study, tmp_path / "plain")
        option = "+e1" if syntax == "jpeg-lossless-sv1" else "+el"
        (tmp_path / "in").mkdir()
        for path in plain:
            subprocess.run(
                [dcmcjpeg, option, str(path), str(tmp_path / "in" / path.name)],
                check=True, capture_output=True, timeout=60,
            )
    else:
        write_cine_classic(study, tmp_path / "in", transfer_syntax=expected_uid)
    first = next((tmp_path / "in").iterdir())
    assert dcmread(first, stop_before_pixels=True).file_meta.TransferSyntaxUID == expected_uid

    cine = load_cine(tmp_path / "in")
    assert np.array_equal(cine.pixels, expected(study))


def test_enhanced_compressed(make_study, tmp_path):
    study = make_study(n_slices=2, n_phases=8, rescale_intercept=-5)
    write_cine_enhanced(study, tmp_path / "e.dcm", transfer_syntax=RLELossless)
    assert np.array_equal(load_cine(tmp_path).pixels, expected(study))


def test_uid_with_leading_zero_component_is_accepted(make_study, tmp_path):
    import warnings

    study = make_study(n_slices=2, n_phases=8)
    paths = write_cine_classic(study, tmp_path)
    bad_uid = "1.2.826.0.1.3680043.8.498.01"

    def leading_zero(ds: Dataset) -> None:
        ds.SeriesInstanceUID = bad_uid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns when the test writes the value
        edit_files(paths, leading_zero)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing escapes as a warning
        scan = scan_dicom(tmp_path)
        cine = load_cine(tmp_path)
    assert scan.series[0].quirks == {"Invalid value for VR UI": len(paths)}
    assert cine.series_instance_uids == (bad_uid,)


class TestOrientation:
    def test_oblique_short_axis(self, make_study, tmp_path):
        study = make_study(n_slices=2, n_phases=8)
        write_cine_classic(study, tmp_path)
        cine = load_cine(tmp_path)
        assert cine.orientation.short_axis is True
        assert cine.orientation.describe() == "short axis (oblique)"

    @pytest.mark.parametrize(
        ("orientation", "label"),
        [
            ([1, 0, 0, 0, 1, 0], "axial"),
            ([1, 0, 0, 0, 0, -1], "coronal"),
            ([0, 1, 0, 0, 0, -1], "sagittal"),
        ],
    )
    def test_cardinal_planes_are_not_short_axis(self, orientation, label):
        result = classify_orientation(np.array(orientation, float))
        assert result.short_axis is False and result.label == label
        assert result.describe() == f"not short axis ({label})"

    def test_oblique_far_from_long_axis_is_unknown(self):
        # a four-chamber-like plane: contains the long axis, so its normal is far from it
        row = np.array([1.0, -1.0, -1.0]) / np.sqrt(3)
        col = np.array([1.0, 1.0, 0.0]) / np.sqrt(2)
        result = classify_orientation(np.concatenate([row, col]))
        assert result.short_axis is None and result.label == "oblique"

    def test_axial_stack_still_loads(self, make_study, tmp_path):
        study = make_study(n_slices=2, n_phases=8, orientation=np.array([1.0, 0, 0, 0, 1, 0]))
        write_cine_classic(study, tmp_path)
        cine = load_cine(tmp_path)
        assert cine.orientation.short_axis is False
        assert np.array_equal(cine.pixels, expected(study))


def test_unrelated_series_in_one_folder(make_study, tmp_path):
    study = make_study(n_slices=3, n_phases=8, series_number=5)
    cine_paths = write_cine_classic(study, tmp_path / "cine")
    localizer = write_localizer(tmp_path, make_study, study)
    write_sr(tmp_path / "report.dcm", study)

    search = find_stacks(scan_dicom(tmp_path))

    assert len(search.layouts) == 3
    errors = {lay.series.series_instance_uid: lay.error for lay in search.layouts}
    assert isinstance(errors[localizer], MixedOrientationError)
    assert sum(isinstance(e, NotAnImageError) for e in errors.values()) == 1
    assert [p.kind for p in search.scan.problems] == ["NotAnImageError"]
    assert search.select().series_instance_uids == (series_uid(cine_paths[0]),)
    assert np.array_equal(load_cine(tmp_path).pixels, expected(study))


class TestBadInput:
    """Each bad input gives its specific error, and a good cine beside it still loads."""

    @pytest.fixture
    def good(self, make_study, tmp_path) -> CineStudy:
        study = make_study(n_slices=3, n_phases=8, series_number=1)
        write_cine_classic(study, tmp_path / "good")
        return study

    def bad_series(self, make_study, tmp_path, **fields) -> list[Path]:
        bad = make_study(n_slices=2, n_phases=fields.pop("n_phases", 9), series_number=2, **fields)
        return write_cine_classic(bad, tmp_path / "bad")

    def check(
        self, tmp_path, good: CineStudy, uid: str, error: type[CineSeriesError], match: str
    ) -> None:
        cine = load_cine(tmp_path)  # the good stack still loads
        assert np.array_equal(cine.pixels, expected(good))
        with pytest.raises(error, match=match) as info:
            load_cine(tmp_path, series_instance_uid=uid)
        assert uid in str(info.value) and info.value.series_instance_uid == uid
        with pytest.raises(error, match=match):
            load_cine(tmp_path / "bad")

    def test_no_trigger_time(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)

        def drop(ds: Dataset) -> None:
            del ds.TriggerTime

        edit_files(paths, drop)
        self.check(tmp_path, good, series_uid(paths[0]), MissingTimingError, "no TriggerTime")

    def test_trigger_times_all_equal(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path, trigger_times=np.zeros(9))
        self.check(tmp_path, good, series_uid(paths[0]), MissingTimingError, "no usable timing")

    def test_inconsistent_matrix(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)
        small = make_study(n_slices=1, n_phases=1, rows=16, columns=16)
        small_ds = dcmread(write_cine_classic(small, tmp_path / "small")[0])
        shutil.rmtree(tmp_path / "small")

        def shrink(ds: Dataset) -> None:
            ds.Rows = ds.Columns = 16
            ds.PixelData = small_ds.PixelData

        edit_files(paths[:1], shrink)
        self.check(tmp_path, good, series_uid(paths[0]), InconsistentGeometryError, "matrix")

    def test_inconsistent_spacing(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)

        def respace(ds: Dataset) -> None:
            ds.PixelSpacing = [1.2, 1.2]

        edit_files(paths[3:4], respace)
        self.check(
            tmp_path, good, series_uid(paths[0]), InconsistentGeometryError, "pixel spacing"
        )

    def test_too_few_phases(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path, n_phases=6)
        self.check(tmp_path, good, series_uid(paths[0]), TooFewPhasesError, "6 phase")

    def test_unequal_phase_counts_in_one_series(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)
        paths[12].unlink()  # slice 1 loses a phase
        self.check(
            tmp_path, good, series_uid(paths[0]), UnequalPhaseCountError, "numbers of phases"
        )

    def test_unequal_phase_counts_across_series(self, make_study, tmp_path):
        study = make_study(n_slices=4, n_phases=9)
        paths = write_cine_classic(study, tmp_path, per_slice_series=True)
        paths[2 * 9 + 4].unlink()  # the series of slice 2 misses a phase
        with pytest.raises(UnequalPhaseCountError, match="have 8 phases") as info:
            load_cine(tmp_path)
        assert info.value.series_instance_uid == series_uid(paths[2 * 9])

    def test_mixed_orientations(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)

        def tilt(ds: Dataset) -> None:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]

        edit_files(paths[9:], tilt)  # slice 1 in another plane
        self.check(tmp_path, good, series_uid(paths[0]), MixedOrientationError, "orientations")

    def test_duplicate_frames(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)
        copy = tmp_path / "bad" / "copy.dcm"
        shutil.copy(paths[4], copy)

        def new_uid(ds: Dataset) -> None:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()

        edit_files([copy], new_uid)
        self.check(tmp_path, good, series_uid(paths[0]), DuplicateFrameError, "share trigger")

    def test_identical_copies_are_harmless(self, make_study, tmp_path, good):
        paths = self.bad_series(make_study, tmp_path)
        shutil.copy(paths[4], tmp_path / "bad" / "copy.dcm")
        cine = load_cine(tmp_path / "bad")
        assert cine.shape == (2, 9, 32, 32)

    def test_non_image_objects(self, make_study, tmp_path, good):
        sr = write_sr(tmp_path / "sr.dcm", good)
        uid = series_uid(sr)
        scan = scan_dicom(tmp_path)
        assert [(p.kind, p.series_instance_uid) for p in scan.problems] == [
            ("NotAnImageError", uid)
        ]
        assert np.array_equal(load_cine(tmp_path).pixels, expected(good))
        with pytest.raises(NotAnImageError, match="Basic Text SR"):
            load_cine(tmp_path, series_instance_uid=uid)
        with pytest.raises(NoCineStackError, match="no MR image series"):
            load_cine(sr)

    def test_truncated_and_corrupt_files(self, make_study, tmp_path, good):
        other = make_study(n_slices=1, n_phases=8)
        classic = write_cine_classic(other, tmp_path / "x")[0]
        rle = write_cine_classic(other, tmp_path / "x", transfer_syntax=RLELossless, seed=5)[1]
        enhanced = write_cine_enhanced(other, tmp_path / "x" / "enhanced.dcm")
        data = classic.read_bytes()
        (tmp_path / "x" / "pixels_cut").write_bytes(data[:-100])
        (tmp_path / "x" / "header_cut").write_bytes(data[:400])
        (tmp_path / "x" / "garbage").write_bytes(data[:132] + bytes(range(256)) * 8)
        (tmp_path / "x" / "rle_cut").write_bytes(rle.read_bytes()[:-300])
        (tmp_path / "x" / "enhanced_cut").write_bytes(enhanced.read_bytes()[:-2000])
        (tmp_path / "x" / "notes.txt").write_text("not DICOM")
        for path in (tmp_path / "x").iterdir():
            if path.name.startswith(("1.", "2.")) or path.name == "enhanced.dcm":
                path.unlink()

        scan = scan_dicom(tmp_path)

        kinds = {p.path.name: p.kind for p in scan.problems}
        assert kinds == {
            "pixels_cut": "UnreadableFileError",
            "header_cut": "UnreadableFileError",
            "garbage": "UnreadableFileError",
            "rle_cut": "UnreadableFileError",
            "enhanced_cut": "UnreadableFileError",
            "notes.txt": "NotDicomError",
        }
        messages = {p.path.name: p.message for p in scan.problems}
        assert "truncated" in messages["pixels_cut"] and "truncated" in messages["rle_cut"]
        assert issubclass(NotDicomError, UnreadableFileError)
        assert np.array_equal(load_cine(tmp_path).pixels, expected(good))

    def test_empty_folder(self, tmp_path):
        with pytest.raises(NoCineStackError):
            load_cine(tmp_path)

    def test_missing_path(self, tmp_path):
        with pytest.raises(FileNotFoundError):
            load_cine(tmp_path / "nowhere")


@pytest.mark.requires_file(SCD0000101, "a real GE cine (the shared Sunnybrook data)")
def test_sunnybrook_real_cine(tmp_path):
    """Real GE export: 240 images, each with its own FrameOfReferenceUID, leading-zero UIDs."""
    with tarfile.open(SCD0000101) as archive:
        archive.extractall(tmp_path, filter="data")
    search = find_stacks(scan_dicom(tmp_path))
    stack = search.select()
    assert (stack.n_slices, stack.n_phases, stack.rows, stack.columns) == (12, 20, 256, 256)
    assert stack.pixel_spacing == pytest.approx((1.367188, 1.367188))
    assert stack.slice_spacing == pytest.approx(10.0, abs=0.01)
    assert len(stack.frame_of_reference_uids) == 240
    assert stack.orientation.short_axis is True
    assert all(p.kind == "NotDicomError" for p in search.scan.problems)  # the contour files

    cine = load_cine(tmp_path / "dicoms")
    assert cine.shape == (12, 20, 256, 256)
    assert np.all(np.diff(cine.trigger_times) > 0)
    assert cine.rr_interval_ms == 750
    # file N.dcm is slice (N-1)//20, phase (N-1)%20 in acquisition order; ascending along
    # the normal runs the other way here
    assert cine.sources[-1][0].path.name == "1.dcm"
    assert cine.sources[0][19].path.name == "240.dcm"
    ds = dcmread(cine.sources[-1][0].path)
    assert np.array_equal(cine.pixels[-1, 0], ds.pixel_array.astype(np.float32))
