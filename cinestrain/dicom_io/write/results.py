"""Every DICOM result of one analysis, written next to ``report.json``.

:func:`write_dicom_results` writes, each kind as its own new series in the source study
with UIDs from :class:`~dicom_io.write.uids.ResultUIDs` (same stack + same model = same UIDs):

=========================  ================================  =========================
series (SeriesNumber)      object                            files
=========================  ================================  =========================
901-905                    Parametric Maps: radial and       ``pm_<quantity>_t<NN>.dcm``
                           circumferential strain (%),       (one per phase)
                           displacement X, Y, Z (mm)
910                        TID 1500 Measurement Report       ``sr_report.dcm``
911                        SEG of the ED myocardium          ``seg_myocardium.dcm``
                           (and cavities)
920                        strain overlay SC, per slice      ``sc_overlay_s<NN>.dcm``
921                        bull's-eye SC                     ``sc_bullseye.dcm``
=========================  ================================  =========================

The stack may be classic MR (one series or one per slice) or one Enhanced MR multi-frame
object; every object references its own source frames (ReferencedFrameNumber in the
multi-frame case).
"""

from __future__ import annotations

import logging
import multiprocessing
import re
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as dcm_codes

from cinestrain.dicom_io.read.cine import CineSeries
from cinestrain.dicom_io.read.scan import is_valid_date
from cinestrain.dicom_io.write.iod_lookup import memoized_iod_lookups
from cinestrain.dicom_io.write.pm import QUANTITIES, displacement_in_patient, iter_parametric_maps
from cinestrain.dicom_io.write.sc import build_bullseye_capture, build_strain_overlay
from cinestrain.dicom_io.write.seg import build_cine_segmentation
from cinestrain.dicom_io.write.sr import build_measurement_report, measured_regions
from cinestrain.dicom_io.write.uids import ResultUIDs
from cinestrain.speed import FAST, Speed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StrainMaps:
    """What the DICOM results show of one analysis, as plain arrays (the writer knows
    nothing of the analysis classes; :mod:`pipeline.run` fills this in).

    Attributes
    ----------
    radial_pct, circumferential_pct
        ``[S, T, H, W]`` Lagrangian strain, %, on the ED grid (NaN outside the myocardium).
    ed_phase
        Index of the ED phase.
    myocardium
        ``[S, H, W]`` bool ED myocardium the strain was measured in.
    lv_cavity, rv_cavity
        ``[S, H, W]`` bool ED cavities, or ``None``.
    aha_labels
        ``[S, H, W]`` AHA segment (1-16) of each myocardial pixel, 0 elsewhere.
    automatic
        Whether the masks were found by the algorithm (written as AUTOMATIC segments with
        its identification) rather than read from the study's SEG (MANUAL, as given).
    """

    radial_pct: np.ndarray
    circumferential_pct: np.ndarray
    ed_phase: int
    myocardium: np.ndarray
    lv_cavity: np.ndarray | None
    rv_cavity: np.ndarray | None
    aha_labels: np.ndarray
    automatic: bool

#: SeriesNumber of each result series
SERIES_NUMBERS = {
    "radial_strain": 901,
    "circumferential_strain": 902,
    "displacement_x": 903,
    "displacement_y": 904,
    "displacement_z": 905,
    "sr": 910,
    "seg": 911,
    "sc-overlay": 920,
    "sc-bullseye": 921,
}
SEG_DESCRIPTION = "cinestrain myocardium (ED)"


@dataclass
class DicomResults:
    """The files written, by kind (``"pm"``, ``"sr"``, ``"seg"``, ``"sc"``).

    ``on_written`` (optional) is called with each file's path once it is complete.
    """

    by_kind: dict[str, list[Path]] = field(default_factory=dict)
    on_written: Callable[[Path], None] | None = field(default=None, repr=False,
                                                      compare=False)

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [p for paths in self.by_kind.values() for p in paths]

    def add(self, kind: str, ds: Dataset, path: Path) -> None:
        """Write ``ds`` to ``path`` and record it."""
        ds.save_as(path, enforce_file_format=True)
        self.by_kind.setdefault(kind, []).append(path)
        if self.on_written is not None:
            self.on_written(path)

    def merge(self, other: DicomResults) -> None:
        """Record the files of ``other`` after these."""
        for kind, paths in other.by_kind.items():
            self.by_kind.setdefault(kind, []).extend(paths)


