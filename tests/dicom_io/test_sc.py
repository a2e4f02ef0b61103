"""Secondary captures: the multi-frame strain overlay per slice and the bull's-eye."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from scipy import ndimage

from cinestrain.dicom_io.write.sc import (
    OverlayRenderer,
    _linear_taps,
    _resample,
    build_bullseye_capture,
    build_strain_overlay,
    carry_to_phase,
)
from cinestrain.dicom_io.write.uids import ResultUIDs
from tests.conftest import optional_tool
from tests.helpers.results import dciodvfy, phantom_result


@pytest.fixture(scope="module")
def uids() -> ResultUIDs:
    return ResultUIDs(phantom_result().cine.series_instance_uids, "test model 1")


def test_carry_to_phase_follows_a_known_shift() -> None:
    values = np.zeros((40, 40))
    mask = np.zeros((40, 40), bool)
    mask[10:20, 10:20] = True
    values[mask] = 7.0
    u = np.zeros((2, 40, 40))
    u[0], u[1] = 3.0, -4.0  # mm; 2 mm pixels: 1.5 rows down, 2 columns left
    moved, inside = carry_to_phase(values, mask, u, (2.0, 2.0))
    rows, cols = np.nonzero(inside)
    assert rows.mean() == pytest.approx(14.5 + 1.5, abs=0.3)
    assert cols.mean() == pytest.approx(14.5 - 2.0, abs=0.3)
    assert moved[16, 12] == pytest.approx(7.0)  # well inside the moved square


def test_separable_resampling_equals_map_coordinates() -> None:
    image = np.random.default_rng(3).random((30, 40)).astype(np.float32)
    r = (np.arange(57) + 0.5) * 30 / 57 - 0.5  # box pixel centres, as the renderer has them
    c = (np.arange(61) + 0.5) * 40 / 61 - 0.5
    expected = ndimage.map_coordinates(image, np.stack(np.meshgrid(r, c, indexing="ij")),
                                       order=1, mode="nearest")
    got = _resample(image, _linear_taps(r, 30), _linear_taps(c, 40))
    assert np.allclose(got, expected, atol=1e-6)


def test_title_fields_are_drawn_once_and_at_their_stops() -> None:
    renderer = OverlayRenderer((32, 32), (1.5, 1.5), ("slice 3/3", "phase 8/8", "888 ms"))
    assert renderer.stops[0] < renderer.stops[1] < renderer.stops[2]
    a = renderer.title_strip(("slice 1/3", "phase 2/8", "70 ms"))
    b = renderer.title_strip(("slice 1/3", "phase 3/8", "105 ms"))
    assert len(renderer._fields) == 5  # the shared "slice 1/3" drawn once
    width = a.shape[1]
    first = slice(0, int(renderer.stops[1] * width) - 2)
    assert np.array_equal(a[:, first], b[:, first]) and a[:, first].max() > 200  # white text
    assert not np.array_equal(a, b)


def test_strain_overlay_is_a_cine_loop_of_the_slice(uids: ResultUIDs, tmp_path: Path) -> None:
    p = phantom_result()
    s = 1
    ds = build_strain_overlay(p.cine, s, p.analysis.strain.circumferential_pct,
                              p.analysis.masks.myocardium, p.u, uids=uids, series_number=20)
    path = tmp_path / "overlay.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = dcmread(path)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4"
    assert int(back.NumberOfFrames) == p.cine.n_phases
    assert back.StudyInstanceUID == p.cine.study_instance_uid
    assert back.InstanceNumber == s + 1 and back.BurnedInAnnotation == "YES"
    pixels = back.pixel_array
    assert pixels.shape[0] == p.cine.n_phases and pixels.shape[-1] == 3
    colourful = np.ptp(pixels.astype(int), axis=-1) > 60  # strain colours, not grey
    assert colourful.sum(axis=(1, 2)).min() > 500
    refs = [i.ReferencedSOPInstanceUID for i in back.SourceImageSequence]
    assert refs == [f.sop_instance_uid for f in p.cine.sources[s]]
    if optional_tool("dciodvfy", "validating the capture (Debian dicom3tools)"):
        errors, _ = dciodvfy(path)
        assert not errors


def test_bullseye_capture(uids: ResultUIDs, tmp_path: Path) -> None:
    p = phantom_result()
    ed = p.report["ed_phase"]
    sc = build_bullseye_capture(p.report, p.cine, ed, uids=uids, series_number=21)
    path = tmp_path / "bullseye.dcm"
    sc.save_as(path)
    back = dcmread(path)
    assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert back.PhotometricInterpretation == "RGB" and back.pixel_array.ndim == 3
    assert back.SeriesDescription == "cinestrain bull's-eye"
    assert [i.ReferencedSOPInstanceUID for i in back.SourceImageSequence] == [
        row[ed].sop_instance_uid for row in p.cine.sources]
    if optional_tool("dciodvfy", "validating the capture (Debian dicom3tools)"):
        errors, _ = dciodvfy(path)
        assert not errors
    with pytest.raises(ValueError, match="segments"):
        build_bullseye_capture({"global": {}}, p.cine, ed, uids=uids, series_number=21)
    with pytest.raises(ValueError, match="phase"):
        build_bullseye_capture(p.report, p.cine, 99, uids=uids, series_number=21)
    with pytest.raises(ValueError, match="slice_index"):
        build_strain_overlay(p.cine, 9, p.analysis.strain.circumferential_pct,
                             p.analysis.masks.myocardium, p.u, uids=uids, series_number=20)


@pytest.mark.parametrize("shape", [(64, 63), (83, 70), (84, 70)])
def test_carrying_a_map_whose_myocardium_touches_the_image_edge(shape) -> None:
    """A myocardium at the bottom-right edge of an odd-sized image (tight fields of view):
    the search box is clipped to the image, the map is carried without error."""
    h, w = shape
    mask = np.zeros(shape, bool)
    mask[h - 6:, w - 6:] = True
    values = np.where(mask, -12.0, 0.0)
    u = np.zeros((2, h, w))
    u[0], u[1] = 1.5, -2.0  # mm
    moved, inside = carry_to_phase(values, mask, u, (1.0, 1.0))
    assert moved.shape == shape and inside.shape == shape
    assert inside.any()
    assert np.all((moved[inside] >= -12.0 - 1e-9) & (moved[inside] < 0))  # blended at the rim
    assert np.isclose(moved[inside].min(), -12.0)


def test_bullseye_capture_declares_the_character_set_of_a_non_ascii_name(
        uids: ResultUIDs, tmp_path: Path) -> None:
    p = phantom_result()
    study = dataclasses.replace(p.cine.patient_study, patient_name="MÜLLER^JÖRG")
    cine = dataclasses.replace(p.cine, patient_study=study)
    sc = build_bullseye_capture(p.report, cine, p.report["ed_phase"], uids=uids,
                                series_number=21)
    path = tmp_path / "bullseye.dcm"
    sc.save_as(path)
    back = dcmread(path)
    assert back.SpecificCharacterSet == "ISO_IR 192"
    assert str(back.PatientName) == "MÜLLER^JÖRG"
    if optional_tool("dciodvfy", "validating the capture (Debian dicom3tools)"):
        errors, _ = dciodvfy(path)
        assert not errors
