"""Writing the DICOM Segmentation of the ED myocardium (and cavities) with highdicom (read
back onto a cine stack by :func:`dicom_io.read.seg.read_myocardium_segmentation`).

One binary SEG instance holds one frame per (slice, segment) that is not empty; each
frame references the ED image of its slice, so a viewer overlays it on the cine at ED.
:func:`build_segmentation` takes single-frame ED images (the phantom's truth SEG);
:func:`build_cine_segmentation` takes a loaded stack of any layout (one series, one
series per slice, or one Enhanced MR multi-frame object, whose frames are referenced by
ReferencedFrameNumber) and writes the masks an analysis used. Truth masks are ``MANUAL``
segments; masks found by an algorithm are ``AUTOMATIC`` and carry its identification.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from cinestrain.dicom_io.codes import (
    ANATOMICAL_STRUCTURE,
    HEART,
    LEFT_VENTRICLE,
    MYOCARDIUM,
    RIGHT_VENTRICLE,
    SEGMENTATION_DERIVATION,
    SOURCE_PURPOSE,
    TISSUE,
)
from cinestrain.dicom_io.equipment import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from cinestrain.dicom_io.read.cine import CineSeries
from cinestrain.dicom_io.write.pm import reference_source_frames, source_arguments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentKind:
    """What one mask is: label, category, type and display colour (CIELab)."""

    label: str
    category: Code
    property_type: Code
    colour: tuple[float, float, float]


#: the masks :func:`build_segmentation` knows, in segment-number order
SEGMENT_KINDS: dict[str, SegmentKind] = {
    "myocardium": SegmentKind("LV myocardium", TISSUE, MYOCARDIUM, (55.0, 70.0, 45.0)),
    "lv_cavity": SegmentKind("LV cavity", ANATOMICAL_STRUCTURE, LEFT_VENTRICLE,
                             (60.0, -40.0, 50.0)),
    "rv_cavity": SegmentKind("RV cavity", ANATOMICAL_STRUCTURE, RIGHT_VENTRICLE,
                             (50.0, 10.0, -60.0)),
}


def build_segmentation(
    source_images: Sequence[Dataset],
    masks: dict[str, np.ndarray],
    *,
    series_number: int,
    series_description: str = "myocardium (truth)",
    algorithm: hd.AlgorithmIdentificationSequence | None = None,
    content_label: str = "MYOCARDIUM",
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> hd.seg.Segmentation:
    """A binary SEG of ED masks over the ED image of each slice.

    Parameters
    ----------
    source_images : sequence of pydicom.dataset.Dataset
        The ED image of each slice, single-frame MR images of one series, or of several
        series of one study and frame of reference (one series per slice), in the order
        of the masks' first axis.
    masks : dict of str to numpy.ndarray
        Keys from :data:`SEGMENT_KINDS` (``"myocardium"`` required), each ``[S, H, W]``
        bool on the grid of the source images.
    series_number : int
        SeriesNumber of the new series.
    series_description : str
        SeriesDescription.
    algorithm : highdicom.AlgorithmIdentificationSequence, optional
        The algorithm that found the masks (``AUTOMATIC`` segments); ``None`` marks them
        ``MANUAL`` (truth, e.g. the phantom's).
    content_label : str
        ContentLabel (a DICOM CS: upper case, at most 16 characters).
    series_instance_uid, sop_instance_uid : str, optional
        Derived deterministically from the source images and description when ``None``.

    Returns
    -------
    highdicom.seg.Segmentation
    """
    if not source_images:
        raise ValueError("no source images")
    _check_masks(masks, (len(source_images), int(source_images[0].Rows),
                         int(source_images[0].Columns)))
    if any(int(ds.get("NumberOfFrames", 1)) != 1 for ds in source_images):
        raise TypeError("source_images must be single-frame images (one per slice); "
                        "use build_cine_segmentation for a multi-frame stack")
    seg = _segmentation(
        _sources(source_images), masks, series_number=series_number,
        series_description=series_description, algorithm=algorithm,
        content_label=content_label,
        series_instance_uid=series_instance_uid or _uid(source_images, "series",
                                                        series_description),
        sop_instance_uid=sop_instance_uid or _uid(source_images, "instance",
                                                  series_description),
        tracking_uid=lambda name: _uid(source_images, "tracking", name))
    if len({str(ds.SeriesInstanceUID) for ds in source_images}) > 1:
        _add_frame_references(seg, source_images)
    return seg


def build_cine_segmentation(
    cine: CineSeries,
    images: Sequence[Sequence[Dataset]],
    masks: dict[str, np.ndarray],
    phase: int,
    *,
    series_number: int,
    series_instance_uid: str,
    sop_instance_uid: str,
    series_description: str = "myocardium",
    algorithm: hd.AlgorithmIdentificationSequence | None = None,
    content_label: str = "MYOCARDIUM",
) -> hd.seg.Segmentation:
    """A binary SEG of masks over one phase (normally ED) of a loaded stack, any layout.

    Frames take the geometry of the stack (each slice's position, the orientation and
    spacing) and reference their own source frame: the image of a single-frame layout,
    or the frame (ReferencedFrameNumber) of an Enhanced MR multi-frame object.

    Parameters
    ----------
    cine : CineSeries
        The stack (geometry and source frames).
    images : sequence of sequence of pydicom.dataset.Dataset
        ``[S][T]`` header of each source frame's file (the same dataset repeated for the
        frames of a multi-frame file).
    masks : dict of str to numpy.ndarray
        As for :func:`build_segmentation`, ``[S, H, W]`` bool in the stack's slice order.
    phase : int
        The phase (0-based, acquisition order) whose frames the masks belong to.
    series_number : int
        SeriesNumber of the new series.
    series_instance_uid, sop_instance_uid : str
        UIDs of the new series and instance.
    series_description : str
        SeriesDescription.
    algorithm : highdicom.AlgorithmIdentificationSequence, optional
        As for :func:`build_segmentation`.
    content_label : str
        ContentLabel.

    Returns
    -------
    highdicom.seg.Segmentation
    """
    if not isinstance(cine, CineSeries):
        raise TypeError(f"cine must be a CineSeries, got {type(cine).__name__}")
    if not 0 <= int(phase) < cine.n_phases:
        raise ValueError(f"phase must be in [0, {cine.n_phases}), got {phase}")
    if len(images) != cine.n_slices or any(len(row) != cine.n_phases for row in images):
        raise ValueError(f"images must be [S][T] = [{cine.n_slices}][{cine.n_phases}] "
                         "datasets")
    _check_masks(masks, (cine.n_slices, *cine.shape[2:]))
    seg = _segmentation(
        source_arguments(cine, images, phase), masks, series_number=series_number,
        series_description=series_description, algorithm=algorithm,
        content_label=content_label, series_instance_uid=series_instance_uid,
        sop_instance_uid=sop_instance_uid,
        tracking_uid=lambda name: generate_uid(entropy_srcs=[
            sop_instance_uid, "seg", "tracking", name]))
    reference_source_frames(seg, cine, phase, SEGMENTATION_DERIVATION)
    return seg


def _check_masks(masks: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
    if "myocardium" not in masks:
        raise ValueError("masks must contain 'myocardium'")
    unknown = sorted(set(masks) - set(SEGMENT_KINDS))
    if unknown:
        raise ValueError(f"unknown mask kinds {unknown}; known: {sorted(SEGMENT_KINDS)}")
    for name, mask in masks.items():
        if np.shape(mask) != shape:
            raise ValueError(f"mask {name!r} has shape {np.shape(mask)}, expected {shape}")


def _segmentation(
    sources: dict[str, object],
    masks: dict[str, np.ndarray],
    *,
    series_number: int,
    series_description: str,
    algorithm: hd.AlgorithmIdentificationSequence | None,
    content_label: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    tracking_uid: Callable[[str], str],
) -> hd.seg.Segmentation:
    """The SEG of checked ``masks`` over highdicom's source and geometry arguments."""
    names = [k for k in SEGMENT_KINDS if k in masks]
    descriptions = []
    for number, name in enumerate(names, start=1):
        kind = SEGMENT_KINDS[name]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=kind.label,
            segmented_property_category=kind.category,
            segmented_property_type=kind.property_type,
            algorithm_type=(hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC if algorithm
                            else hd.seg.SegmentAlgorithmTypeValues.MANUAL),
            algorithm_identification=algorithm,
            tracking_uid=tracking_uid(name),
            tracking_id=f"{kind.label} (ED)",
            anatomic_regions=[HEART],
            display_color=hd.color.CIELabColor(*kind.colour),
        ))
    pixels = np.stack([np.asarray(masks[k], dtype=bool) for k in names], axis=-1)
    seg = hd.seg.Segmentation(
        **sources,
        pixel_array=pixels.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid,
        series_number=series_number,
        sop_instance_uid=sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER_MODEL_NAME,
        software_versions=SOFTWARE_VERSIONS,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        content_label=content_label,
        content_description="ED myocardium and cavities",
        series_description=series_description,
    )
    log.debug("built SEG %s: %d frames, segments %s", seg.SOPInstanceUID,
             len(seg.PerFrameFunctionalGroupsSequence), names)
    return seg


