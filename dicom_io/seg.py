"""DICOM Segmentation of the ED myocardium (and cavities), built with highdicom.

One binary SEG instance holds one frame per (slice, segment) that is not empty; each
frame references the ED image of its slice (the ``source_images``), so a viewer overlays
it on the cine at ED. Truth masks (the phantom's) are ``MANUAL`` segments; masks found
by an algorithm are ``AUTOMATIC`` and carry its identification.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from dicom_io.equipment import MANUFACTURER, MANUFACTURER_MODEL_NAME, SOFTWARE_VERSIONS

log = logging.getLogger(__name__)

#: SCT 74281007 "Myocardium" (segmented property type of the myocardium)
MYOCARDIUM = Code("74281007", "SCT", "Myocardium")
#: SCT 87878005 "Left ventricle" (type of the LV cavity segment, labelled as cavity)
LEFT_VENTRICLE = codes.SCT.LeftVentricle
#: SCT 53085002 "Right ventricle" (type of the RV cavity segment, labelled as cavity)
RIGHT_VENTRICLE = Code("53085002", "SCT", "Right ventricle")
#: SCT 85756007 "Tissue" (category of the myocardium)
TISSUE = codes.SCT.Tissue
#: SCT 91723000 "Anatomical Structure" (category of the cavities)
ANATOMICAL_STRUCTURE = codes.SCT.AnatomicalStructure
#: SCT 80891009 "Heart" (anatomic region of every segment)
HEART = codes.SCT.Heart
#: DCM 113076 "Segmentation" (derivation of each frame from its source image)
SEGMENTATION_DERIVATION = codes.cid7203.SegmentationImageDerivation
#: DCM 121322 "Source image for image processing operation"
SOURCE_PURPOSE = codes.cid7202.SourceImageForImageProcessingOperation

#: device serial number written into SEG objects
DEVICE_SERIAL_NUMBER = "CINESTRAIN"


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
    if "myocardium" not in masks:
        raise ValueError("masks must contain 'myocardium'")
    unknown = sorted(set(masks) - set(SEGMENT_KINDS))
    if unknown:
        raise ValueError(f"unknown mask kinds {unknown}; known: {sorted(SEGMENT_KINDS)}")
    n = len(source_images)
    shape = (n, int(source_images[0].Rows), int(source_images[0].Columns))
    for name, mask in masks.items():
        if np.shape(mask) != shape:
            raise ValueError(f"mask {name!r} has shape {np.shape(mask)}, expected {shape}")
    if any(int(ds.get("NumberOfFrames", 1)) != 1 for ds in source_images):
        raise TypeError("source_images must be single-frame images (one per slice)")
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
            tracking_uid=_uid(source_images, "tracking", name),
            tracking_id=f"{kind.label} (ED)",
            anatomic_regions=[HEART],
            display_color=hd.color.CIELabColor(*kind.colour),
        ))
    pixels = np.stack([np.asarray(masks[k], dtype=bool) for k in names], axis=-1)
    seg = hd.seg.Segmentation(
        **_sources(source_images),
        pixel_array=pixels.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=series_instance_uid or _uid(source_images, "series",
                                                        series_description),
        series_number=series_number,
        sop_instance_uid=sop_instance_uid or _uid(source_images, "instance",
                                                  series_description),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER_MODEL_NAME,
        software_versions=SOFTWARE_VERSIONS,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        content_label=content_label,
        content_description="ED myocardium and cavities",
        series_description=series_description,
    )
    if len({str(ds.SeriesInstanceUID) for ds in source_images}) > 1:
        _add_frame_references(seg, source_images)
    log.info("built SEG %s over %d ED images, segments %s", seg.SOPInstanceUID, n, names)
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
