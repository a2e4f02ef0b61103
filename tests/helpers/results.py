"""The phantom analysis that the DICOM result tests share, and the checks they make of a
written object (tests/dicom_io, tests/inference, tests/node).

:func:`phantom_result`: a small phantom written as real MR DICOM, read back with
:func:`dicom_io.load_cine`, and analysed with the phantom's truth displacement, so no
model weights are needed.
"""

from __future__ import annotations

import atexit
import functools
import io
import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset

from cinestrain.dicom_io import CineSeries, load_cine
from cinestrain.dicom_io.write.results import StrainMaps, read_source_headers
from cinestrain.inference.heart.analysis import LVAnalysis, analyze_motion
from cinestrain.inference.heart.myocardium import masks_from_segmentation
from cinestrain.inference.phantom import PhantomConfig, generate_case
from cinestrain.inference.phantom.scanner import write_cine_classic, write_cine_enhanced
from cinestrain.pipeline.run import strain_maps
from tests.conftest import require_tool

#: the model identity written into report.json by the tests (no model is run)
MODEL = {"name": "cinestrain motion model", "version": "0.0.test", "weights": "truth",
         "pairing": "anchored", "temporal": "gru"}
CONFIG = PhantomConfig(matrix=(96, 96), slices=(3, 3), phases=(8, 8), supersample=2,
                       through_plane=1)


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
    """(errors, warnings) lines of ``dciodvfy`` for one file (a skip where dicom3tools is
    not installed, a failure under CI)."""
    program = require_tool("dciodvfy", "validating the written objects (Debian dicom3tools)")
    result = subprocess.run([program, "-new", str(path)], capture_output=True, text=True,
                            timeout=60)
    lines = (result.stdout + result.stderr).splitlines()
    return ([line for line in lines if line.startswith("Error")],
            [line for line in lines if line.startswith("Warning")])


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
