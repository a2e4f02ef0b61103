"""Deterministic UIDs of result objects.

A result's series and instance UIDs are derived (pydicom's ``generate_uid`` with entropy
sources, i.e. a hash under pydicom's UID root) from the source stack's series UIDs, the
kind of output and the model's identity. Reprocessing the same stack with the same model
therefore writes the same UIDs, and a PACS replaces the earlier results instead of
keeping two copies; a new model version gives new series beside the old ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.uid import generate_uid


@dataclass(frozen=True)
class ResultUIDs:
    """UIDs of every object derived from one stack by one model.

    Parameters
    ----------
    source_series : sequence of str
        SeriesInstanceUIDs of the source stack (order does not matter).
    model_version : str
        The model's identity (name, version, variant), e.g.
        ``"cinestrain motion model 0.1.0 gru"``.
    """

    source_series: tuple[str, ...]
    model_version: str

    def __init__(self, source_series: Sequence[str], model_version: str) -> None:
        if isinstance(source_series, str):
            raise TypeError("source_series must be a sequence of UIDs, not one string")
        series = tuple(sorted({str(uid) for uid in source_series}))
        if not series or any(not uid for uid in series):
            raise ValueError("source_series must hold at least one non-empty UID")
        if not isinstance(model_version, str) or not model_version:
            raise ValueError("model_version must be a non-empty string")
        object.__setattr__(self, "source_series", series)
        object.__setattr__(self, "model_version", model_version)

    def _uid(self, *parts: str) -> str:
        return generate_uid(entropy_srcs=["cinestrain", *self.source_series,
                                          self.model_version, *parts])

    def series(self, kind: str) -> str:
        """SeriesInstanceUID of the result series ``kind`` (e.g. ``"sr"``)."""
        if not kind:
            raise ValueError("kind must be a non-empty string")
        return self._uid("series", kind)

    def instance(self, kind: str, index: int = 0) -> str:
        """SOPInstanceUID of instance ``index`` of series ``kind``."""
        if not kind:
            raise ValueError("kind must be a non-empty string")
        if int(index) < 0:
            raise ValueError(f"index must be >= 0, got {index}")
        return self._uid("instance", kind, str(int(index)))