def _sources(source_images: Sequence[Dataset]) -> dict[str, object]:
    """highdicom's source arguments.

    One series: the images themselves define the planes. Several series (one per slice,
    as scanners often send cines): highdicom takes one series as ``source_images``, so the
    others become ``further_source_images`` and the planes are given explicitly (from
    each image's position, the shared orientation and spacing); highdicom then matches
    every frame to its own source image.
    """
    series = {str(ds.SeriesInstanceUID) for ds in source_images}
    if len(series) == 1:
        return {"source_images": list(source_images)}
    if len({str(ds.StudyInstanceUID) for ds in source_images}) != 1:
        raise ValueError("source images from several series must belong to one study")
    first = str(source_images[0].SeriesInstanceUID)
    own = [ds for ds in source_images if str(ds.SeriesInstanceUID) == first]
    further = [ds for ds in source_images if str(ds.SeriesInstanceUID) != first]
    ref = source_images[0]
    return {
        "source_images": own,
        "further_source_images": further,
        "plane_positions": [
            hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                     [float(v) for v in ds.ImagePositionPatient])
            for ds in source_images
        ],
        "plane_orientation": hd.PlaneOrientationSequence(
            hd.CoordinateSystemNames.PATIENT, [float(v) for v in ref.ImageOrientationPatient]),
        "pixel_measures": hd.PixelMeasuresSequence(
            [float(v) for v in ref.PixelSpacing], float(ref.SliceThickness)),
    }