#: dates the result objects copy from the source; anonymised exports often hold invalid
#: ones ("00000000", "20120000"), which would make every writer fail
COPIED_DATES = ("PatientBirthDate", "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


class _RepeatedValueWarnings(logging.Filter):
    """Counts by kind (the quoted value left out: it may be a name), and keeps out of the
    log, pydicom's warnings about non-conformant values."""

    _VALUE = re.compile(r"[:=]?\s*'[^']*'|\.?\s*Please see.*$")

    def __init__(self) -> None:
        super().__init__()
        self.kinds: Counter[str] = Counter()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        self.kinds[self._VALUE.sub("", record.getMessage()).strip().rstrip(".")] += 1
        return False


@contextmanager
def one_warning_for_source_uids(series_uid: str) -> Iterator[None]:
    """Real exports carry values pydicom warns about (a UID component with a leading
    zero); results copy and reference them hundreds of times. Log that once per series,
    with the count of each kind, not once per copy. (pydicom's copy of each warning
    through :mod:`warnings` is ignored where logging is set up: :mod:`logs`.)"""
    pydicom_log = logging.getLogger("pydicom")
    quiet = _RepeatedValueWarnings()
    pydicom_log.addFilter(quiet)
    try:
        yield
    finally:
        pydicom_log.removeFilter(quiet)
        if quiet.kinds:
            log.warning("series %s: the source has non-conformant values (%s); results "
                        "reference them as they are", series_uid,
                        ", ".join(f"{kind} x{n}" for kind, n in quiet.kinds.most_common()))


def read_source_headers(cine: CineSeries) -> list[list[Dataset]]:
    """``[S][T]`` the header (no pixels) of each source frame's file, each file read once.

    Invalid dates (see :data:`COPIED_DATES`) are emptied in these copies, and a stack whose
    images each carry their own FrameOfReferenceUID gets the stack's one, each with one
    warning: the results then carry an empty date and one frame of reference rather than
    failing. The source files are not touched.
    """
    headers: dict[Path, Dataset] = {}
    emptied: set[str] = set()
    for row in cine.sources:
        for f in row:
            if f.path not in headers:
                ds = dcmread(f.path, stop_before_pixels=True)
                for keyword in COPIED_DATES:
                    value = str(ds.get(keyword) or "")
                    if value and not is_valid_date(value):
                        setattr(ds, keyword, "")
                        emptied.add(f"{keyword}={value!r}")
                headers[f.path] = ds
    if emptied:
        log.warning("series %s: invalid dates left empty in the results: %s",
                    cine.series_instance_uid, ", ".join(sorted(emptied)))
    frames_of_reference = {str(ds.get("FrameOfReferenceUID", "")) for ds in headers.values()}
    if len(frames_of_reference) > 1 and cine.frame_of_reference_uid:
        # Some exports give every image its own frame of reference; the stack was joined by
        # geometry (DESIGN.md § Cine series), so results use the stack's one.
        for ds in headers.values():
            ds.FrameOfReferenceUID = cine.frame_of_reference_uid
        log.warning("series %s: %d frames of reference in one stack; results use %s",
                    cine.series_instance_uid, len(frames_of_reference),
                    cine.frame_of_reference_uid)
    return [[headers[f.path] for f in row] for row in cine.sources]


def model_version(model: Mapping[str, object]) -> str:
    """The model identity that results' UIDs derive from: name, version, temporal unit."""
    if not model.get("name") or not model.get("version"):
        raise ValueError("model must have a name and a version")
    return " ".join(str(model[k]) for k in ("name", "version", "temporal") if model.get(k))


def _unique(images: Sequence[Sequence[Dataset]]) -> list[Dataset]:
    return list({str(ds.SOPInstanceUID): ds for row in images for ds in row}.values())


def _segmentation_algorithm(maps: StrainMaps, model: Mapping[str, object]
                            ) -> hd.AlgorithmIdentificationSequence | None:
    """Automatic masks carry the algorithm that found them; masks read from the study's
    SEG are written as MANUAL (as they were given)."""
    if not maps.automatic:
        return None
    return hd.AlgorithmIdentificationSequence(
        name="cinestrain myocardium", family=dcm_codes.cid7162.EdgeDetection,
        version=str(model["version"]))


def write_dicom_results(
    cine: CineSeries,
    images: Sequence[Sequence[Dataset]],
    maps: StrainMaps,
    u: np.ndarray,
    report: Mapping[str, object],
    out_dir: str | Path,
    *,
    uid_series: Sequence[str] | None = None,
    processes: int = 1,
    on_written: Callable[[Path], None] | None = None,
    speed: Speed = FAST,
) -> DicomResults:
    """Write the Parametric Maps, SR, SEG and secondary captures of one analysis.

    Parameters
    ----------
    cine : CineSeries
        The analysed stack.
    images : sequence of sequence of pydicom.dataset.Dataset
        ``[S][T]`` source headers (:func:`read_source_headers`).
    maps : StrainMaps
        Strain maps and masks.
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` displacement, mm.
    report : mapping
        The ``report.json`` document of the analysis (the SR repeats its values).
    out_dir : str or pathlib.Path
        Folder to write into (created).
    uid_series : sequence of str, optional
        The series UIDs the result UIDs derive from (default: the stack's). The node
        passes those of a stack's first analysis, so that the results of a stack that
        grew (a late slice) replace the earlier ones in a PACS instead of adding a set.
    processes : int
        1: everything in this process. 2 (where ``fork`` exists): a forked process writes
        the SEG and captures while this one writes the Parametric Maps and the SR (about
        half the work each; the objects and files are the same).
    on_written : callable, optional
        Called (in this process) with each file's path as soon as the file is complete,
        in the order they are written (the node starts sending them at once).
    speed : cinestrain.speed.Speed
        Which speed layers are on (default: all); :data:`cinestrain.speed.PLAIN` lets
        highdicom build every object itself (the same objects, see :mod:`cinestrain.speed`).

    Returns
    -------
    DicomResults
    """
    if np.shape(u) != (cine.n_slices, cine.n_phases, 2, *cine.shape[2:]):
        raise ValueError(f"u must be [S, T, 2, H, W] for a {cine.shape} cine, "
                         f"got {np.shape(u)}")
    model = report.get("model")
    if not isinstance(model, Mapping):
        raise ValueError("report has no 'model' (not a report.json document)")
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    uids = ResultUIDs(uid_series or cine.series_instance_uids, model_version(model))
    job = _Writing(cine, images, maps, u, report, out, uids, model, on_written, speed)
    with memoized_iod_lookups(speed.memo_iod_lookups):
        if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
            results = job.in_two_processes()
        else:
            results = job.measurement_report(job.maps())
            results.merge(job.others())
    log.info("series %s: %d DICOM result files in %s", cine.series_instance_uid,
             len(results.paths), out)
    return results


@dataclass
class _Writing:
    """The DICOM results of one analysis, in two independent groups of about the same
    work: the Parametric Maps and the SR, and the SEG and captures."""

    cine: CineSeries
    images: Sequence[Sequence[Dataset]]
    strain: StrainMaps
    u: np.ndarray
    report: Mapping[str, object]
    out: Path
    uids: ResultUIDs
    model: Mapping[str, object]
    on_written: Callable[[Path], None] | None = None
    speed: Speed = FAST

    def maps(self, after_each: Callable[[], None] | None = None) -> DicomResults:
        """Every Parametric Map (series 901-905); ``after_each`` is called after each."""

        def written(path: Path) -> None:
            if self.on_written is not None:
                self.on_written(path)
            if after_each is not None:
                after_each()

        results = DicomResults(on_written=written)
        cine, maps = self.cine, self.strain
        shared: dict = {}  # each phase's source references, encoded once
        by_quantity = {"radial_strain": maps.radial_pct,
                       "circumferential_strain": maps.circumferential_pct}
        for quantity, spec in QUANTITIES.items():
            if quantity in by_quantity:
                values = by_quantity[quantity]
            else:  # one patient axis at a time: [S, T, H, W] float64 each
                axis = ("displacement_x", "displacement_y", "displacement_z").index(quantity)
                values = displacement_in_patient(self.u, cine.image_orientations[0], axis)
            for t, pm in enumerate(iter_parametric_maps(
                    cine, self.images, values, quantity, uids=self.uids,
                    series_number=SERIES_NUMBERS[quantity],
                    mask=maps.myocardium if spec.masked else None,
                    speed=self.speed, shared=shared)):
                results.add("pm", pm, self.out / f"pm_{quantity}_t{t:02d}.dcm")
            del values
        return results

    def measurement_report(self, results: DicomResults) -> DicomResults:
        """The SR (series 910), added to ``results``."""
        cine, images, maps = self.cine, self.images, self.strain
        ed = maps.ed_phase
        ed_images = [images[s][ed] for s in range(cine.n_slices)]
        ed_frames = [cine.sources[s][ed].frame_number for s in range(cine.n_slices)]
        sr = build_measurement_report(
            self.report, _unique(images), uids=self.uids, series_number=SERIES_NUMBERS["sr"],
            library_images=ed_images, library_frames=ed_frames,
            regions=measured_regions(maps.aha_labels, maps.myocardium,
                                     ed_images, ed_frames, maps.lv_cavity))
        results.add("sr", sr, self.out / "sr_report.dcm")
        return results

    def others(self, on_written: Callable[[Path], None] | None = None) -> DicomResults:
        """The SEG and the captures (``on_written``: instead of this writing's)."""
        results = DicomResults(on_written=on_written or self.on_written)
        cine, images, maps, uids = self.cine, self.images, self.strain, self.uids
        myocardium = maps.myocardium
        ed = maps.ed_phase
        masks = {"myocardium": myocardium}
        for name in ("lv_cavity", "rv_cavity"):
            mask = getattr(maps, name)
            if mask is not None and mask.any():
                masks[name] = mask
        seg = build_cine_segmentation(
            cine, images, masks, ed, series_number=SERIES_NUMBERS["seg"],
            series_description=SEG_DESCRIPTION,
            algorithm=_segmentation_algorithm(maps, self.model),
            series_instance_uid=uids.series("seg"), sop_instance_uid=uids.instance("seg"))
        results.add("seg", seg, self.out / "seg_myocardium.dcm")
        for s in range(cine.n_slices):
            if not myocardium[s].any():
                continue
            overlay = build_strain_overlay(cine, s, maps.circumferential_pct,
                                           myocardium, self.u, uids=uids,
                                           series_number=SERIES_NUMBERS["sc-overlay"])
            results.add("sc", overlay, self.out / f"sc_overlay_s{s:02d}.dcm")
        bullseye = build_bullseye_capture(self.report, cine, ed, uids=uids,
                                          series_number=SERIES_NUMBERS["sc-bullseye"])
        results.add("sc", bullseye, self.out / "sc_bullseye.dcm")
        return results

    def in_two_processes(self) -> DicomResults:
        """:meth:`others` in a forked process (it shares this one's arrays, copy on
        write) while this one writes :meth:`maps` and the SR. The forked process names each file it
        has written; they are passed to ``on_written`` here, between two maps.

        Raises
        ------
        RuntimeError
            The forked process failed (its error is in the message) or died.
        """
        context = multiprocessing.get_context("fork")
        ours, theirs = context.Pipe(duplex=False)
        child = context.Process(target=self._others_to, args=(theirs,),
                                name="cinestrain-results", daemon=True)
        child.start()
        theirs.close()
        outcome: list[tuple[str, Any]] = []

        def relay(block: bool = False) -> None:
            """Pass on the files the forked process has written; keep its last word."""
            while not outcome and (block or ours.poll()):
                try:
                    kind, value = ours.recv()
                except EOFError:
                    outcome.append(("died", None))
                    return
                if kind == "file":
                    if self.on_written is not None:
                        self.on_written(Path(value))
                else:
                    outcome.append((kind, value))

        try:
            results = self.measurement_report(self.maps(after_each=relay))
            relay(block=True)
        finally:
            child.join()
            ours.close()
        status, value = outcome[0]
        if status == "died":
            raise RuntimeError(f"the process writing the SEG and captures died "
                               f"(exit code {child.exitcode})")
        if status != "ok":
            raise RuntimeError(f"writing the SEG and captures failed: {value}")
        results.merge(DicomResults({k: [Path(p) for p in v] for k, v in value.items()}))
        return results

    def _others_to(self, conn: Connection) -> None:
        """Entry point of the forked process: write :meth:`others`, naming each file
        written (``("file", path)``), then send ``("ok", paths by kind)`` or
        ``("error", text)``."""
        try:
            written = self.others(on_written=lambda path: conn.send(("file", str(path))))
            conn.send(("ok", {k: [str(p) for p in v] for k, v in written.by_kind.items()}))
        except BaseException as exc:  # reported to the parent, which raises
            conn.send(("error", f"{type(exc).__name__}: {exc}\n"
                                f"{traceback.format_exc(limit=6)}"))
        finally:
            conn.close()
