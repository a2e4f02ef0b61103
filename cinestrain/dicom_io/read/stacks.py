"""Assemble cine stacks (S slices x T phases) from scanned series.

Rules (DESIGN.md, "Cine series"):

- the images of one series always belong together; each series is first laid out on its
  own (:class:`SeriesLayout`): one orientation, one matrix and pixel spacing, usable
  trigger times, the same number of phases at every slice position;
- series of one study join into a stack when orientation (within
  ``ORIENTATION_TOLERANCE_DEG``), matrix, pixel spacing and phase count agree;
  FrameOfReferenceUID is a hint, not a key (some exports give every image its own);
- a slice position present in two series is taken from the later series (higher
  SeriesNumber, then later series / acquisition time);
- slices are ordered by position along the slice normal (row x column cosines),
  ascending; phases by trigger time, matched across slices by rank. Whether ascending
  means base-to-apex is left to the strain stage, which decides from anatomy.
  SliceLocation and InstanceNumber are never used for ordering.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace

import numpy as np

from cinestrain.dicom_io.geometry import (
    OrientationClass,
    classify_orientation,
    position_along_normal,
    same_orientation,
    slice_normal,
)
from cinestrain.dicom_io.read.errors import (
    CineSeriesError,
    DuplicateFrameError,
    InconsistentGeometryError,
    MissingTimingError,
    MixedOrientationError,
    NoCineStackError,
    NotAnImageError,
    TooFewPhasesError,
    UnequalPhaseCountError,
)
from cinestrain.dicom_io.read.scan import (
    FrameHeader,
    ScanResult,
    SeriesHeader,
    describe_problems,
)

logger = logging.getLogger(__name__)

#: a cine needs at least this many phases
MIN_PHASES = 8

#: frames closer than this along the normal (mm) are one slice position, unless a tenth of
#: the slice thickness is smaller
SLICE_POSITION_TOLERANCE_MM = 0.5

#: relative tolerance on pixel spacing
SPACING_TOLERANCE = 1e-3

#: two trigger times closer than this (ms) in one slice are the same phase
TRIGGER_TOLERANCE_MS = 1e-3


@dataclass(frozen=True)
class SliceFrames:
    """The frames of one slice position, ordered by trigger time.

    Attributes
    ----------
    position_mm : float
        Position along the stack's slice normal, mm.
    frames : tuple of FrameHeader
        ``[T]`` frames by ascending trigger time.
    """

    position_mm: float
    frames: tuple[FrameHeader, ...]
    series_instance_uid: str

    @property
    def image_position(self) -> tuple[float, float, float]:
        """ImagePositionPatient of the slice, mm."""
        return self.frames[0].position  # type: ignore[return-value]

    @property
    def trigger_times(self) -> np.ndarray:
        """``[T]`` trigger times, ms."""
        return np.array([f.trigger_time for f in self.frames], dtype=float)


@dataclass(frozen=True)
class SeriesLayout:
    """How one series lays out as slices and phases, or why it cannot be a cine.

    ``slices`` is empty and ``error`` set when the series cannot form a cine stack.
    """

    series: SeriesHeader
    slices: tuple[SliceFrames, ...] = ()
    error: CineSeriesError | None = None

    @property
    def n_phases(self) -> int:
        """Phases per slice (0 when the layout failed)."""
        return len(self.slices[0].frames) if self.slices else 0

    @property
    def first_frame(self) -> FrameHeader | None:
        """A representative frame (None for non-image series)."""
        return self.series.frames[0] if self.series.frames else None


@dataclass(frozen=True)
class CineStack:
    """A stack assembled from one or more series, ready to load.

    Attributes
    ----------
    slices : tuple of SliceFrames
        ``[S]`` by ascending position along ``normal``.
    normal : numpy.ndarray
        ``[3]`` unit slice normal (row x column cosines of the first slice).
    orientation : OrientationClass
        Short axis or not, as far as geometry tells.
    notes : tuple of str
        Things worth knowing that do not stop loading (replaced slices, several frames of
        reference, gaps).
    error : CineSeriesError or None
        Why the stack cannot be loaded, if it cannot.
    """

    study_instance_uid: str
    series: tuple[SeriesHeader, ...]
    slices: tuple[SliceFrames, ...]
    normal: np.ndarray
    orientation: OrientationClass
    notes: tuple[str, ...] = ()
    error: CineSeriesError | None = None

    @property
    def n_slices(self) -> int:
        """S."""
        return len(self.slices)

    @property
    def n_phases(self) -> int:
        """T."""
        return len(self.slices[0].frames)

    @property
    def rows(self) -> int:
        """H."""
        return self.slices[0].frames[0].rows

    @property
    def columns(self) -> int:
        """W."""
        return self.slices[0].frames[0].columns

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(row, column) spacing in mm."""
        return self.slices[0].frames[0].pixel_spacing  # type: ignore[return-value]

    @property
    def slice_thickness(self) -> float | None:
        """Slice thickness, mm (None when absent)."""
        return self.slices[0].frames[0].slice_thickness

    @property
    def slice_positions(self) -> np.ndarray:
        """``[S]`` positions along the normal, mm, ascending."""
        return np.array([s.position_mm for s in self.slices])

    @property
    def slice_spacing(self) -> float | None:
        """Median distance between neighbouring slices, mm (None for one slice)."""
        if self.n_slices < 2:
            return None
        return float(np.median(np.diff(self.slice_positions)))

    @property
    def trigger_times(self) -> np.ndarray:
        """``[S, T]`` trigger times, ms."""
        return np.stack([s.trigger_times for s in self.slices])

    @property
    def series_instance_uids(self) -> tuple[str, ...]:
        """Series that contribute at least one slice, in acquisition order."""
        used = {s.series_instance_uid for s in self.slices}
        return tuple(h.series_instance_uid for h in self.series if h.series_instance_uid in used)

    @property
    def frame_of_reference_uids(self) -> tuple[str, ...]:
        """Distinct FrameOfReferenceUIDs of the frames, most common first."""
        counts = Counter(
            f.frame_of_reference_uid for s in self.slices for f in s.frames
            if f.frame_of_reference_uid
        )
        return tuple(uid for uid, _ in counts.most_common())

    @property
    def loadable(self) -> bool:
        """Whether the stack can be loaded (no error)."""
        return self.error is None


