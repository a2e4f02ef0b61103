"""DICOM in and out: ``read/`` (cine stacks, SEGs) and ``write/`` (the results).

Reading: :func:`load_cine` finds the cine stack in files or a folder and returns a
:class:`CineSeries`; :func:`scan_dicom` and :func:`find_stacks` are the steps it takes,
for tools that only look (``cinestrain inspect``); they are re-exported here. Writing
(:mod:`dicom_io.write.results` and one module per object) takes plain arrays and the
``report.json`` document, never the analysis classes. ``geometry``, ``codes`` and
``equipment`` are shared by both.
"""

from cinestrain.dicom_io.geometry import OrientationClass, classify_orientation
from cinestrain.dicom_io.read.cine import CineSeries, SourceFrame, load_cine, load_stack
from cinestrain.dicom_io.read.errors import (
    CineSeriesError,
    DuplicateFrameError,
    InconsistentGeometryError,
    MissingTimingError,
    MixedOrientationError,
    NoCineStackError,
    NotAnImageError,
    NotDicomError,
    TooFewPhasesError,
    UnequalPhaseCountError,
    UnreadableFileError,
)
from cinestrain.dicom_io.read.scan import PatientStudy, ScanProblem, ScanResult, scan_dicom
from cinestrain.dicom_io.read.stacks import CineStack, SeriesLayout, StackSearch, find_stacks

__all__ = [
    "CineSeries",
    "CineSeriesError",
    "CineStack",
    "DuplicateFrameError",
    "InconsistentGeometryError",
    "MissingTimingError",
    "MixedOrientationError",
    "NoCineStackError",
    "NotAnImageError",
    "NotDicomError",
    "OrientationClass",
    "PatientStudy",
    "ScanProblem",
    "ScanResult",
    "SeriesLayout",
    "SourceFrame",
    "StackSearch",
    "TooFewPhasesError",
    "UnequalPhaseCountError",
    "UnreadableFileError",
    "classify_orientation",
    "find_stacks",
    "load_cine",
    "load_stack",
    "scan_dicom",
]
