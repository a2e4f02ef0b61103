"""The strain report as a TID 1500 Measurement Report (Comprehensive SR, highdicom).

Content, all values exactly those of ``report.json``:

- root DCM 126000 "Imaging Measurement Report", a device observer (cinestrain), procedure
  SCT 241620005 "Cardiac MRI", an image library (the ED images), and every source image
  as evidence;
- one measurement group for the global values (finding site SCT 49848007 "Left Ventricle
  Myocardium"), one per AHA segment (finding site from CID 3717), and one for LV
  function (EDV, ESV, stroke volume, EF, mass), each with a tracking identifier and UID
  and the algorithm's name, version and parameters (pairing, temporal unit, weights and
  the strain convention, stated in words), stated once per group;
- in each strain group: peak radial strain (DCM 130675, derivation "Maximum"), peak
  circumferential strain (DCM 130677, derivation "Minimum"), both in UCUM ``%``, and the
  times to peak in ``ms`` (private concepts :data:`dicom_io.codes.TIME_TO_PEAK_RADIAL` /
  ``..._CIRCUMFERENTIAL``: PS3.16 defines a time to peak for longitudinal strain only).

With :func:`measured_regions`, the global, segment and function groups are volumetric ROI
groups (TID 1411): their image regions outline, on the ED image of each slice, the pixels
the values are means over (the ED myocardium, the AHA segment, the ED LV cavity), so that
viewers that draw TID 1500 measurements on images put the values on the image (OHIF 3
shows a group only when it has a SCOORD).

A value that is null in ``report.json`` (a segment no slice covers, volumes that could
not be computed) has no measurement: a NUM item must hold a number, and the report's
``warnings`` say why it is missing. A group left with no measurement is not written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import cast

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes as dcm_codes
from pydicom.sr.coding import Code

from cinestrain.dicom_io import codes
from cinestrain.dicom_io.equipment import (
    DEVICE_OBSERVER_UID,
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from cinestrain.dicom_io.write.contours import mask_outlines
from cinestrain.dicom_io.write.uids import ResultUIDs

log = logging.getLogger(__name__)

#: report.json curve key -> (concept, unit, derivation) of the strain measurements
STRAIN_MEASUREMENTS: dict[str, tuple[Code, Code, Code | None]] = {
    "peak_radial_strain_pct": (codes.RADIAL_STRAIN, codes.PERCENT, codes.MAXIMUM),
    "peak_circumferential_strain_pct": (codes.CIRCUMFERENTIAL_STRAIN, codes.PERCENT,
                                        codes.MINIMUM),
    "time_to_peak_radial_ms": (codes.TIME_TO_PEAK_RADIAL, codes.MILLISECOND, None),
    "time_to_peak_circumferential_ms": (codes.TIME_TO_PEAK_CIRCUMFERENTIAL,
                                        codes.MILLISECOND, None),
}
#: report.json ``function`` key -> (concept, unit, finding site)
FUNCTION_MEASUREMENTS: dict[str, tuple[Code, Code, Code]] = {
    "edv_ml": (codes.LV_ED_VOLUME, codes.MILLILITER, codes.LEFT_VENTRICLE),
    "esv_ml": (codes.LV_ES_VOLUME, codes.MILLILITER, codes.LEFT_VENTRICLE),
    "sv_ml": (codes.STROKE_VOLUME, codes.MILLILITER, codes.LEFT_VENTRICLE),
    "ef_pct": (codes.LV_EJECTION_FRACTION, codes.PERCENT, codes.LEFT_VENTRICLE),
    "mass_g": (codes.LV_MASS, codes.GRAM, codes.LV_MYOCARDIUM),
}
#: tracking identifiers of the groups that are not AHA segments
GLOBAL_TRACKING_ID = "global LV myocardium"
FUNCTION_TRACKING_ID = "LV function"

SERIES_DESCRIPTION = "cinestrain report"


def _number(value: object, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"report value {key!r} must be a number or null, got {value!r}")
    return float(value)


def _check_report(report: Mapping[str, object]) -> None:
    missing = [k for k in ("model", "global", "segments", "function", "strain_convention")
               if k not in report]
    if missing:
        raise ValueError(f"report lacks {missing} (not a report.json document)")
    model = report["model"]
    if not isinstance(model, Mapping) or not model.get("name") or not model.get("version"):
        raise ValueError("report['model'] must name the model and its version")
    segments = report["segments"]
    if not isinstance(segments, Mapping) or set(segments) != {str(k) for k in range(1, 17)}:
        raise ValueError("report['segments'] must have the keys '1' to '16'")


def algorithm_identification(report: Mapping[str, object]) -> hd.sr.AlgorithmIdentification:
    """TID 4019 of the model that produced ``report`` (report.json's ``model``), with the
    strain convention among its parameters."""
    model = cast(Mapping[str, object], report["model"])
    parameters = [f"{k}={model[k]}" for k in ("pairing", "temporal", "weights", "passes",
                                              "recentre_rounds")
                  if k in model]
    parameters.append(f"strain convention: {report['strain_convention']}")
    if report.get("myocardium_source"):
        parameters.append(f"ED myocardium from: {report['myocardium_source']}")
    return hd.sr.AlgorithmIdentification(name=str(model["name"]), version=str(model["version"]),
                                         parameters=parameters)


def _group(tracking_id: str, tracking_uid: str, site: Code,
           algorithm: hd.sr.AlgorithmIdentification, measurements: list[hd.sr.Measurement],
           regions: Sequence[hd.sr.ImageRegion]
           ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """A measurement group: TID 1411 over ``regions`` when there are any, else TID 1501."""
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=tracking_uid,
                                                        identifier=tracking_id),
        "finding_sites": [hd.sr.FindingSite(site)],
        "algorithm_id": algorithm,
        "measurements": measurements,
    }
    if regions:
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_regions=list(regions), **common)
    return hd.sr.MeasurementsAndQualitativeEvaluations(**common)


def _strain_group(curves: Mapping[str, object], site: Code, tracking_id: str,
                  tracking_uid: str, algorithm: hd.sr.AlgorithmIdentification,
                  regions: Sequence[hd.sr.ImageRegion] = ()
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    measurements = []
    for key, (concept, unit, derivation) in STRAIN_MEASUREMENTS.items():
        value = _number(curves.get(key), key)
        if value is None:
            continue
        measurements.append(hd.sr.Measurement(name=concept, value=value, unit=unit,
                                              derivation=derivation))
    if not measurements:
        log.info("%s: no values in report.json, no measurement group", tracking_id)
        return None
    return _group(tracking_id, tracking_uid, site, algorithm, measurements, regions)


def _function_group(function: Mapping[str, object] | None, tracking_uid: str,
                    algorithm: hd.sr.AlgorithmIdentification,
                    regions: Sequence[hd.sr.ImageRegion] = ()
                    ) -> hd.sr.MeasurementsAndQualitativeEvaluations | None:
    if not function:
        return None
    measurements = []
    for key, (concept, unit, site) in FUNCTION_MEASUREMENTS.items():
        value = _number(function.get(key), key)
        if value is not None:
            measurements.append(hd.sr.Measurement(
                name=concept, value=value, unit=unit, finding_sites=[hd.sr.FindingSite(site)]))
    if not measurements:
        return None
    return _group(FUNCTION_TRACKING_ID, tracking_uid, codes.LEFT_VENTRICLE, algorithm,
                  measurements, regions)


def _functional_group(ds: Dataset, frame_number: int, keyword: str) -> Dataset:
    """The item of functional group ``keyword`` of one frame (per-frame before shared)."""
    for groups in (ds.PerFrameFunctionalGroupsSequence[frame_number - 1],
                   ds.SharedFunctionalGroupsSequence[0]):
        if groups.get(keyword):
            return groups[keyword][0]
    raise ValueError(f"{ds.SOPInstanceUID} frame {frame_number} has no {keyword}")


def _frame_view(ds: Dataset, frame_number: int) -> Dataset:
    """One frame of a multi-frame image as highdicom's image library reads an image
    (TID 1604 descriptors): the frame's position, orientation and pixel measures at the
    top level, beside the image's identity."""
    view = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
                    "FrameOfReferenceUID", "Modality", "Rows", "Columns"):
        if keyword in ds:
            setattr(view, keyword, ds[keyword].value)
    view.ImagePositionPatient = _functional_group(
        ds, frame_number, "PlanePositionSequence").ImagePositionPatient
    view.ImageOrientationPatient = _functional_group(
        ds, frame_number, "PlaneOrientationSequence").ImageOrientationPatient
    measures = _functional_group(ds, frame_number, "PixelMeasuresSequence")
    view.PixelSpacing = measures.PixelSpacing
    view.SliceThickness = measures.get("SliceThickness")
    return view