@dataclass(frozen=True)
class StackSearch:
    """Result of :func:`find_stacks`: per-series layouts and the stacks, best first."""

    scan: ScanResult
    layouts: tuple[SeriesLayout, ...]
    stacks: tuple[CineStack, ...] = field(default=())

    def select(self, series_instance_uid: str | None = None) -> CineStack:
        """The stack to analyse.

        Parameters
        ----------
        series_instance_uid : str, optional
            Take the stack this series contributes to; otherwise the best loadable stack
            (short axis first, then most frames).

        Raises
        ------
        CineSeriesError
            The specific error of the requested series or of the most promising
            candidate when nothing loadable was found (:class:`NoCineStackError` when the
            input has no MR images at all).
        """
        if series_instance_uid is not None:
            for stack in self.stacks:
                if series_instance_uid in stack.series_instance_uids:
                    if stack.error is not None:
                        raise stack.error
                    return stack
            for layout in self.layouts:
                if layout.series.series_instance_uid == series_instance_uid and layout.error:
                    raise layout.error
            raise NoCineStackError(
                "not found in the input, or replaced by a later series",
                series_instance_uid=series_instance_uid,
            )
        for stack in self.stacks:
            if stack.loadable:
                return stack
        failures = [s.error for s in self.stacks if s.error is not None]
        failures += [
            layout.error for layout in self.layouts
            if layout.error is not None and not isinstance(layout.error, NotAnImageError)
        ]
        if failures:
            raise failures[0]
        problems = (f"; {describe_problems(self.scan.problems)}" if self.scan.problems
                    else "")
        raise NoCineStackError(
            f"no MR image series among {self.scan.n_files} files "
            f"({len(self.scan.series)} series{problems})"
        )


