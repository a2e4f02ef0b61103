"""Stacks refused before any number is computed (``pipeline.guards``): a single slice,
axial/coronal/sagittal planes, planes far from the LV long axis the images show; and
``cinestrain analyze`` on real DICOM written by the phantom's scanner: refused with the
reason (exit 1, a report of nulls, no DICOM), while a short-axis stack still runs, even
when its orientation alone does not say short axis."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cinestrain.cli.main import main
from cinestrain.dicom_io.geometry import classify_orientation
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.pipeline.guards import (
    MAX_AXIS_TILT_DEG,
    axis_refusal,
    header_refusal,
    lv_axis_tilt_deg,
)
from tests.conftest import SAX_ORIENTATION
from tests.helpers.planes import OBLIQUE_NORMAL, phantom_cine, rotated, single_slice, tilted

AXIAL = np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0])
WEIGHTS = shipped_weights_path("gru")


def oblique_orientation() -> np.ndarray:
    """An ImageOrientationPatient whose normal is :data:`OBLIQUE_NORMAL`."""
    row = np.array([1.0, -1.0, 0.0]) / np.sqrt(2.0)
    col = np.cross(OBLIQUE_NORMAL, row)
    return np.concatenate([row, col])


# --------------------------------------------------------------------------- the rules
def test_the_header_rules():
    sax, oblique = classify_orientation(SAX_ORIENTATION), classify_orientation(
        oblique_orientation())
    assert oblique.short_axis is None and sax.short_axis is True
    assert header_refusal(2, sax) is None and header_refusal(2, oblique) is None
    assert header_refusal(1, sax).startswith("a single slice (short axis")
    assert header_refusal(1, oblique).startswith("a single slice (oblique, short axis unknown)")
    for n in (1, 5):
        assert header_refusal(n, classify_orientation(AXIAL)) == (
            "not a short-axis stack: its planes are axial, not a short-axis view")


def test_the_lv_axis_is_measured_in_patient_coordinates():
    """Three slices 10 mm apart; their images start at different in-plane places, so
    equal pixel centres are not an axis along the normal."""
    orientation = np.asarray(SAX_ORIENTATION, float)
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    spacing = np.array([[1.5, 2.0]] * 3)
    along = np.array([0.0, 10.0, 20.0])
    # LV centres on a line 40 degrees from the normal, leaning along the row direction
    lv = (along[:, None] * normal + (30.0 + np.tan(np.radians(40)) * along)[:, None] * row
          + 40.0 * col)
    origins = along[:, None] * normal + np.array([0.0, 7.0, -3.0])[:, None] * col
    # the pixel (row, column) at which each slice shows its LV centre
    pixels = np.stack([((lv - origins) @ col) / 1.5, ((lv - origins) @ row) / 2.0], axis=1)
    angle, slices = lv_axis_tilt_deg(pixels, origins, np.tile(orientation, (3, 1)), spacing)
    assert slices == 3 and angle == pytest.approx(40.0, abs=1e-3)

    straight = np.tile([[20.0, 30.0]], (3, 1))  # same pixel, same in-plane origin: 0 deg
    angle, _ = lv_axis_tilt_deg(straight, along[:, None] * normal,
                                np.tile(orientation, (3, 1)), spacing)
    assert angle == pytest.approx(0.0, abs=1e-9)
    one_lv = straight.copy()
    one_lv[1:] = np.nan  # an LV on one slice only: no axis
    assert lv_axis_tilt_deg(one_lv, along[:, None] * normal,
                            np.tile(orientation, (3, 1)), spacing) is None


def test_the_axis_rule():
    sax, oblique = classify_orientation(SAX_ORIENTATION), classify_orientation(
        oblique_orientation())
    assert axis_refusal((MAX_AXIS_TILT_DEG, 4), oblique) is None
    reason = axis_refusal((MAX_AXIS_TILT_DEG + 1, 4), sax)
    assert reason.startswith("not a short-axis view: the planes are 31 degrees")
    assert "LV centres of 4 slices" in reason
    assert axis_refusal(None, sax) is None  # no axis in the images: the orientation decides
    assert "do not show its long axis" in axis_refusal(None, oblique)


# ------------------------------------------------------------------ analyze, real DICOM
def analyze(inputs: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["analyze", str(inputs), "--out", str(out), "--device", "cpu"])
    return code, capsys.readouterr().err


def assert_refused(out: Path, err: str, reason: str) -> None:
    """Exit 1 with the reason, a report of nulls that says it, no DICOM."""
    assert f"nothing analysable: {reason}" in err
    report = json.loads((out / "report.json").read_text())
    assert any(reason in w for w in report["warnings"]), report["warnings"]
    assert report["global"]["peak_circumferential_strain_pct"] is None
    assert report["global"]["peak_radial_strain_pct"] is None
    assert report["function"] is None
    assert all(s["peak_circumferential_strain_pct"] is None for s in report["segments"].values())
    assert list(out.glob("*.dcm")) == [] and not (out / "bullseye_circumferential.png").exists()


def test_a_single_oblique_slice_is_refused(tmp_path, capsys):
    """The issue's case: one slice of a real cine in an oblique plane ("short axis
    unknown" in ``inspect``) got EF 47 % and 54 result objects."""
    study = single_slice(rotated(phantom_cine()))
    assert classify_orientation(study.orientation).describe() == "oblique, short axis unknown"
    write_cine_classic(study, tmp_path / "in")
    code, err = analyze(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 1
    assert_refused(tmp_path / "out", err, "a single slice (oblique, short axis unknown)")


def test_a_single_random_slice_in_any_plane_is_refused(tmp_path, make_study, capsys):
    write_cine_classic(make_study(n_slices=1, n_phases=8, orientation=oblique_orientation()),
                       tmp_path / "in")
    code, err = analyze(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 1
    assert_refused(tmp_path / "out", err, "a single slice")


def test_planes_far_from_the_lv_axis_the_images_show_are_refused(tmp_path, capsys):
    """Each slice moved in its plane: the headers still say short axis, the LV centres
    cross the planes at about 60 degrees from their normal."""
    study = tilted(phantom_cine(), 60.0)
    assert classify_orientation(study.orientation).short_axis is True
    write_cine_classic(study, tmp_path / "in")
    code, err = analyze(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 1
    assert_refused(tmp_path / "out", err, "not a short-axis view: the planes are")


@pytest.mark.requires_file(WEIGHTS, "the shipped motion model (in the repository)")
def test_a_short_axis_stack_in_an_unusual_orientation_still_runs(tmp_path, capsys):
    """The whole patient turned: the orientation alone no longer says short axis, but the
    images show the LV axis across the planes, so the stack is analysed."""
    study = rotated(phantom_cine())
    assert classify_orientation(study.orientation).short_axis is None
    write_cine_classic(study, tmp_path / "in")
    code, err = analyze(tmp_path / "in", tmp_path / "out", capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["global"]["peak_circumferential_strain_pct"] < 0
    assert report["function"]["ef_pct"] > 0
    assert len(list((tmp_path / "out").glob("*.dcm"))) > 10