def _library(images: list[Dataset], frames: Sequence[int | None] | None
             ) -> tuple[list[Dataset], list[int | None]]:
    """The image library's entries (frames of multi-frame images as :func:`_frame_view`)
    and the frame number of each."""
    frames = [None] * len(images) if frames is None else list(frames)
    if len(frames) != len(images):
        raise ValueError(f"library_frames has {len(frames)} items for {len(images)} images")
    for ds, frame in zip(images, frames, strict=True):
        if frame is None and int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise ValueError(f"library image {ds.SOPInstanceUID} is multi-frame: give the "
                             "frame of each entry (library_frames)")
    return [ds if f is None else _frame_view(ds, f) for ds, f in zip(images, frames,
                                                                     strict=True)], frames


def _add_library_frame_numbers(root: Dataset, library: Sequence[Dataset],
                               frames: Sequence[int | None]) -> None:
    """Set ReferencedFrameNumber on the image library entries of multi-frame frames.

    highdicom's image library references whole instances; it keeps the order of the
    entries of one instance (they share modality and frame of reference, so one group).
    """
    pending: dict[str, list[int | None]] = {}
    for ds, frame in zip(library, frames, strict=True):
        pending.setdefault(str(ds.SOPInstanceUID), []).append(frame)
    library_item = next(item for item in root.ContentSequence
                        if item.ConceptNameCodeSequence[0].CodeValue
                        == dcm_codes.DCM.ImageLibrary.value)
    for group in library_item.ContentSequence:
        for entry in group.ContentSequence:
            if entry.ValueType != "IMAGE":
                continue
            reference = entry.ReferencedSOPSequence[0]
            frame = pending[str(reference.ReferencedSOPInstanceUID)].pop(0)
            if frame is not None:
                reference.ReferencedFrameNumber = frame