def find_stacks(scan: ScanResult, *, min_phases: int = MIN_PHASES) -> StackSearch:
    """Lay out every series, then join series into cine stacks.

    Parameters
    ----------
    scan : ScanResult
        Headers from :func:`dicom_io.read.scan.scan_dicom`.
    min_phases : int
        Series with fewer phases get :class:`TooFewPhasesError`.

    Returns
    -------
    StackSearch
        Layouts of all series, and stacks ordered best first: loadable, short axis (then
        unknown, then not), most frames.
    """
    layouts = tuple(layout_series(series, min_phases=min_phases) for series in scan.series)
    for layout in layouts:
        if layout.error is not None and not isinstance(layout.error, NotAnImageError):
            logger.warning("%s", layout.error)
    groups: list[list[SeriesLayout]] = []
    for layout in layouts:
        if layout.error is not None:
            continue
        for group in groups:
            if _joinable(group[0], layout):
                group.append(layout)
                break
        else:
            groups.append([layout])
    stacks = [_merge(group) for group in groups]
    stacks = _flag_phase_count_conflicts(stacks)
    order = {True: 0, None: 1, False: 2}
    stacks.sort(
        key=lambda s: (
            not s.loadable,
            order[s.orientation.short_axis],
            -s.n_slices * s.n_phases,
            -s.series[-1].order_key[0],
        )
    )
    for stack in stacks:  # a stack that cannot be analysed says why at INFO
        logger.log(
            logging.INFO if stack.error else logging.DEBUG,
            "stack %d x %d x %d x %d from series %s (%s)%s",
            stack.n_slices, stack.n_phases, stack.rows, stack.columns,
            ", ".join(stack.series_instance_uids), stack.orientation.describe(),
            f": {stack.error.problem}" if stack.error else "",
        )
    return StackSearch(scan, layouts, tuple(stacks))


def layout_series(series: SeriesHeader, *, min_phases: int = MIN_PHASES) -> SeriesLayout:
    """Lay out one series as slices x phases, or say why it cannot be a cine.

    Parameters
    ----------
    series : SeriesHeader
        One scanned series.
    min_phases : int
        Fewer phases than this is a :class:`TooFewPhasesError`.

    Returns
    -------
    SeriesLayout
        With ``error`` set to the specific :class:`CineSeriesError` when it fails.
    """
    try:
        return SeriesLayout(series, _slices_of(series, min_phases))
    except CineSeriesError as error:
        return SeriesLayout(series, (), error)


def _slices_of(series: SeriesHeader, min_phases: int) -> tuple[SliceFrames, ...]:
    uid = series.series_instance_uid
    frames = series.frames
    if not series.is_mr_image or not frames:
        raise NotAnImageError(
            f"holds {', '.join(series.sop_class_names) or 'no images'}, not MR images",
            series_instance_uid=uid,
        )
    for name, label in (
        ("position", "ImagePositionPatient"),
        ("orientation", "ImageOrientationPatient"),
        ("pixel_spacing", "PixelSpacing"),
    ):
        missing = sum(getattr(f, name) is None for f in frames)
        if missing:
            raise InconsistentGeometryError(
                f"{missing} of {len(frames)} images have no usable {label}",
                series_instance_uid=uid,
            )
    matrices = Counter((f.rows, f.columns) for f in frames)
    if len(matrices) > 1:
        raise InconsistentGeometryError(
            "images differ in matrix: "
            + ", ".join(f"{r}x{c} ({n} images)" for (r, c), n in matrices.most_common()),
            series_instance_uid=uid,
        )
    spacing = np.array([f.pixel_spacing for f in frames])
    if not np.allclose(spacing, spacing[0], rtol=SPACING_TOLERANCE, atol=0):
        values = sorted({tuple(round(v, 4) for v in row) for row in spacing.tolist()})
        raise InconsistentGeometryError(
            f"images differ in pixel spacing: {values}", series_instance_uid=uid
        )
    reference = np.array(frames[0].orientation)
    odd = [f for f in frames if not same_orientation(reference, np.array(f.orientation))]
    if odd:
        n_orientations = 1 + len(
            {tuple(np.round(f.orientation, 3)) for f in odd}  # type: ignore[arg-type]
        )
        raise MixedOrientationError(
            f"images lie in {n_orientations} different orientations "
            f"({len(odd)} of {len(frames)} differ from the first)",
            series_instance_uid=uid,
        )
    untimed = sum(f.trigger_time is None for f in frames)
    if untimed:
        raise MissingTimingError(
            f"{untimed} of {len(frames)} images have no TriggerTime or "
            "NominalCardiacTriggerDelayTime",
            series_instance_uid=uid,
        )
    normal = slice_normal(reference)
    slices = [
        _order_phases(uid, position, group)
        for position, group in _cluster_positions(frames, normal)
    ]
    counts = Counter(len(s.frames) for s in slices)
    if len(counts) > 1:
        common, _ = counts.most_common(1)[0]
        odd_slices = [s for s in slices if len(s.frames) != common]
        raise UnequalPhaseCountError(
            f"slices have different numbers of phases: most have {common}, "
            + ", ".join(f"{len(s.frames)} at {s.position_mm:.1f} mm" for s in odd_slices[:5]),
            series_instance_uid=uid,
        )
    n_phases = len(slices[0].frames)
    if n_phases < min_phases:
        raise TooFewPhasesError(
            f"{n_phases} phase(s) per slice ({len(slices)} slice(s)); a cine needs "
            f"at least {min_phases}",
            series_instance_uid=uid,
        )
    return tuple(slices)


