"""Read the headers of a folder of DICOM files and group them into series.

Only headers are read (``stop_before_pixels``); each image frame becomes a
:class:`FrameHeader` (classic files give one, enhanced multi-frame objects one per frame).
Files that are not DICOM, truncated or corrupt, and objects that are not MR images are
reported as :class:`ScanProblem` and skipped; they never stop the rest of the folder.
"""

from __future__ import annotations

import logging
import os
import re
import struct
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pydicom.valuerep import DA

from cinestrain.dicom_io.read.errors import (
    CineSeriesError,
    NotAnImageError,
    NotDicomError,
    UnreadableFileError,
)

logger = logging.getLogger(__name__)

#: SOP classes that can hold cine MR frames
MR_IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR Image Storage
    }
)

_CLASSIC_MR = "1.2.840.10008.5.1.4.1.1.4"
_MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
_ITEM = (0xFFFE, 0xE000)
_SEQUENCE_DELIMITER = (0xFFFE, 0xE0DD)
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}


@dataclass(frozen=True)
class PatientStudy:
    """Patient and study attributes that result objects must repeat (all strings, DICOM form)."""

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_instance_uid: str = ""
    study_id: str = ""
    study_date: str = ""
    study_time: str = ""
    accession_number: str = ""
    referring_physician_name: str = ""
    study_description: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PatientStudy:
        """Take the attributes from a dataset (missing ones become empty strings).

        Dates that are not valid DICOM dates (anonymised exports hold "00000000" or
        "20120000") become empty: result objects cannot carry them.
        """
        values = {name: _text(ds, _KEYWORDS[name]) for name in _KEYWORDS}
        for name in ("patient_birth_date", "study_date"):
            if values[name] and not is_valid_date(values[name]):
                values[name] = ""
        return cls(**values)

    def copy_to(self, ds: Dataset) -> None:
        """Write the Patient and General Study attributes into ``ds`` (an empty
        StudyDescription, type 3, is left out)."""
        for name, keyword in _KEYWORDS.items():
            value = getattr(self, name)
            if value or keyword != "StudyDescription":
                setattr(ds, keyword, value)


def is_valid_date(value: str) -> bool:
    """Whether ``value`` is a valid DICOM DA (a real calendar date, YYYYMMDD)."""
    try:
        DA(value)
    except ValueError:
        return False
    return True


_KEYWORDS = {
    "patient_name": "PatientName",
    "patient_id": "PatientID",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "study_instance_uid": "StudyInstanceUID",
    "study_id": "StudyID",
    "study_date": "StudyDate",
    "study_time": "StudyTime",
    "accession_number": "AccessionNumber",
    "referring_physician_name": "ReferringPhysicianName",
    "study_description": "StudyDescription",
}


@dataclass(frozen=True)
class FrameHeader:
    """One image frame as its header describes it.

    Attributes
    ----------
    path : pathlib.Path
        The file holding the frame.
    frame_number : int or None
        1-based frame number in a multi-frame object; None for a single-frame file.
    position : tuple of float or None
        ImagePositionPatient (mm), ``[3]``.
    orientation : tuple of float or None
        ImageOrientationPatient, ``[6]``.
    pixel_spacing : tuple of float or None
        (row spacing, column spacing), mm.
    slice_thickness : float or None
        mm.
    trigger_time : float or None
        ms after the R wave (``TriggerTime`` or ``NominalCardiacTriggerDelayTime``).
    rescale_slope, rescale_intercept : float
        Modality rescale of the stored values (1 and 0 when absent).
    """

    path: Path
    frame_number: int | None
    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    rows: int
    columns: int
    position: tuple[float, float, float] | None
    orientation: tuple[float, float, float, float, float, float] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    trigger_time: float | None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    frame_of_reference_uid: str | None = None


@dataclass(frozen=True)
class ScanProblem:
    """A file or series that was skipped, and why.

    ``kind`` is the name of the matching :class:`~dicom_io.read.errors.CineSeriesError` subclass.
    """

    kind: str
    message: str
    path: Path | None = None
    series_instance_uid: str | None = None

    @classmethod
    def from_error(cls, error: CineSeriesError) -> ScanProblem:
        """The problem an error describes."""
        return cls(error.kind, error.problem, error.path, error.series_instance_uid)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "message": self.message,
            "path": str(self.path) if self.path is not None else None,
            "series_instance_uid": self.series_instance_uid,
        }


