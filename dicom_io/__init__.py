"""Reading cine MR series (classic and enhanced multi-frame) and writing DICOM results.

Reading: :func:`load_cine` finds the cine stack in files or a folder and returns a
:class:`CineSeries`; :func:`scan_dicom` and :func:`find_stacks` are the steps it takes,
for tools that only look (``cinestrain inspect``). Writing a cine study as MR DICOM (for
phantoms and tests): :class:`CineStudy`, :func:`write_cine_classic`,
:func:`write_cine_enhanced`.
"""

from dicom_io.cine import CineSeries, SourceFrame, load_cine, load_stack
from dicom_io.errors import (
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
from dicom_io.geometry import OrientationClass, classify_orientation
from dicom_io.mr import CineStudy, write_cine_classic, write_cine_enhanced
from dicom_io.scan import PatientStudy, ScanProblem, ScanResult, scan_dicom
from dicom_io.stacks import CineStack, SeriesLayout, StackSearch, find_stacks

__all__ = [
    "CineSeries",
    "CineSeriesError",
    "CineStack",
    "CineStudy",
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
    "write_cine_classic",
    "write_cine_enhanced",
]