def _cluster_positions(
    frames: list[FrameHeader], normal: np.ndarray
) -> list[tuple[float, list[FrameHeader]]]:
    """Group frames into slice positions along ``normal`` (ascending)."""
    thickness = [f.slice_thickness for f in frames if f.slice_thickness]
    tolerance = SLICE_POSITION_TOLERANCE_MM
    if thickness:
        tolerance = min(tolerance, 0.1 * float(np.median(thickness)))
    keyed = sorted(
        ((position_along_normal(np.array(f.position), normal), f) for f in frames),
        key=lambda pf: pf[0],
    )
    clusters: list[list[tuple[float, FrameHeader]]] = []
    for position, frame in keyed:
        if clusters and position - clusters[-1][-1][0] <= tolerance:
            clusters[-1].append((position, frame))
        else:
            clusters.append([(position, frame)])
    return [
        (float(np.median([p for p, _ in cluster])), [f for _, f in cluster])
        for cluster in clusters
    ]


def _order_phases(uid: str, position: float, frames: list[FrameHeader]) -> SliceFrames:
    ipp = np.array([f.position for f in frames])
    if np.abs(ipp - ipp[0]).max() > 1.0:
        raise InconsistentGeometryError(
            f"images at {position:.1f} mm along the normal have different in-plane "
            "positions (ImagePositionPatient differs by more than 1 mm)",
            series_instance_uid=uid,
        )
    ordered = sorted(frames, key=lambda f: f.trigger_time)  # type: ignore[arg-type, return-value]
    times = np.array([f.trigger_time for f in ordered], dtype=float)
    if len(ordered) > 1 and np.ptp(times) <= TRIGGER_TOLERANCE_MS:
        raise MissingTimingError(
            f"all {len(ordered)} images at {position:.1f} mm have the same trigger time "
            f"({times[0]:g} ms): no usable timing",
            series_instance_uid=uid,
        )
    duplicate = np.flatnonzero(np.diff(times) <= TRIGGER_TOLERANCE_MS)
    if duplicate.size:
        t = times[duplicate[0]]
        raise DuplicateFrameError(
            f"{duplicate.size + 1} different images at {position:.1f} mm share trigger time "
            f"{t:g} ms",
            series_instance_uid=uid,
        )
    return SliceFrames(position, tuple(ordered), uid)


def _joinable(a: SeriesLayout, b: SeriesLayout) -> bool:
    fa, fb = a.slices[0].frames[0], b.slices[0].frames[0]
    return (
        a.series.study_instance_uid == b.series.study_instance_uid
        and (fa.rows, fa.columns) == (fb.rows, fb.columns)
        and np.allclose(fa.pixel_spacing, fb.pixel_spacing, rtol=SPACING_TOLERANCE, atol=0)
        and same_orientation(np.array(fa.orientation), np.array(fb.orientation))
        and a.n_phases == b.n_phases
    )