@dataclass
class SeriesHeader:
    """Everything read about one series (SeriesInstanceUID) of the input.

    Attributes
    ----------
    order_key : tuple
        Sorts series by acquisition: (SeriesNumber, series date-time, acquisition date-time);
        a higher key is a later series.
    frames : list of FrameHeader
        The image frames (empty for non-image objects).
    nominal_interval_ms : float or None
        The nominal R-R interval (``NominalInterval`` / ``CardiacRRIntervalSpecified``), ms.
    """

    series_instance_uid: str
    study_instance_uid: str
    modality: str
    series_number: int | None
    series_description: str
    order_key: tuple[int, str, str]
    patient_study: PatientStudy
    sop_class_uids: set[str] = field(default_factory=set)
    files: list[Path] = field(default_factory=list)
    frames: list[FrameHeader] = field(default_factory=list)
    nominal_interval_ms: float | None = None
    cardiac_number_of_images: int | None = None
    manufacturer: str = ""
    quirks: Counter[str] = field(default_factory=Counter)
    """non-conformant values pydicom accepted with a warning, by kind, e.g.
    ``"Invalid value for VR UI"`` (a UID component with a leading zero)"""

    @property
    def is_mr_image(self) -> bool:
        """Whether every object of the series is an MR image class."""
        return bool(self.sop_class_uids) and self.sop_class_uids <= MR_IMAGE_SOP_CLASSES

    @property
    def sop_class_names(self) -> list[str]:
        """Human names of the SOP classes, e.g. ``"MR Image Storage"``."""
        return sorted(UID(uid).name for uid in self.sop_class_uids)


@dataclass(frozen=True)
class ScanResult:
    """Series found in the input (ordered by study, then acquisition) and skipped files."""

    series: list[SeriesHeader]
    problems: list[ScanProblem]
    n_files: int

    def get(self, series_instance_uid: str) -> SeriesHeader | None:
        """The series with this UID, if it was found."""
        return next((s for s in self.series if s.series_instance_uid == series_instance_uid), None)


