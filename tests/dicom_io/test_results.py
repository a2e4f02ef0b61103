"""All DICOM results of one phantom analysis: written next to report.json, valid for
``dciodvfy``, in the source study, with deterministic UIDs; for classic input (one series
per slice) and for Enhanced MR input (one multi-frame object), whose frames the SEG, SR
and captures reference by frame number.

The phantom analysis (:func:`tests.helpers.results.phantom_result`, shared with
``test_pm``, ``test_sr``, ``test_sc`` and others): a small phantom written as real MR DICOM,
read back with :func:`dicom_io.load_cine`, and analysed with the phantom's truth
displacement, so no model weights are needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from cinestrain.dicom_io.read.seg import read_myocardium_segmentation
from cinestrain.dicom_io.write.results import DicomResults, write_dicom_results
from cinestrain.speed import PLAIN
from tests.helpers.equivalence import differences
from tests.helpers.results import MODEL, PhantomResult, dciodvfy, phantom_result, stable_json

#: dciodvfy warnings that the results are known to give, each for a documented reason
#: (README, "DICOM results"): the Parametric Map's Derived Pixel Contrast QUANTITY (a
#: defined term that highdicom and dcmqi use and dicom3tools does not list), and the
#: private coding scheme of the two time-to-peak concepts PS3.16 lacks
ACCEPTED_WARNINGS = (
    re.compile(r"^Warning - </(ImageType\(0008,0008\)|SharedFunctionalGroupsSequence"
               r"\(5200,9229\)\[1\]/ParametricMapFrameTypeSequence\(0040,9092\)\[1\]/"
               r"FrameType\(0008,9007\))\[4\]> - Unrecognized defined term = <QUANTITY>$"),
    re.compile(r"^Warning - </.*CodingSchemeDesignator\(0008,0102\)\[1\]> - "
               r"Unrecognized defined term = <99CINESTRAIN>$"),
)


@pytest.fixture(scope="module", params=["classic", "enhanced"])
def written(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[PhantomResult, DicomResults]:
    p = phantom_result(request.param)
    out = tmp_path_factory.mktemp(f"results-{request.param}")
    results = write_dicom_results(p.cine, p.images, p.maps, p.u, p.report, out)
    return p, results


def test_every_kind_is_written_in_the_source_study(written) -> None:
    p, results = written
    s, t = p.cine.n_slices, p.cine.n_phases
    kinds = {}
    for path in results.paths:
        ds = dcmread(path, stop_before_pixels=True)
        assert ds.StudyInstanceUID == p.cine.study_instance_uid
        assert ds.PatientID == p.cine.patient_study.patient_id
        assert ds.Manufacturer == "cinestrain" and ds.SoftwareVersions
        assert ds.SeriesInstanceUID not in p.cine.series_instance_uids
        assert ds.SeriesDescription.startswith("cinestrain")
        kinds.setdefault(str(ds.SOPClassUID), set()).add(str(ds.SeriesInstanceUID))
    assert len(results.paths) == 5 * t + 1 + 1 + s + 1
    assert len(kinds["1.2.840.10008.5.1.4.1.1.30"]) == 5      # one series per quantity
    assert len(kinds["1.2.840.10008.5.1.4.1.1.88.33"]) == 1   # SR
    assert len(kinds["1.2.840.10008.5.1.4.1.1.66.4"]) == 1    # SEG
    assert len(kinds["1.2.840.10008.5.1.4.1.1.7.4"]) == 1     # strain overlays
    assert len(kinds["1.2.840.10008.5.1.4.1.1.7"]) == 1       # bull's-eye


def test_reprocessing_gives_the_same_uids(written, tmp_path: Path) -> None:
    """Also: two processes write the same objects as one."""
    p, results = written
    again = write_dicom_results(p.cine, p.images, p.maps, p.u, p.report, tmp_path,
                                processes=2)
    assert [f.name for f in again.paths] == [f.name for f in results.paths]
    for one, two in zip(results.paths, again.paths, strict=True):
        assert stable_json(one) == stable_json(two), one.name
    first = sorted(str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                   for f in results.paths)
    second = sorted(str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                    for f in again.paths)
    assert first == second and len(set(first)) == len(first)
    other = dict(p.report, model=dict(MODEL, version="9.9"))
    moved = write_dicom_results(p.cine, p.images, p.maps, p.u, other, tmp_path / "v9")
    assert not set(first) & {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                             for f in moved.paths}


def test_fast_and_plain_writings_are_the_same_objects(written, tmp_path: Path) -> None:
    """The default writing (every speed layer of :mod:`cinestrain.speed` on) against
    ``speed=PLAIN`` (highdicom builds every object, IOD lookups not memoized): the same
    files, element by element, pixel data included, and the same dciodvfy report of
    each."""
    p, results = written
    plain = write_dicom_results(p.cine, p.images, p.maps, p.u, p.report, tmp_path,
                                speed=PLAIN)
    assert [f.name for f in plain.paths] == [f.name for f in results.paths]
    for fast_file, plain_file in zip(results.paths, plain.paths, strict=True):
        assert differences(fast_file, plain_file) == [], fast_file.name
        assert dciodvfy(fast_file) == dciodvfy(plain_file), fast_file.name


@pytest.mark.requires_tool("dciodvfy", "validating the written objects (Debian dicom3tools)")
def test_dciodvfy_finds_no_error_in_any_object(written) -> None:
    """Every file written, and no warning beyond the documented ones."""
    _, results = written
    for path in results.paths:
        errors, warnings = dciodvfy(path)
        assert not errors, f"{path.name}: {errors}"
        unexpected = [w for w in warnings if not any(a.match(w) for a in ACCEPTED_WARNINGS)]
        assert not unexpected, f"{path.name}: {unexpected}"


def _ed_frames(p: PhantomResult) -> dict[tuple[str, int | None], int]:
    """(SOP instance UID, frame number) of each slice's ED source frame -> slice."""
    ed = p.analysis.strain.ed_phase
    return {(row[ed].sop_instance_uid, row[ed].frame_number): s
            for s, row in enumerate(p.cine.sources)}