def measured_regions(aha_labels: np.ndarray, myocardium: np.ndarray,
                     images: Sequence[Dataset], frames: Sequence[int | None] | None = None,
                     lv_cavity: np.ndarray | None = None
                     ) -> dict[str, list[hd.sr.ImageRegion]]:
    """The ED image regions that each strain group's values are means over (TID 1411).

    Parameters
    ----------
    aha_labels : numpy.ndarray
        ``[S, H, W]`` AHA segment (1-16, 0 = none) of each ED myocardium pixel.
    myocardium : numpy.ndarray
        ``[S, H, W]`` bool ED myocardium.
    images : sequence of pydicom.dataset.Dataset
        ``[S]`` header of the ED image of each slice.
    frames : sequence of int or None, optional
        ``[S]`` frame number (1-based) of the ED frame in a multi-frame image, else None.
    lv_cavity : numpy.ndarray, optional
        ``[S, H, W]`` bool ED LV blood pool (what the ED volume measured).

    Returns
    -------
    dict
        ``"global"`` (the myocardium), ``"1"``..``"16"`` (the segments, those present) and
        ``"function"`` (the ED LV cavity, when given): one closed POLYLINE per region per
        slice, on that slice's ED image.
    """
    aha_labels, myocardium = np.asarray(aha_labels), np.asarray(myocardium, bool)
    if aha_labels.shape != myocardium.shape or aha_labels.ndim != 3:
        raise ValueError(f"aha_labels {aha_labels.shape} and myocardium {myocardium.shape} "
                         "must both be [S, H, W]")
    frames = [None] * len(images) if frames is None else list(frames)
    if not len(images) == len(frames) == len(aha_labels):
        raise ValueError(f"{len(aha_labels)} slices but {len(images)} images and "
                         f"{len(frames)} frame numbers")
    regions: dict[str, list[hd.sr.ImageRegion]] = {}
    for s, (ds, frame) in enumerate(zip(images, frames, strict=True)):
        source = hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=str(ds.SOPClassUID),
            referenced_sop_instance_uid=str(ds.SOPInstanceUID),
            referenced_frame_numbers=None if frame is None else [int(frame)])
        masks = {"global": myocardium[s]}
        masks.update({str(k): aha_labels[s] == k for k in range(1, 17)})
        if lv_cavity is not None:
            masks["function"] = np.asarray(lv_cavity[s], bool)
        for key, mask in masks.items():
            for outline in mask_outlines(mask):
                regions.setdefault(key, []).append(hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                    graphic_data=outline.astype(np.float32), source_image=source))
    return regions