def iter_files(paths_or_dir: str | Path | Sequence[str | Path]) -> list[Path]:
    """Every file under the given folder(s) or in the given list, recursively, sorted.

    Raises
    ------
    FileNotFoundError
        When a given path does not exist.
    """
    roots = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else paths_or_dir
    files: list[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            files.extend(p for p in sorted(root.rglob("*")) if p.is_file())
        elif root.is_file():
            files.append(root)
        else:
            raise FileNotFoundError(f"no such file or folder: {root}")
    return files


def scan_dicom(paths_or_dir: str | Path | Sequence[str | Path]) -> ScanResult:
    """Read the headers of every file and group the frames into series.

    Parameters
    ----------
    paths_or_dir : str, pathlib.Path or sequence of them
        A folder (searched recursively) or a list of files and folders.

    Returns
    -------
    ScanResult
        Series in order of study then acquisition; problems for files that could not be
        read and for series that hold no MR images.

    Raises
    ------
    FileNotFoundError
        When a given path does not exist.
    """
    files = iter_files(paths_or_dir)
    series: dict[str, SeriesHeader] = {}
    problems: list[ScanProblem] = []
    seen: set[tuple[str, int | None]] = set()
    for path in files:
        quirks: Counter[str] = Counter()
        with reading_quirks(quirks):
            try:
                ds, frames = read_frame_headers(path)
            except CineSeriesError as error:
                quiet = isinstance(error, (NotDicomError, NotAnImageError))
                level = logging.INFO if quiet else logging.WARNING
                logger.log(level, "skipping %s: %s", path, error.problem)
                problems.append(ScanProblem.from_error(error))
                continue
            header = _series_of(series, ds)
            header.sop_class_uids.add(str(ds.get("SOPClassUID", "")))
        header.quirks.update(quirks)
        header.files.append(path)
        for frame in frames:
            key = (frame.sop_instance_uid, frame.frame_number)
            if key in seen:
                logger.info("duplicate instance %s in %s ignored", frame.sop_instance_uid, path)
                continue
            seen.add(key)
            header.frames.append(frame)
    ordered = sorted(series.values(), key=lambda s: (s.study_instance_uid, s.order_key))
    for header in ordered:
        if header.quirks:
            logger.info(
                "series %s: accepted %s",
                header.series_instance_uid,
                ", ".join(f"{n} x {kind!r}" for kind, n in header.quirks.most_common()),
            )
        if not header.is_mr_image:
            error = NotAnImageError(
                f"{len(header.files)} object(s) of {', '.join(header.sop_class_names)} "
                f"(modality {header.modality or '?'}): not MR images, skipped",
                series_instance_uid=header.series_instance_uid,
                path=header.files[0],
            )
            logger.info("%s", error)
            problems.append(ScanProblem.from_error(error))
    if problems:
        logger.info("scanned %d files: %d series; %s", len(files), len(ordered),
                    describe_problems(problems))
    else:
        logger.debug("scanned %d files: %d series", len(files), len(ordered))
    return ScanResult(ordered, problems, len(files))


def describe_problems(problems: Sequence[ScanProblem], examples: int = 3) -> str:
    """The problems of a scan in one line: each kind with its count, its first message
    and up to ``examples`` file names, e.g. ``4 x NotDicomError: not a DICOM file (no
    'DICM' prefix) (a.dcm, b.dcm, c.dcm, ...)``."""
    by_kind: dict[str, list[ScanProblem]] = {}
    for problem in problems:
        by_kind.setdefault(problem.kind, []).append(problem)
    parts = []
    for kind, items in by_kind.items():
        names = [p.path.name for p in items[:examples] if p.path is not None]
        more = ", ..." if len(items) > examples else ""
        where = f" ({', '.join(names)}{more})" if names else ""
        parts.append(f"{len(items)} x {kind}: {items[0].message}{where}")
    return "; ".join(parts)


@contextmanager
def reading_quirks(sink: Counter[str]) -> Iterator[None]:
    """Count pydicom's warnings about non-conformant values instead of repeating them.

    Real scanners send values pydicom warns about on every read (e.g. a UID component
    with a leading zero); inside this context those warnings are counted in ``sink`` by
    kind (the quoted value removed) and neither logged nor shown.
    """
    drop = _CountingFilter(sink)
    pydicom_logger = logging.getLogger("pydicom")
    pydicom_logger.addFilter(drop)
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        pydicom_logger.removeFilter(drop)


class _CountingFilter(logging.Filter):
    _VALUE = re.compile(r"[:=]?\s*'[^']*'|\.?\s*Please see.*$")

    def __init__(self, sink: Counter[str]) -> None:
        super().__init__()
        self.sink = sink

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        self.sink[self._VALUE.sub("", record.getMessage()).strip()] += 1
        return False


def read_frame_headers(path: Path) -> tuple[Dataset, list[FrameHeader]]:
    """Read one file's header and describe its image frames.

    Returns
    -------
    tuple
        The header dataset (no pixel data) and its frames (empty for non-image objects).

    Raises
    ------
    UnreadableFileError
        Not a DICOM file (no preamble), or truncated or corrupt.
    """
    try:
        with open(path, "rb") as fp:
            if not _has_dicm_prefix(fp):
                raise NotDicomError("not a DICOM file (no 'DICM' prefix)", path=path)
            ds = dcmread(fp, stop_before_pixels=True, force=False)
            pixel_problem = _pixel_data_problem(fp, ds, os.fstat(fp.fileno()).st_size)
    except NotDicomError:
        raise
    except Exception as exc:  # untrusted input: any parse failure means "unreadable"
        raise UnreadableFileError(
            f"not a readable DICOM file ({type(exc).__name__}: {exc})", path=path
        ) from exc
    if ds.file_meta.get("MediaStorageSOPClassUID") == _MEDIA_DIRECTORY:
        raise NotAnImageError("a DICOMDIR (media directory), not an image", path=path)
    series_uid = str(ds.get("SeriesInstanceUID", "") or "")
    if not series_uid or "SOPInstanceUID" not in ds:
        raise UnreadableFileError("no SeriesInstanceUID or SOPInstanceUID", path=path)
    if str(ds.get("SOPClassUID", "")) not in MR_IMAGE_SOP_CLASSES:
        return ds, []
    if pixel_problem:
        raise UnreadableFileError(pixel_problem, series_instance_uid=series_uid, path=path)
    try:
        return ds, _frames(ds, path)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
        raise UnreadableFileError(
            f"malformed image header ({type(exc).__name__}: {exc})",
            series_instance_uid=series_uid,
            path=path,
        ) from exc


def _series_of(series: dict[str, SeriesHeader], ds: Dataset) -> SeriesHeader:
    uid = str(ds.SeriesInstanceUID)
    header = series.get(uid)
    if header is None:
        number = ds.get("SeriesNumber")
        series_dt = f"{_text(ds, 'SeriesDate')}{_text(ds, 'SeriesTime')}"
        acquisition_dt = _text(ds, "AcquisitionDateTime") or (
            f"{_text(ds, 'AcquisitionDate')}{_text(ds, 'AcquisitionTime')}"
        )
        header = SeriesHeader(
            series_instance_uid=uid,
            study_instance_uid=_text(ds, "StudyInstanceUID"),
            modality=_text(ds, "Modality"),
            series_number=int(number) if number not in (None, "") else None,
            series_description=_text(ds, "SeriesDescription"),
            order_key=(int(number) if number not in (None, "") else -1, series_dt, acquisition_dt),
            patient_study=PatientStudy.from_dataset(ds),
            manufacturer=_text(ds, "Manufacturer"),
        )
        series[uid] = header
    interval = _float(ds.get("NominalInterval")) or _float(ds.get("CardiacRRIntervalSpecified"))
    if interval and header.nominal_interval_ms is None:
        header.nominal_interval_ms = interval
    images = ds.get("CardiacNumberOfImages")
    if images not in (None, "") and header.cardiac_number_of_images is None:
        header.cardiac_number_of_images = int(images)
    return header


def _frames(ds: Dataset, path: Path) -> list[FrameHeader]:
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared_items = ds.get("SharedFunctionalGroupsSequence") or []
    shared = shared_items[0] if shared_items else Dataset()
    common = {
        "path": path,
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "series_instance_uid": str(ds.SeriesInstanceUID),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
    }
    if str(ds.SOPClassUID) == _CLASSIC_MR or len(per_frame) == 0:
        # classic objects are single-frame (some exports add an empty functional group)
        if n_frames != 1:
            raise ValueError(f"{n_frames} frames but no per-frame functional groups")
        return [_classic_frame(ds, common)]
    if len(per_frame) != n_frames:
        raise ValueError(f"{len(per_frame)} per-frame functional groups for {n_frames} frames")
    return [_enhanced_frame(ds, shared, item, i + 1, common) for i, item in enumerate(per_frame)]


def _classic_frame(ds: Dataset, common: dict[str, Any]) -> FrameHeader:
    trigger = _float(ds.get("TriggerTime"))
    if trigger is None:
        trigger = _float(ds.get("NominalCardiacTriggerDelayTime"))
    return FrameHeader(
        frame_number=None,
        position=_floats(ds.get("ImagePositionPatient"), 3),
        orientation=_floats(ds.get("ImageOrientationPatient"), 6),
        pixel_spacing=_floats(ds.get("PixelSpacing"), 2),
        slice_thickness=_float(ds.get("SliceThickness")),
        trigger_time=trigger,
        rescale_slope=_float(ds.get("RescaleSlope")) or 1.0,
        rescale_intercept=_float(ds.get("RescaleIntercept")) or 0.0,
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID") or None,
        **common,
    )


def _group(frame: Dataset, shared: Dataset, keyword: str) -> Dataset | None:
    """The first item of a functional group macro, per-frame before shared."""
    for source in (frame, shared):
        items = source.get(keyword)
        if items:
            return items[0]
    return None


def _enhanced_frame(
    ds: Dataset, shared: Dataset, frame: Dataset, number: int, common: dict[str, Any]
) -> FrameHeader:
    position = _group(frame, shared, "PlanePositionSequence")
    orientation = _group(frame, shared, "PlaneOrientationSequence")
    measures = _group(frame, shared, "PixelMeasuresSequence")
    cardiac = _group(frame, shared, "CardiacSynchronizationSequence")
    transform = _group(frame, shared, "PixelValueTransformationSequence")
    trigger = None
    if cardiac is not None:
        trigger = _float(cardiac.get("NominalCardiacTriggerDelayTime"))
    if trigger is None:  # legacy converted enhanced objects keep the classic attribute
        unassigned = frame.get("UnassignedPerFrameConvertedAttributesSequence")
        if unassigned:
            trigger = _float(unassigned[0].get("TriggerTime"))
    if trigger is None and int(ds.get("NumberOfFrames", 1) or 1) == 1:
        trigger = _float(ds.get("TriggerTime"))
    slope = intercept = None
    if transform is not None:
        slope = _float(transform.get("RescaleSlope"))
        intercept = _float(transform.get("RescaleIntercept"))
    return FrameHeader(
        frame_number=number,
        position=_floats(position.get("ImagePositionPatient") if position else None, 3),
        orientation=_floats(orientation.get("ImageOrientationPatient") if orientation else None, 6),
        pixel_spacing=_floats(measures.get("PixelSpacing") if measures else None, 2),
        slice_thickness=_float(measures.get("SliceThickness")) if measures else None,
        trigger_time=trigger,
        rescale_slope=slope or _float(ds.get("RescaleSlope")) or 1.0,
        rescale_intercept=(
            intercept if intercept is not None else _float(ds.get("RescaleIntercept")) or 0.0
        ),
        frame_of_reference_uid=_text(ds, "FrameOfReferenceUID") or None,
        **common,
    )


def _has_dicm_prefix(fp: BinaryIO) -> bool:
    """Whether the file has the DICOM preamble and ``DICM`` prefix (position restored)."""
    head = fp.read(132)
    fp.seek(0)
    return len(head) == 132 and head[128:] == b"DICM"


def _pixel_data_problem(fp: BinaryIO, ds: Dataset, size: int) -> str | None:
    """Why the Pixel Data element at the current position is incomplete, or None.

    After ``dcmread(..., stop_before_pixels=True)`` the file position is the start of the
    Pixel Data element (or the end of the file when there is none).
    """
    if "Rows" not in ds:
        return None
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None or UID(ts) == "1.2.840.10008.1.2.2":
        return None  # big endian (retired): no check
    head = fp.read(8)
    if len(head) < 8:
        return "no pixel data (file ends before it)"
    group, element = struct.unpack("<HH", head[:4])
    if (group, element) not in ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)):
        return f"no pixel data (found tag ({group:04X},{element:04X}) where it should start)"
    if UID(ts).is_implicit_VR:
        (length,) = struct.unpack("<I", head[4:8])
    elif head[4:6] in _LONG_VRS:
        extra = fp.read(4)
        if len(extra) < 4:
            return "truncated in the pixel data header"
        (length,) = struct.unpack("<I", extra)
    else:
        (length,) = struct.unpack("<H", head[6:8])
    start = fp.tell()
    if length != 0xFFFFFFFF:
        if start + length > size:
            return f"truncated: pixel data needs {length} bytes, {size - start} present"
        expected = (
            int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1)
            * int(ds.get("SamplesPerPixel", 1)) * int(ds.get("BitsAllocated", 16)) // 8
        )
        if length < expected:
            return f"pixel data holds {length} bytes, the matrix needs {expected}"
        return None
    # encapsulated: walk the items to the sequence delimiter
    position = start
    while True:
        fp.seek(position)
        item = fp.read(8)
        if len(item) < 8:
            return "truncated: encapsulated pixel data ends without its delimiter"
        tag_group, tag_element, item_length = struct.unpack("<HHI", item)
        if (tag_group, tag_element) == _SEQUENCE_DELIMITER:
            return None
        if (tag_group, tag_element) != _ITEM:
            return f"corrupt encapsulated pixel data (tag ({tag_group:04X},{tag_element:04X}))"
        position += 8 + item_length
        if position > size:
            return "truncated: a compressed frame runs past the end of the file"


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any, n: int) -> Any:
    """A tuple of ``n`` floats from a multi-valued element, or None when absent or malformed."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    try:
        values = tuple(float(v) for v in _as_iterable(value))
    except (TypeError, ValueError):
        return None
    return values if len(values) == n else None


def _as_iterable(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple)) or hasattr(value, "__iter__") else [value]
