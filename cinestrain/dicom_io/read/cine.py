"""Read a cine short-axis stack into a :class:`CineSeries`: pixels, geometry, timing, sources.

>>> from dicom_io.read.cine import load_cine
>>> cine = load_cine("incoming/")             # a folder, a file list, classic or enhanced
>>> cine.pixels.shape                         # [S, T, H, W] float32, rescale applied
(12, 20, 256, 256)

The stack is found by :func:`dicom_io.read.stacks.find_stacks` (see there for the rules).
Slices are ordered by ascending position along ``slice_normal``; that is not necessarily
base to apex: the strain stage decides base and apex from anatomy and may reverse them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread

from cinestrain.dicom_io.geometry import OrientationClass
from cinestrain.dicom_io.read.errors import InconsistentGeometryError, UnreadableFileError
from cinestrain.dicom_io.read.scan import FrameHeader, PatientStudy, reading_quirks, scan_dicom
from cinestrain.dicom_io.read.stacks import MIN_PHASES, CineStack, find_stacks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFrame:
    """Where one (slice, phase) image came from, so results can reference it.

    ``frame_number`` is 1-based in multi-frame objects and None for single-frame files.
    """

    sop_class_uid: str
    sop_instance_uid: str
    frame_number: int | None
    series_instance_uid: str
    path: Path


@dataclass(frozen=True)
class CineSeries:
    """A cine stack of S slices x T phases with its geometry, timing and provenance.

    Attributes
    ----------
    pixels : numpy.ndarray
        ``[S, T, H, W]`` float32, modality rescale (slope, intercept) applied.
    image_positions : numpy.ndarray
        ``[S, 3]`` ImagePositionPatient of each slice, mm (LPS).
    image_orientations : numpy.ndarray
        ``[S, 6]`` ImageOrientationPatient of each slice.
    pixel_spacing : numpy.ndarray
        ``[S, 2]`` (row spacing, column spacing) per slice, mm.
    slice_thickness : numpy.ndarray
        ``[S]`` mm (NaN where absent).
    slice_positions : numpy.ndarray
        ``[S]`` position along ``slice_normal``, mm, ascending (not necessarily base to apex).
    slice_normal : numpy.ndarray
        ``[3]`` unit normal, row x column cosines.
    trigger_times : numpy.ndarray
        ``[T]`` ms: for each phase rank, the median over slices.
    slice_trigger_times : numpy.ndarray
        ``[S, T]`` ms, as each image states it.
    sources : tuple of tuple of SourceFrame
        ``[S][T]`` the source image of each (slice, phase).
    series_instance_uids : tuple of str
        Every series that contributed a slice, in acquisition order.
    frame_of_reference_uid : str or None
        The most common FrameOfReferenceUID of the frames.
    patient_study : PatientStudy
        Patient and study attributes for result objects.
    orientation : OrientationClass
        Whether the plane looks like a short-axis view.
    rr_interval_ms : float or None
        Nominal R-R interval from the headers, ms.
    notes : tuple of str
        Non-fatal findings (replaced slices, several frames of reference, gaps).
    """

    pixels: np.ndarray
    image_positions: np.ndarray
    image_orientations: np.ndarray
    pixel_spacing: np.ndarray
    slice_thickness: np.ndarray
    slice_positions: np.ndarray
    slice_normal: np.ndarray
    trigger_times: np.ndarray
    slice_trigger_times: np.ndarray
    sources: tuple[tuple[SourceFrame, ...], ...]
    series_instance_uids: tuple[str, ...]
    frame_of_reference_uid: str | None
    patient_study: PatientStudy
    orientation: OrientationClass
    rr_interval_ms: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def n_slices(self) -> int:
        """S."""
        return int(self.pixels.shape[0])

    @property
    def n_phases(self) -> int:
        """T."""
        return int(self.pixels.shape[1])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(S, T, H, W)."""
        return tuple(int(v) for v in self.pixels.shape)  # type: ignore[return-value]

    @property
    def study_instance_uid(self) -> str:
        """StudyInstanceUID of the source study."""
        return self.patient_study.study_instance_uid

    @property
    def series_instance_uid(self) -> str:
        """The first contributing series (the stack's identity when it is one series)."""
        return self.series_instance_uids[0]

    @property
    def in_plane_spacing(self) -> tuple[float, float]:
        """(row, column) pixel spacing of the stack, mm (equal on every slice)."""
        return float(self.pixel_spacing[0, 0]), float(self.pixel_spacing[0, 1])

    @property
    def source_paths(self) -> tuple[tuple[Path, ...], ...]:
        """``[S][T]`` the file of each (slice, phase)."""
        return tuple(tuple(f.path for f in row) for row in self.sources)


