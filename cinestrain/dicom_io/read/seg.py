"""Reading a DICOM Segmentation of the ED myocardium (and cavities) onto a cine stack.

:func:`read_myocardium_segmentation` finds the myocardium (and, when present, the LV and
RV cavities) by segment property code or label, maps each frame to the stack's (slice,
phase) through its source image reference, and refuses a SEG that does not fit the stack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import SegmentationStorage

from cinestrain.dicom_io.codes import (
    LEFT_VENTRICLE,
    MYOCARDIUM,
    RIGHT_VENTRICLE,
)
from cinestrain.dicom_io.read.cine import CineSeries

log = logging.getLogger(__name__)

#: SegmentLabel words that name the myocardium when the property code does not
_MYOCARDIUM_WORDS = ("myocard", "lv wall", "left ventricular wall", "lv muscle")
_LV_CAVITY_WORDS = ("lv cavity", "lv blood", "left ventricle cavity", "left ventricular cavity",
                    "lv endo", "lv blood pool")
_RV_CAVITY_WORDS = ("rv cavity", "rv blood", "right ventricle", "right ventricular")


class SegmentationReadError(ValueError):
    """A DICOM Segmentation that cannot give the myocardium of a given cine stack."""


@dataclass(frozen=True)
class SegMasks:
    """ED masks read from a DICOM Segmentation, on the cine's grid.

    Attributes
    ----------
    myocardium : numpy.ndarray
        ``[S, H, W]`` bool, in the cine's slice order.
    lv_cavity, rv_cavity : numpy.ndarray or None
        ``[S, H, W]`` bool when the SEG has such a segment.
    phase : int
        The cine phase whose frames the SEG references (0-based, acquisition order).
    sop_instance_uid : str
        The SEG instance.
    labels : dict of str to str
        Mask kind -> the SegmentLabel it was read from.
    """

    myocardium: np.ndarray
    lv_cavity: np.ndarray | None
    rv_cavity: np.ndarray | None
    phase: int
    sop_instance_uid: str
    labels: dict[str, str]


def _segment_kind(item: Dataset) -> str | None:
    """``"myocardium"``, ``"lv_cavity"``, ``"rv_cavity"`` or None for one SegmentSequence
    item (property type code first, then the label)."""
    label = str(item.get("SegmentLabel", "")).lower()
    codes_ = [str(c.CodeValue) for c in item.get("SegmentedPropertyTypeCodeSequence", [])
              if "CodeValue" in c]
    if MYOCARDIUM.value in codes_ or any(w in label for w in _MYOCARDIUM_WORDS):
        return "myocardium"
    if any(w in label for w in _LV_CAVITY_WORDS) or (
            LEFT_VENTRICLE.value in codes_ and "wall" not in label):
        return "lv_cavity"
    if RIGHT_VENTRICLE.value in codes_ or any(w in label for w in _RV_CAVITY_WORDS):
        return "rv_cavity"
    return None


def _frame_reference(frame: Dataset) -> tuple[str, int | None] | None:
    """(referenced SOP instance UID, frame number) of a SEG frame's source image."""
    for derivation in frame.get("DerivationImageSequence", []):
        for source in derivation.get("SourceImageSequence", []):
            if "ReferencedSOPInstanceUID" in source:
                numbers = source.get("ReferencedFrameNumber")
                if numbers is not None and not isinstance(numbers, int):
                    numbers = numbers[0] if len(numbers) else None
                return str(source.ReferencedSOPInstanceUID), (
                    int(numbers) if numbers is not None else None)
    return None


def read_myocardium_segmentation(seg: str | Path | Dataset, cine: CineSeries) -> SegMasks:
    """The myocardium (and cavities) of a DICOM Segmentation over a cine's frames.

    Frames are matched to the cine by the source image each one references
    (ReferencedSOPInstanceUID, and ReferencedFrameNumber for multi-frame sources). All of
    them must reference one phase of the stack (normally ED).

    Parameters
    ----------
    seg : str, pathlib.Path or pydicom.dataset.Dataset
        The Segmentation object.
    cine : CineSeries
        The stack the masks belong to.

    Returns
    -------
    SegMasks

    Raises
    ------
    SegmentationReadError
        Not a Segmentation, no myocardium segment, frames that reference no image of the
        stack, or of several phases, or of a different matrix.
    """
    ds = seg if isinstance(seg, Dataset) else dcmread(seg)
    uid = str(ds.get("SOPInstanceUID", "?"))
    if str(ds.get("SOPClassUID", "")) != SegmentationStorage:
        raise SegmentationReadError(f"{uid} is not a DICOM Segmentation")
    kinds: dict[int, str] = {}
    labels: dict[str, str] = {}
    for item in ds.get("SegmentSequence", []):
        kind = _segment_kind(item)
        if kind is not None and kind not in labels:
            kinds[int(item.SegmentNumber)] = kind
            labels[kind] = str(item.get("SegmentLabel", ""))
    if "myocardium" not in labels:
        raise SegmentationReadError(
            f"SEG {uid} has no myocardium segment (SCT 74281007 or a label naming the "
            "myocardium / LV wall)")
    s_count, t_count, h, w = cine.shape
    if (int(ds.Rows), int(ds.Columns)) != (h, w):
        raise SegmentationReadError(
            f"SEG {uid} is {ds.Rows}x{ds.Columns}, the cine {h}x{w}")
    where = {(f.sop_instance_uid, f.frame_number): (s, t)
             for s, row in enumerate(cine.sources) for t, f in enumerate(row)}
    pixels = np.asarray(ds.pixel_array)
    if pixels.ndim == 2:
        pixels = pixels[None]
    threshold = 0.5 * float(ds.get("MaximumFractionalValue", 1)) if str(
        ds.get("SegmentationType", "BINARY")) == "FRACTIONAL" else 0.5
    masks = {k: np.zeros((s_count, h, w), bool) for k in labels}
    phases: set[int] = set()
    matched = 0
    for index, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        ref = _frame_reference(frame)
        if number not in kinds or ref is None:
            continue
        # a single-frame source has no frame number; frame 1 of it is itself
        key = next((k for k in (ref, (ref[0], None), (ref[0], 1)) if k in where), None)
        if key is None:
            continue
        s, t = where[key]
        phases.add(t)
        matched += 1
        masks[kinds[number]][s] |= pixels[index] > threshold
    if matched == 0:
        raise SegmentationReadError(
            f"SEG {uid} references no image of the cine stack of series "
            f"{', '.join(cine.series_instance_uids)}")
    if len(phases) > 1:
        raise SegmentationReadError(
            f"SEG {uid} references several phases {sorted(phases)} of the stack; one expected")
    log.info("read SEG %s: segments %s at phase %d", uid, sorted(labels), next(iter(phases)))
    return SegMasks(masks["myocardium"], masks.get("lv_cavity"), masks.get("rv_cavity"),
                    next(iter(phases)), uid, labels)
