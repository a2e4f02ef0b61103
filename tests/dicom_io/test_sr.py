"""The TID 1500 Measurement Report: parsed back with highdicom, every value equal to
report.json; ``dsrdump`` shows them; null values leave no measurement."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread

from cinestrain.dicom_io import codes
from cinestrain.dicom_io.write.results import read_source_headers
from cinestrain.dicom_io.write.sr import (
    FUNCTION_MEASUREMENTS,
    FUNCTION_TRACKING_ID,
    GLOBAL_TRACKING_ID,
    STRAIN_MEASUREMENTS,
    build_measurement_report,
)
from cinestrain.dicom_io.write.uids import ResultUIDs
from tests.conftest import optional_tool
from tests.helpers.results import dciodvfy, phantom_result


def _sources():
    p = phantom_result()
    return list({ds.SOPInstanceUID: ds for row in read_source_headers(p.cine)
                 for ds in row}.values())


def _write(report: dict, path: Path) -> Path:
    uids = ResultUIDs(phantom_result().cine.series_instance_uids, "test model 1")
    build_measurement_report(report, _sources(), uids=uids, series_number=10).save_as(path)
    return path


@pytest.fixture(scope="module")
def sr_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(phantom_result().report, tmp_path_factory.mktemp("sr") / "sr.dcm")


def _groups(path: Path) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    sr = hd.sr.srread(path)
    report = hd.sr.MeasurementReport.from_sequence([sr])
    return {g.tracking_identifier: g for g in report.get_image_measurement_groups()}


def _value(group, concept, derivation=None) -> float | None:
    found = [m for m in group.get_measurements(name=concept)
             if derivation is None or m.derivation == derivation]
    assert len(found) <= 1
    return found[0].value if found else None


def _check_curves(group, curves: dict) -> None:
    for key, (concept, unit, derivation) in STRAIN_MEASUREMENTS.items():
        value = _value(group, concept, derivation)
        assert value == curves[key], key
        if value is not None:
            m = group.get_measurements(name=concept)[0]
            assert m.unit == unit


def test_every_value_of_report_json_is_in_the_sr(sr_file: Path) -> None:
    report = phantom_result().report
    groups = _groups(sr_file)
    _check_curves(groups[GLOBAL_TRACKING_ID], report["global"])
    assert groups[GLOBAL_TRACKING_ID].finding_sites[0].value == codes.LV_MYOCARDIUM
    for k in range(1, 17):
        curves = report["segments"][str(k)]
        key = f"AHA segment {k} {curves['name']}"
        if curves["peak_circumferential_strain_pct"] is None:
            assert key not in groups
            continue
        _check_curves(groups[key], curves)
        assert groups[key].finding_sites[0].value == codes.AHA_SEGMENTS[k]
    function = groups[FUNCTION_TRACKING_ID]
    for key, (concept, unit, _) in FUNCTION_MEASUREMENTS.items():
        assert _value(function, concept) == report["function"][key], key
        assert function.get_measurements(name=concept)[0].unit == unit
    ds = dcmread(sr_file)
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.ConceptNameCodeSequence[0].CodeValue == "126000"
    algorithm = groups[GLOBAL_TRACKING_ID][0].ContentSequence
    texts = [str(item.TextValue) for item in algorithm if "TextValue" in item]
    assert report["model"]["name"] in texts and report["model"]["version"] in texts
    assert f"strain convention: {report['strain_convention']}" in texts
    library = [i for i in ds.ContentSequence
               if i.ConceptNameCodeSequence[0].CodeValue == "111028"]  # Image Library
    assert len(library) == 1
    evidence = {str(i.ReferencedSOPInstanceUID)
                for study in ds.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence
                for i in series.ReferencedSOPSequence}
    assert evidence == {f.sop_instance_uid for row in phantom_result().cine.sources
                        for f in row}


def test_null_values_leave_no_measurement(tmp_path: Path) -> None:
    report = copy.deepcopy(phantom_result().report)
    for key in STRAIN_MEASUREMENTS:
        report["segments"]["16"][key] = None
    report["segments"]["15"]["time_to_peak_radial_ms"] = None
    report["function"] = None
    groups = _groups(_write(report, tmp_path / "sr.dcm"))
    assert not any(name.startswith("AHA segment 16") for name in groups)
    assert FUNCTION_TRACKING_ID not in groups
    seg15 = groups[f"AHA segment 15 {report['segments']['15']['name']}"]
    assert _value(seg15, codes.TIME_TO_PEAK_RADIAL) is None
    assert _value(seg15, codes.RADIAL_STRAIN) == report["segments"]["15"][
        "peak_radial_strain_pct"]


def test_bad_report_is_refused() -> None:
    uids = ResultUIDs(["1.2.3"], "m")
    with pytest.raises(ValueError, match="lacks"):
        build_measurement_report({"model": {}}, _sources(), uids=uids, series_number=1)
    report = copy.deepcopy(phantom_result().report)
    report["global"]["peak_radial_strain_pct"] = "high"
    with pytest.raises(TypeError, match="peak_radial_strain_pct"):
        build_measurement_report(report, _sources(), uids=uids, series_number=1)
    with pytest.raises(ValueError, match="no source images"):
        build_measurement_report(phantom_result().report, [], uids=uids, series_number=1)


def _dsrdump_groups(text: str) -> dict[str, dict[str, float]]:
    """Tracking identifier -> {concept meaning: value} of each measurement group in
    ``dsrdump +Pl`` output (a NUM item and its value in quotes, one per line)."""
    groups: dict[str, dict[str, float]] = {}
    current: dict[str, float] | None = None
    for line in text.splitlines():
        tracking = re.search(r'"Tracking Identifier"\)="(.*)">$', line)
        if tracking:
            current = groups.setdefault(tracking.group(1), {})
            continue
        num = re.search(r'<contains NUM:\(,,"(.+?)"\)="([-0-9.eE+]+)" \((.+?),UCUM', line)
        if num and current is not None:
            current[f"{num.group(1)} ({num.group(3)})"] = float(num.group(2))
    return groups


@pytest.mark.requires_tool("dsrdump", "showing the SR as a reader sees it (Debian dcmtk)")
def test_dsrdump_shows_every_value(sr_file: Path) -> None:
    """What a person reading ``dsrdump`` sees: every value of report.json, with its unit,
    in the measurement group of its region."""
    result = subprocess.run(["dsrdump", "+Pl", str(sr_file)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"Imaging Measurement Report"' in result.stdout
    assert "(264850008,SCT,\"left ventricle basal anterior segment\")" in result.stdout
    shown = _dsrdump_groups(result.stdout)
    report = phantom_result().report
    expected = {GLOBAL_TRACKING_ID: report["global"]}
    expected.update({f"AHA segment {k} {report['segments'][str(k)]['name']}":
                     report["segments"][str(k)] for k in range(1, 17)})
    count = 0
    for tracking_id, curves in expected.items():
        for key, (concept, unit, _) in STRAIN_MEASUREMENTS.items():
            if curves[key] is None:
                continue
            value = shown[tracking_id][f"{concept.meaning} ({unit.value})"]
            assert value == pytest.approx(curves[key], abs=1e-9), (tracking_id, key)
            count += 1
    for key, (concept, unit, _) in FUNCTION_MEASUREMENTS.items():
        value = shown[FUNCTION_TRACKING_ID][f"{concept.meaning} ({unit.value})"]
        assert value == pytest.approx(report["function"][key], abs=1e-9), key
        count += 1
    assert count == sum(len(group) for group in shown.values())


@pytest.mark.requires_tool("dciodvfy", "validating the SR (Debian dicom3tools)")
def test_dciodvfy_finds_no_error(sr_file: Path) -> None:
    errors, warnings = dciodvfy(sr_file)
    assert not errors
    # the only warnings: the private coding scheme is not in dciodvfy's list
    assert all("99CINESTRAIN" in w for w in warnings)


def test_groups_outline_what_was_measured_on_the_ed_images(tmp_path: Path) -> None:
    """With regions, the global, segment and function groups are volumetric ROI groups
    (TID 1411) whose SCOORDs lie on the ED images and enclose exactly the measured pixels
    (what OHIF draws); the values stay those of report.json; dciodvfy finds no error."""
    from matplotlib.path import Path as PolyPath

    from cinestrain.dicom_io.write.sr import measured_regions

    p = phantom_result()
    ed = p.analysis.strain.ed_phase
    ed_images = [p.images[s][ed] for s in range(p.cine.n_slices)]
    labels, myocardium = p.analysis.aha_labels, p.analysis.masks.myocardium
    regions = measured_regions(labels, myocardium, ed_images, lv_cavity=p.analysis.masks.lv_cavity)
    uids = ResultUIDs(p.cine.series_instance_uids, "test model 1")
    path = tmp_path / "sr.dcm"
    build_measurement_report(p.report, _sources(), uids=uids, series_number=10,
                             library_images=ed_images, regions=regions).save_as(path)
    sr = hd.sr.srread(path)
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 18  # global, 16 segments, LV function
    by_id = {g.tracking_identifier: g for g in groups}
    _check_curves(by_id[GLOBAL_TRACKING_ID], p.report["global"])
    slice_of = {str(ds.SOPInstanceUID): s for s, ds in enumerate(ed_images)}
    rows, cols = np.mgrid[: myocardium.shape[1], : myocardium.shape[2]]
    centres = np.stack([cols.ravel() + 0.5 + 1e-4, rows.ravel() + 0.5 + 2e-4], axis=1)
    for k in range(1, 17):
        group = next(g for i, g in by_id.items() if i.startswith(f"AHA segment {k} "))
        _check_curves(group, p.report["segments"][str(k)])
        covered = np.zeros_like(myocardium)
        for region in group.roi:
            source = region.ContentSequence[0].ReferencedSOPSequence[0]
            s = slice_of[source.ReferencedSOPInstanceUID]
            inside = PolyPath(region.value).contains_points(centres).reshape(covered.shape[1:])
            covered[s] |= inside
        assert np.array_equal(covered, labels == k), k
    if optional_tool("dciodvfy", "validating the SR with regions (Debian dicom3tools)"):
        errors, _ = dciodvfy(path)
        assert not errors
