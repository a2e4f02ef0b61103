"""All DICOM results of one phantom analysis: written next to report.json, valid for
``dciodvfy``, in the source study, with deterministic UIDs; for classic input (one series
per slice) and for Enhanced MR input (one multi-frame object), whose frames the SEG, SR
and captures reference by frame number.

The phantom analysis (:func:`phantom_result`) is shared with ``test_pm``, ``test_sr`` and
``test_sc``: a small phantom written as real MR DICOM, read back with
:func:`dicom_io.load_cine`, and analysed with the phantom's truth displacement, so no
model weights are needed.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from cinestrain.dicom_io import CineSeries, load_cine
from cinestrain.dicom_io.read.seg import read_myocardium_segmentation
from cinestrain.dicom_io.write.results import (
    DicomResults,
    StrainMaps,
    read_source_headers,
    write_dicom_results,
)
from cinestrain.inference.heart.analysis import LVAnalysis, analyze_motion
from cinestrain.inference.heart.myocardium import masks_from_segmentation
from cinestrain.inference.phantom import PhantomConfig, generate_case
from cinestrain.inference.phantom.scanner import write_cine_classic, write_cine_enhanced
from cinestrain.pipeline.run import strain_maps

#: the model identity written into report.json by the tests (no model is run)
MODEL = {"name": "cinestrain motion model", "version": "0.0.test", "weights": "truth",
         "pairing": "anchored", "temporal": "gru"}
CONFIG = PhantomConfig(matrix=(96, 96), slices=(3, 3), phases=(8, 8), supersample=2,
                       through_plane=1)
DCIODVFY = shutil.which("dciodvfy")


@dataclass(frozen=True)
class PhantomResult:
    """A phantom stack on disk, read back, and its truth-motion analysis."""

    folder: Path
    cine: CineSeries
    images: list[list[Dataset]]
    u: np.ndarray
    analysis: LVAnalysis
    report: dict

    @property
    def maps(self) -> StrainMaps:
        """What the DICOM writer is given, as the pipeline gives it."""
        return strain_maps(self.analysis)


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


@functools.lru_cache(maxsize=2)
def phantom_result(layout: str = "classic") -> PhantomResult:
    """Built once per test session and layout (a few seconds): ``"classic"`` (one MR
    series per slice) or ``"enhanced"`` (one Enhanced MR multi-frame object)."""
    from cinestrain.cli.phantom import cine_study

    case = generate_case(11, CONFIG)
    folder = Path(tempfile.mkdtemp(prefix="cinestrain-results-"))
    atexit.register(shutil.rmtree, folder, True)
    if layout == "enhanced":
        write_cine_enhanced(cine_study(case, 0, 11), folder / "dicom" / "enhanced.dcm",
                            seed=case.seed)
    else:
        write_cine_classic(cine_study(case, 0, 11), folder / "dicom", per_slice_series=True,
                           seed=case.seed)
    cine = load_cine(folder / "dicom")
    g, t = case.params.geometry, case.truth
    order = np.argsort(g.positions @ g.normal)
    assert np.allclose(cine.image_positions, g.positions[order], atol=1e-3)
    u = t.displacement[order]
    masks = masks_from_segmentation(t.myocardium[order], cine.in_plane_spacing,
                                    lv_cavity=t.lv_cavity[order], rv_cavity=t.rv_cavity[order])
    analysis = analyze_motion(u, cine.in_plane_spacing, cine.slice_trigger_times,
                              cine.slice_positions, t.ed_phase, masks,
                              orientation=cine.image_orientations[0],
                              slice_thickness=float(np.nanmedian(cine.slice_thickness)))
    report = analysis.report(series_instance_uid=cine.series_instance_uid, model=MODEL,
                             trigger_times=cine.trigger_times,
                             slice_positions=cine.slice_positions, ed_phase_source="fixed")
    report = json.loads(json.dumps(report))  # exactly what report.json holds
    return PhantomResult(folder, cine, read_source_headers(cine), u, analysis, report)


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) lines of ``dciodvfy`` for one file."""
    result = subprocess.run([DCIODVFY, "-new", str(path)], capture_output=True, text=True,
                            timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return ([line for line in lines if line.startswith("Error")],
            [line for line in lines if line.startswith("Warning")])


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


#: what differs between two writings of the same object: creation dates and times, and
#: the Dimension Organization UID, which highdicom draws at random
UNSTABLE_TAGS = {"00080012", "00080013", "00080023", "00080033", "00181012", "00181014",
                 "0018A002", "00209164", "0040A032"}


def stable_json(ds_or_path: Dataset | Path) -> dict:
    """An object as DICOM JSON (file meta and data set) as it reads back from its file,
    without :data:`UNSTABLE_TAGS`."""
    if isinstance(ds_or_path, Path):
        back = dcmread(ds_or_path)
    else:
        buffer = io.BytesIO()
        ds_or_path.save_as(buffer, enforce_file_format=True)
        back = dcmread(io.BytesIO(buffer.getvalue()))

    def strip(node: object) -> object:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in UNSTABLE_TAGS}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return {"meta": back.file_meta.to_json_dict(), "dataset": strip(back.to_json_dict())}


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


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) not installed")
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
