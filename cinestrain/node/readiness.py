"""From the spooled files of one study to cine stacks, and when a stack is ready.

Assembly is :func:`dicom_io.scan_dicom` plus :func:`dicom_io.find_stacks` on the study's
files (the same rules as ``cinestrain analyze``); this module only decides, per stack,
whether it is complete, stable, or still waiting, and which series are not cine at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cinestrain.config.schema import SchedulerSection
from cinestrain.dicom_io.read.errors import NotAnImageError
from cinestrain.dicom_io.read.scan import scan_dicom
from cinestrain.dicom_io.read.stacks import CineStack, find_stacks
from cinestrain.pipeline.guards import header_refusal


@dataclass(frozen=True)
class StackCandidate:
    """A stack found among a study's files.

    Attributes
    ----------
    series_uids
        The series it is assembled from.
    paths
        Files of its frames (the job's inputs), sorted.
    sop_instance_uids
        Instances of its frames, sorted.
    shape
        ``"SxTxHxW"``.
    complete
        Every series says how many phases it has (``CardiacNumberOfImages``) and every
        slice has them.
    problem
        Why it cannot be analysed (inconsistent; or refused by
        :func:`pipeline.guards.header_refusal`: a single slice, axial, coronal or sagittal
        planes), or None.
    """

    series_uids: tuple[str, ...]
    paths: tuple[Path, ...]
    sop_instance_uids: tuple[str, ...]
    shape: str
    complete: bool
    problem: str | None

    @property
    def digest(self) -> str:
        """Identifies exactly which instances the stack holds (a late slice changes it)."""
        return inputs_digest(self.sop_instance_uids)


@dataclass(frozen=True)
class StudyAssessment:
    """Stacks of a study, and its series that are not part of any stack."""

    candidates: tuple[StackCandidate, ...]
    not_images: tuple[tuple[str, str], ...]
    """(series UID, reason): objects that are not MR images (SEG, SR, ...)"""
    unusable: tuple[tuple[str, str], ...]
    """(series UID, reason): MR series that do not lay out as a cine (yet)"""


def inputs_digest(sop_instance_uids: Sequence[str]) -> str:
    """A short hash of a set of SOP Instance UIDs."""
    return hashlib.sha256("\n".join(sorted(sop_instance_uids)).encode()).hexdigest()[:24]


def _candidate(stack: CineStack) -> StackCandidate:
    frames = [f for s in stack.slices for f in s.frames]
    expected = {series.cardiac_number_of_images for series in stack.series}
    complete = (
        stack.error is None
        and None not in expected
        and all(len(s.frames) == n for s in stack.slices for n in expected)
    )
    problem = None
    if stack.error is not None:
        problem = stack.error.problem
    else:
        # one slice, or axial/coronal/sagittal planes: refused from the headers (the rule
        # on the LV axis the images show is the worker's, in pipeline.run)
        problem = header_refusal(stack.n_slices, stack.orientation)
    return StackCandidate(
        series_uids=tuple(sorted(stack.series_instance_uids)),
        paths=tuple(sorted({f.path for f in frames})),
        sop_instance_uids=tuple(sorted({f.sop_instance_uid for f in frames})),
        shape=f"{stack.n_slices}x{stack.n_phases}x{stack.rows}x{stack.columns}",
        complete=complete,
        problem=problem,
    )


def assess_study(files: Sequence[Path]) -> StudyAssessment:
    """Scan a study's spooled files (headers only) and find its stacks."""
    search = find_stacks(scan_dicom(list(files)))
    candidates = tuple(_candidate(stack) for stack in search.stacks)
    in_stacks = {uid for c in candidates for uid in c.series_uids}
    not_images: list[tuple[str, str]] = []
    unusable: list[tuple[str, str]] = []
    for layout in search.layouts:
        uid = layout.series.series_instance_uid
        if uid in in_stacks or layout.error is None:
            continue
        target = not_images if isinstance(layout.error, NotAnImageError) else unusable
        target.append((uid, layout.error.problem))
    for series in search.scan.series:
        if not series.is_mr_image and series.series_instance_uid not in dict(not_images):
            names = ", ".join(series.sop_class_names) or "no SOP class"
            not_images.append((series.series_instance_uid, f"not MR images ({names})"))
    return StudyAssessment(candidates, tuple(not_images), tuple(unusable))


def readiness(candidate: StackCandidate, quiet_s: float, rules: SchedulerSection) -> str | None:
    """Whether a stack becomes a job now, and by which rule.

    Parameters
    ----------
    candidate
        The stack.
    quiet_s
        Seconds since the study's latest instance.
    rules
        ``complete_grace_seconds`` and ``series_stable_seconds``.

    Returns
    -------
    str or None
        ``"complete"`` (every slice has its phases and the grace period passed),
        ``"stable"`` (no new instance for the stable period), or None (wait).
    """
    if candidate.complete and quiet_s >= rules.complete_grace_seconds:
        return "complete"
    if quiet_s >= rules.series_stable_seconds:
        return "stable"
    return None