def load_cine(
    paths_or_dir: str | Path | Sequence[str | Path],
    *,
    series_instance_uid: str | None = None,
    min_phases: int = MIN_PHASES,
) -> CineSeries:
    """Find the cine stack in files or a folder and read it.

    Parameters
    ----------
    paths_or_dir : str, pathlib.Path or sequence of them
        A folder (searched recursively) or files and folders.
    series_instance_uid : str, optional
        Load the stack this series belongs to; by default the best stack found
        (short axis first, then the most frames).
    min_phases : int
        Fewer phases than this is an error (:class:`~dicom_io.read.errors.TooFewPhasesError`).

    Returns
    -------
    CineSeries

    Raises
    ------
    dicom_io.read.errors.CineSeriesError
        A specific subclass naming the series and the problem when no stack can be read.
    FileNotFoundError
        When a given path does not exist.
    """
    search = find_stacks(scan_dicom(paths_or_dir), min_phases=min_phases)
    return load_stack(search.select(series_instance_uid))


def load_stack(stack: CineStack) -> CineSeries:
    """Read the pixels of an assembled stack.

    Parameters
    ----------
    stack : CineStack
        From :func:`dicom_io.read.stacks.find_stacks`.

    Returns
    -------
    CineSeries

    Raises
    ------
    dicom_io.read.errors.CineSeriesError
        The stack's own error, or :class:`UnreadableFileError` when pixel data cannot be
        decoded.
    """
    if stack.error is not None:
        raise stack.error
    frames = [[f for f in s.frames] for s in stack.slices]
    pixels = np.empty(
        (stack.n_slices, stack.n_phases, stack.rows, stack.columns), dtype=np.float32
    )
    by_path: dict[Path, list[tuple[int, int, FrameHeader]]] = {}
    for s, row in enumerate(frames):
        for t, frame in enumerate(row):
            by_path.setdefault(frame.path, []).append((s, t, frame))
    for path, wanted in by_path.items():
        stored = _read_pixels(path, wanted[0][2])
        for s, t, frame in wanted:
            index = (frame.frame_number or 1) - 1
            if stored.ndim == 2 and index == 0:
                image = stored
            elif stored.ndim == 3 and index < stored.shape[0]:
                image = stored[index]
            else:
                raise UnreadableFileError(
                    f"frame {frame.frame_number} missing from decoded pixel data "
                    f"of shape {stored.shape}",
                    series_instance_uid=frame.series_instance_uid,
                    path=path,
                )
            if image.shape != (stack.rows, stack.columns):
                raise InconsistentGeometryError(
                    f"decoded image is {image.shape}, header says "
                    f"{stack.rows}x{stack.columns}",
                    series_instance_uid=frame.series_instance_uid,
                    path=path,
                )
            pixels[s, t] = image.astype(np.float32) * np.float32(frame.rescale_slope) + (
                np.float32(frame.rescale_intercept)
            )
    header = next(h for h in stack.series if h.series_instance_uid in stack.series_instance_uids)
    intervals = [h.nominal_interval_ms for h in stack.series if h.nominal_interval_ms]
    slice_trigger_times = stack.trigger_times
    cine = CineSeries(
        pixels=pixels,
        image_positions=np.array([s.image_position for s in stack.slices], dtype=float),
        image_orientations=np.array([s.frames[0].orientation for s in stack.slices], dtype=float),
        pixel_spacing=np.array([s.frames[0].pixel_spacing for s in stack.slices], dtype=float),
        slice_thickness=np.array(
            [s.frames[0].slice_thickness or np.nan for s in stack.slices], dtype=float
        ),
        slice_positions=stack.slice_positions.astype(float),
        slice_normal=np.asarray(stack.normal, dtype=float),
        trigger_times=np.median(slice_trigger_times, axis=0),
        slice_trigger_times=slice_trigger_times,
        sources=tuple(
            tuple(
                SourceFrame(
                    f.sop_class_uid, f.sop_instance_uid, f.frame_number,
                    f.series_instance_uid, f.path,
                )
                for f in row
            )
            for row in frames
        ),
        series_instance_uids=stack.series_instance_uids,
        frame_of_reference_uid=next(iter(stack.frame_of_reference_uids), None),
        patient_study=header.patient_study,
        orientation=stack.orientation,
        rr_interval_ms=float(np.median(intervals)) if intervals else None,
        notes=stack.notes,
    )
    logger.debug(
        "loaded cine %s of study %s from series %s",
        "x".join(str(v) for v in cine.shape), cine.study_instance_uid,
        ", ".join(cine.series_instance_uids),
    )
    return cine


def _read_pixels(path: Path, frame: FrameHeader) -> np.ndarray:
    """Stored values of a file: ``[H, W]`` or ``[N, H, W]``."""
    try:
        with reading_quirks(Counter()):
            ds = dcmread(path, force=False)
            return np.asarray(ds.pixel_array)
    except Exception as exc:  # untrusted input: decoder failures are "unreadable"
        raise UnreadableFileError(
            f"pixel data cannot be decoded ({type(exc).__name__}: {exc})",
            series_instance_uid=frame.series_instance_uid,
            path=path,
        ) from exc