def _add_frame_references(seg: hd.seg.Segmentation, source_images: Sequence[Dataset]) -> None:
    """Reference each frame's own source image (same plane position).

    highdicom matches frames to source images one series at a time and needs every plane
    in that series, so with one series per slice it leaves the (type 2) Derivation Image
    Sequence empty; this fills it in.
    """
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in source_images])
    for frame in seg.PerFrameFunctionalGroupsSequence:
        pos = np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        match = int(np.argmin(np.linalg.norm(positions - pos, axis=1)))
        if np.linalg.norm(positions[match] - pos) > 1e-3:
            raise ValueError(f"no source image at frame position {pos.tolist()}")
        source = Dataset()
        source.ReferencedSOPClassUID = source_images[match].SOPClassUID
        source.ReferencedSOPInstanceUID = source_images[match].SOPInstanceUID
        source.PurposeOfReferenceCodeSequence = [hd.sr.CodedConcept.from_code(SOURCE_PURPOSE)]
        source.SpatialLocationsPreserved = "YES"
        derivation = Dataset()
        derivation.DerivationCodeSequence = [
            hd.sr.CodedConcept.from_code(SEGMENTATION_DERIVATION)]
        derivation.SourceImageSequence = [source]
        frame.DerivationImageSequence = [derivation]


def _uid(source_images: Sequence[Dataset], *parts: str) -> str:
    """A UID derived from the source SOP instance UIDs and ``parts``."""
    return generate_uid(entropy_srcs=[*(str(ds.SOPInstanceUID) for ds in source_images),
                                      "seg", *parts])