def build_measurement_report(
    report: Mapping[str, object],
    source_images: Sequence[Dataset],
    *,
    uids: ResultUIDs,
    series_number: int,
    library_images: Sequence[Dataset] | None = None,
    library_frames: Sequence[int | None] | None = None,
    regions: Mapping[str, Sequence[hd.sr.ImageRegion]] | None = None,
) -> hd.sr.ComprehensiveSR:
    """The TID 1500 Measurement Report of one analysis.

    Parameters
    ----------
    report : mapping
        The ``report.json`` document (:meth:`inference.heart.analysis.LVAnalysis.report`).
    source_images : sequence of pydicom.dataset.Dataset
        Headers of the source images (one per instance) of one study: the evidence
        (Current Requested Procedure Evidence Sequence).
    uids : ResultUIDs
        Derives the series, instance and tracking UIDs.
    series_number : int
        SeriesNumber of the new series.
    library_images : sequence of pydicom.dataset.Dataset, optional
        The images of the image library (default: ``source_images``); the ED image of
        each slice, whose myocardium was measured, keeps the SR small for long cines.
    library_frames : sequence of int or None, optional
        Parallel to ``library_images``: the frame (1-based) of each entry in a multi-frame
        image (Enhanced MR), None for a single-frame image. An enhanced stack is one
        image, so its library lists the ED frame of each slice, each with its own
        geometry and ReferencedFrameNumber.
    regions : mapping, optional
        :func:`measured_regions`: the ED image regions of the global (``"global"``) and
        segment (``"1"``..``"16"``) groups. A group with regions is a volumetric ROI group
        (TID 1411) whose SCOORDs outline what was measured, so that viewers that draw
        TID 1500 measurements (OHIF) put the values on the image; without, TID 1501.

    Returns
    -------
    highdicom.sr.ComprehensiveSR
    """
    _check_report(report)
    if not source_images:
        raise ValueError("no source images")
    if len({str(ds.StudyInstanceUID) for ds in [*source_images, *(library_images or [])]}
           ) != 1:
        raise ValueError("source_images and library_images must belong to one study")
    library, frames = _library(list(source_images if library_images is None
                                    else library_images), library_frames)
    algorithm = algorithm_identification(report)
    groups = []
    regions = regions or {}
    group = _strain_group(report["global"], codes.LV_MYOCARDIUM,  # type: ignore[arg-type]
                          GLOBAL_TRACKING_ID, uids.instance("sr-tracking", 0), algorithm,
                          regions.get("global", ()))
    groups.append(group)
    segments = cast(Mapping[str, Mapping[str, object]], report["segments"])
    for k in range(1, 17):
        curves = segments[str(k)]
        name = curves.get("name") or codes.AHA_SEGMENTS[k].meaning
        groups.append(_strain_group(curves, codes.AHA_SEGMENTS[k], f"AHA segment {k} {name}",
                                    uids.instance("sr-tracking", k), algorithm,
                                    regions.get(str(k), ())))
    groups.append(_function_group(report["function"],  # type: ignore[arg-type]
                                  uids.instance("sr-tracking", 17), algorithm,
                                  regions.get("function", ())))
    groups = [g for g in groups if g is not None]
    observer = hd.sr.ObserverContext(
        observer_type=dcm_codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_OBSERVER_UID, name=MANUFACTURER_MODEL_NAME,
            manufacturer_name=MANUFACTURER, model_name=MANUFACTURER_MODEL_NAME,
            serial_number=DEVICE_SERIAL_NUMBER))
    content = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.MR_HEART_PROCEDURE,
        imaging_measurements=groups,
        referenced_images=library,
    )
    if any(f is not None for f in frames):
        _add_library_frame_numbers(content[0], library, frames)
    sr = hd.sr.ComprehensiveSR(
        evidence=list(source_images),
        content=content[0],
        series_instance_uid=uids.series("sr"),
        series_number=series_number,
        sop_instance_uid=uids.instance("sr"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description=SERIES_DESCRIPTION,
    )
    sr.ManufacturerModelName = MANUFACTURER_MODEL_NAME
    sr.SoftwareVersions = SOFTWARE_VERSIONS
    sr.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
    sr.CodingSchemeIdentificationSequence = [codes.coding_scheme_identification()]
    log.debug("built SR %s: %d measurement groups", sr.SOPInstanceUID, len(groups))
    return sr