def _merge(group: list[SeriesLayout]) -> CineStack:
    """Join the layouts of one group, later series replacing earlier slice positions."""
    group = sorted(group, key=lambda layout: layout.series.order_key)
    first = group[0].slices[0].frames[0]
    normal = slice_normal(np.array(first.orientation))
    tolerance = SLICE_POSITION_TOLERANCE_MM
    if first.slice_thickness:
        tolerance = min(tolerance, 0.1 * first.slice_thickness)
    slots: list[SliceFrames] = []
    notes: list[str] = []
    for layout in group:
        for slice_ in layout.slices:
            position = position_along_normal(np.array(slice_.image_position), normal)
            slice_ = replace(slice_, position_mm=position)
            match = next(
                (i for i, s in enumerate(slots) if abs(s.position_mm - position) <= tolerance),
                None,
            )
            if match is None:
                slots.append(slice_)
                continue
            replaced = slots[match]
            if replaced.series_instance_uid != slice_.series_instance_uid:
                notes.append(
                    f"slice at {position:.1f} mm of series {replaced.series_instance_uid} "
                    f"replaced by later series {slice_.series_instance_uid}"
                )
            slots[match] = slice_
    slots.sort(key=lambda s: s.position_mm)
    stack = CineStack(
        study_instance_uid=group[0].series.study_instance_uid,
        series=tuple(layout.series for layout in group),
        slices=tuple(slots),
        normal=normal,
        orientation=classify_orientation(np.array(first.orientation)),
    )
    n_for = len(stack.frame_of_reference_uids)
    if n_for > 1:
        notes.append(
            f"{n_for} different FrameOfReferenceUIDs; joined by geometry "
            "(orientation, matrix, spacing)"
        )
    spacing = stack.slice_spacing
    if spacing:
        gaps = np.diff(stack.slice_positions)
        if gaps.max() > 1.5 * spacing:
            notes.append(
                f"irregular slice spacing: gaps up to {gaps.max():.1f} mm "
                f"(median {spacing:.1f} mm)"
            )
    return replace(stack, notes=tuple(notes))


def _flag_phase_count_conflicts(stacks: list[CineStack]) -> list[CineStack]:
    """Fail stacks whose slices are completed by series with another phase count.

    Two stacks of one study and one geometry but different phase counts are separate
    acquisitions when they cover the same slice positions; when one adds positions
    inside (or next to) the other's range, the slices of one stack disagree in phase
    count and neither can be loaded without leaving a gap.
    """
    errors: dict[int, CineSeriesError] = {}
    for i, a in enumerate(stacks):
        for j, b in enumerate(stacks):
            if i == j or a.n_phases == b.n_phases or a.n_slices < b.n_slices:
                continue
            if a.study_instance_uid != b.study_instance_uid or not _same_geometry(a, b):
                continue
            spacing = a.slice_spacing or b.slice_spacing or 0.0
            low = a.slice_positions.min() - 1.5 * spacing
            high = a.slice_positions.max() + 1.5 * spacing
            extra = [
                p for p in b.slice_positions
                if low <= p <= high and np.abs(a.slice_positions - p).min() > 0.5 * spacing
            ]
            if not extra:
                continue
            error = UnequalPhaseCountError(
                f"slices at {', '.join(f'{p:.1f}' for p in extra)} mm have {b.n_phases} "
                f"phases (series {', '.join(b.series_instance_uids)}) where the other "
                f"{a.n_slices} slices have {a.n_phases} "
                f"(series {', '.join(a.series_instance_uids)})",
                series_instance_uid=b.series_instance_uids[0],
            )
            errors.setdefault(i, error)
            errors.setdefault(j, error)
    return [replace(stack, error=errors.get(k)) for k, stack in enumerate(stacks)]


def _same_geometry(a: CineStack, b: CineStack) -> bool:
    fa, fb = a.slices[0].frames[0], b.slices[0].frames[0]
    return (
        (fa.rows, fa.columns) == (fb.rows, fb.columns)
        and np.allclose(fa.pixel_spacing, fb.pixel_spacing, rtol=SPACING_TOLERANCE, atol=0)
        and same_orientation(np.array(fa.orientation), np.array(fb.orientation))
    )