def test_seg_references_the_ed_source_frames_and_reads_back(written) -> None:
    """Classic and enhanced input alike: one SEG whose frames each reference their own ED
    source frame (by frame number in the multi-frame object) and lie in its plane; read
    back onto the stack it gives the masks that were used."""
    p, results = written
    (path,) = results.by_kind["seg"]
    seg = dcmread(path)
    ed_frames = _ed_frames(p)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        (source,) = frame.DerivationImageSequence[0].SourceImageSequence
        key = (str(source.ReferencedSOPInstanceUID), source.get("ReferencedFrameNumber"))
        s = ed_frames[key]
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert np.allclose(position, p.cine.image_positions[s], atol=1e-3)
    masks = read_myocardium_segmentation(seg, p.cine)
    assert masks.phase == p.analysis.strain.ed_phase
    assert np.array_equal(masks.myocardium, p.analysis.masks.myocardium)
    assert np.array_equal(masks.lv_cavity, p.analysis.masks.lv_cavity)
    assert np.array_equal(masks.rv_cavity, p.analysis.masks.rv_cavity)


def test_sr_library_and_bullseye_reference_the_ed_frames(written) -> None:
    p, results = written
    ed_frames = _ed_frames(p)
    sr = dcmread(results.by_kind["sr"][0])
    library = next(i for i in sr.ContentSequence
                   if i.ConceptNameCodeSequence[0].CodeValue == "111028")
    entries = [entry for group in library.ContentSequence for entry in group.ContentSequence
               if entry.ValueType == "IMAGE"]
    referenced = {}
    for entry in entries:
        ref = entry.ReferencedSOPSequence[0]
        s = ed_frames[(str(ref.ReferencedSOPInstanceUID), ref.get("ReferencedFrameNumber"))]
        position = [float(item.MeasuredValueSequence[0].NumericValue)
                    for item in entry.ContentSequence
                    if item.ConceptNameCodeSequence[0].CodeMeaning.startswith(
                        "Image Position (Patient)")]
        assert np.allclose(position, p.cine.image_positions[s], atol=1e-3)
        referenced[s] = True
    assert sorted(referenced) == list(range(p.cine.n_slices))
    bullseye = dcmread(next(f for f in results.by_kind["sc"] if f.name == "sc_bullseye.dcm"))
    assert sorted(ed_frames[(str(i.ReferencedSOPInstanceUID), i.get("ReferencedFrameNumber"))]
                  for i in bullseye.SourceImageSequence) == list(range(p.cine.n_slices))
