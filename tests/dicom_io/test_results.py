"""All DICOM results of one phantom analysis: written next to report.json, valid for
``dciodvfy``, in the source study, with deterministic UIDs.

The phantom analysis (:func:`phantom_result`) is shared with ``test_pm``, ``test_sr`` and
``test_sc``: a small phantom written as real MR DICOM (one series per slice), read back
with :func:`dicom_io.load_cine`, and analysed with the phantom's truth displacement, so no
model weights are needed.
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_io import CineSeries, load_cine
from dicom_io.mr import write_cine_classic
from dicom_io.results import DicomResults, read_source_headers, write_dicom_results
from inference.analysis import LVAnalysis, analyze_motion
from inference.myocardium import masks_from_segmentation
from inference.phantom import PhantomConfig, generate_case

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


@functools.lru_cache(maxsize=1)
def phantom_result() -> PhantomResult:
    """Built once per test session (a few seconds)."""
    from node.commands.phantom import cine_study

    case = generate_case(11, CONFIG)
    folder = Path(tempfile.mkdtemp(prefix="cinestrain-results-"))
    atexit.register(shutil.rmtree, folder, True)
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


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[PhantomResult, DicomResults]:
    p = phantom_result()
    out = tmp_path_factory.mktemp("results")
    results = write_dicom_results(p.cine, p.images, p.analysis, p.u, p.report, out)
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
    p, results = written
    again = write_dicom_results(p.cine, p.images, p.analysis, p.u, p.report, tmp_path)
    first = sorted(str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                   for f in results.paths)
    second = sorted(str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                    for f in again.paths)
    assert first == second and len(set(first)) == len(first)
    other = dict(p.report, model=dict(MODEL, version="9.9"))
    moved = write_dicom_results(p.cine, p.images, p.analysis, p.u, other, tmp_path / "v9")
    assert not set(first) & {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID)
                             for f in moved.paths}


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy (dicom3tools) not installed")
def test_dciodvfy_finds_no_error(written) -> None:
    _, results = written
    seen = set()
    for path in results.paths:
        kind = dcmread(path, stop_before_pixels=True).SeriesInstanceUID
        if kind in seen:  # one instance of each series is enough
            continue
        seen.add(kind)
        errors, _ = dciodvfy(path)
        assert not errors, f"{path.name}: {errors}"
