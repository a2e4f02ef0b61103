"""Exceptions for input that cannot form a cine series.

Every error is a :class:`CineSeriesError` (a :class:`ValueError`) whose message names the
series (SeriesInstanceUID) or file and what is wrong with it; ``series_instance_uid`` and
``path`` carry the same for programs.
"""

from __future__ import annotations

from pathlib import Path


class CineSeriesError(ValueError):
    """Input that cannot be read as a cine series.

    Parameters
    ----------
    message : str
        What is wrong (the series UID or path is prepended when given).
    series_instance_uid : str, optional
        The series concerned.
    path : str or pathlib.Path, optional
        The file concerned.
    """

    def __init__(
        self,
        message: str,
        *,
        series_instance_uid: str | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.series_instance_uid = series_instance_uid
        self.path = Path(path) if path is not None else None
        self.problem = message
        where = []
        if series_instance_uid:
            where.append(f"series {series_instance_uid}")
        if path is not None:
            where.append(f"file {path}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)

    @property
    def kind(self) -> str:
        """The error's class name, a stable key for reports."""
        return type(self).__name__


class UnreadableFileError(CineSeriesError):
    """Not a DICOM file, or a truncated or corrupt one."""


class NotDicomError(UnreadableFileError):
    """A file that is not DICOM at all (no ``DICM`` prefix): notes, contours, archives."""


class NotAnImageError(CineSeriesError):
    """A DICOM object that is not an MR image (SR, SEG, presentation state, ...)."""


class MissingTimingError(CineSeriesError):
    """No usable trigger time (``TriggerTime`` / ``NominalCardiacTriggerDelayTime``)."""


class InconsistentGeometryError(CineSeriesError):
    """Matrix, pixel spacing or positions disagree between images that belong together."""


class MixedOrientationError(CineSeriesError):
    """Images of one series lie in planes of different orientation."""


class TooFewPhasesError(CineSeriesError):
    """Fewer cardiac phases than a cine needs."""


class UnequalPhaseCountError(CineSeriesError):
    """Slices of one stack have different numbers of phases that cannot be reconciled."""


class DuplicateFrameError(CineSeriesError):
    """Two different images of one series claim the same slice and trigger time."""


class NoCineStackError(CineSeriesError):
    """Nothing in the input forms a cine stack."""
