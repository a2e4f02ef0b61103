"""Parametric Maps of strain and displacement over a cine stack (highdicom).

Layout: **one instance per (quantity, phase)**, each holding the S slices of that phase as
frames, and one series per quantity. highdicom indexes the frames of a Parametric Map by
plane position only, so one instance cannot hold a slice at two phases; splitting by
phase keeps every frame in the exact geometry of its source frame (position, orientation,
spacing) and lets each instance reference the source images of its own phase. One series
per quantity lets viewers that stack instances by position show a coherent series.

Stored values are unsigned 16-bit integers with a linear Real World Value Mapping
(``value = slope * stored + intercept``), so viewers that cannot show float pixel data
still can: strain in percent (0.01 % steps), displacement in mm (0.01 mm steps). Strain
maps carry values in the ED myocardium only; stored value 0 lies outside the mapped range
(1-65535) and marks "no value" (it falls far below the window, so it shows black).

The maps are **Lagrangian**: the value at pixel X of phase t belongs to the material point
that sits at X at ED (DESIGN.md § Displacement convention), so the myocardium keeps its ED
shape in every phase; the strain overlay captures (:mod:`dicom_io.write.sc`) show it moving.

Speed (the ``derive_phases`` switch of :mod:`cinestrain.speed`): the phases of one
quantity differ only in pixel data, SOP Instance UID, instance number, content
description, source references and per-frame trigger delays, while most of highdicom's
work for each is checking and copying what does not change. So highdicom builds the
first phase's instance; the others are derived from that instance's encoding by
replacing only what differs (:class:`_PhaseTemplate`), every other element written back
as the bytes highdicom encoded. That is the object highdicom would build for that phase
(``tests/dicom_io/test_pm.py`` compares them element by element), at a fraction of the
cost, but for what highdicom takes from the clock or draws at random for each object
(creation dates and times, Dimension Organization UID), which are phase 1's. A phase
whose source images differ in anything highdicom copies from them (patient, study,
equipment, frame of reference) is built by highdicom again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import EXPLICIT_VR_LENGTH_32, write_data_element
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code

from cinestrain.dicom_io import codes
from cinestrain.dicom_io.equipment import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from cinestrain.dicom_io.read.cine import CineSeries
from cinestrain.dicom_io.write.iod_lookup import memoized_iod_lookups
from cinestrain.dicom_io.write.uids import ResultUIDs
from cinestrain.speed import FAST, Speed

log = logging.getLogger(__name__)

#: stored value of "no value" (outside the mapped range)
NO_VALUE = 0
#: first and last stored value mapped to a real world value
MAPPED_RANGE = (1, 65535)
#: stored value of real value 0
_OFFSET = 32768


@dataclass(frozen=True)
class MapQuantity:
    """One quantity written as Parametric Maps.

    Attributes
    ----------
    key : str
        Name used for UIDs and file names.
    label : str
        ContentLabel and LUTLabel (DICOM CS: upper case, at most 16 characters).
    description : str
        Human wording, used in series and content descriptions.
    code : pydicom.sr.coding.Code
        Quantity definition (what the values are).
    unit : pydicom.sr.coding.Code
        UCUM unit.
    step : float
        Real value of one stored unit (the RWVM slope).
    window : tuple of float
        (centre, width) of the default VOI window, in the unit.
    masked : bool
        Values only inside the ED myocardium; elsewhere :data:`NO_VALUE`.
    """

    key: str
    label: str
    description: str
    code: Code
    unit: Code
    step: float
    window: tuple[float, float]
    masked: bool

    @property
    def limits(self) -> tuple[float, float]:
        """Smallest and largest real value that can be stored."""
        return ((MAPPED_RANGE[0] - _OFFSET) * self.step, (MAPPED_RANGE[1] - _OFFSET) * self.step)

    def encode(self, values: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Stored uint16 values of real ``values`` (clipped to :attr:`limits`)."""
        stored = np.clip(np.rint(np.asarray(values, float) / self.step) + _OFFSET,
                         *MAPPED_RANGE).astype(np.uint16)
        if mask is not None:
            stored[~mask] = NO_VALUE
        return stored

    def decode(self, stored: np.ndarray) -> np.ndarray:
        """Real values of stored values (NaN for :data:`NO_VALUE`)."""
        stored = np.asarray(stored)
        real = (stored.astype(float) - _OFFSET) * self.step
        return np.where(stored == NO_VALUE, np.nan, real)

    def mapping(self) -> hd.pm.RealWorldValueMapping:
        """The Real World Value Mapping of the stored values."""
        return hd.pm.RealWorldValueMapping(
            lut_label=self.label,
            lut_explanation=f"{self.description} ({self.unit.value})",
            unit=self.unit,
            value_range=MAPPED_RANGE,
            slope=self.step,
            intercept=-_OFFSET * self.step,
            quantity_definition=self.code,
        )

    def voi(self) -> hd.VOILUTTransformation:
        """The default window, in stored values."""
        centre, width = self.window
        return hd.VOILUTTransformation(window_center=[centre / self.step + _OFFSET],
                                       window_width=[width / self.step],
                                       window_explanation=[
                                           f"{centre - width / 2:g} to {centre + width / 2:g} "
                                           f"{self.unit.value}"])


_DISPLACEMENT = "Lagrangian displacement along patient {} (LPS)"

#: the quantities cinestrain writes, by key
QUANTITIES: dict[str, MapQuantity] = {
    "radial_strain": MapQuantity(
        "radial_strain", "RADIAL_STRAIN", "radial Lagrangian strain", codes.RADIAL_STRAIN,
        codes.PERCENT, 0.01, (20.0, 80.0), True),
    "circumferential_strain": MapQuantity(
        "circumferential_strain", "CIRC_STRAIN", "circumferential Lagrangian strain",
        codes.CIRCUMFERENTIAL_STRAIN, codes.PERCENT, 0.01, (-12.5, 45.0), True),
    "displacement_x": MapQuantity(
        "displacement_x", "DISPLACEMENT_X", _DISPLACEMENT.format("X"), codes.DISPLACEMENT_X,
        codes.MILLIMETER, 0.01, (0.0, 30.0), False),
    "displacement_y": MapQuantity(
        "displacement_y", "DISPLACEMENT_Y", _DISPLACEMENT.format("Y"), codes.DISPLACEMENT_Y,
        codes.MILLIMETER, 0.01, (0.0, 30.0), False),
    "displacement_z": MapQuantity(
        "displacement_z", "DISPLACEMENT_Z", _DISPLACEMENT.format("Z"), codes.DISPLACEMENT_Z,
        codes.MILLIMETER, 0.01, (0.0, 30.0), False),
}


def displacement_in_patient(u: np.ndarray, orientation: np.ndarray,
                            axis: int | None = None) -> np.ndarray:
    """In-plane displacement as patient (LPS) X, Y, Z components.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` mm; component 0 along increasing row index (the column
        direction cosines, ``orientation[3:]``), 1 along increasing column index
        (``orientation[:3]``).
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient.
    axis : int, optional
        Only this patient axis (0, 1, 2 for X, Y, Z): a third of the memory.

    Returns
    -------
    numpy.ndarray
        ``[3, S, T, H, W]`` mm along patient X, Y, Z (``[S, T, H, W]`` with ``axis``).
    """
    u = np.asarray(u)
    if u.ndim != 5 or u.shape[2] != 2:
        raise ValueError(f"u must be [S, T, 2, H, W], got shape {u.shape}")
    o = np.asarray(orientation, float)
    if o.shape != (6,):
        raise ValueError(f"orientation must have 6 values, got shape {o.shape}")
    if axis is None:
        return np.stack([displacement_in_patient(u, o, a) for a in range(3)])
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    rows = u[:, :, 0].astype(float)
    rows *= o[3 + axis]
    columns = u[:, :, 1].astype(float)
    columns *= o[axis]
    rows += columns
    return rows


def source_arguments(cine: CineSeries, images: Sequence[Sequence[Dataset]], phase: int
                     ) -> dict[str, object]:
    """highdicom's source and geometry arguments for the frames of one phase.

    The planes are given explicitly (each slice's position, the stack's orientation and
    spacing) so that frame s is slice s whatever the source layout; highdicom takes one
    series as ``source_images``, the others (one series per slice, as scanners often
    send cines) as ``further_source_images``.
    """
    unique: dict[str, Dataset] = {}
    for row in images:
        ds = row[phase]
        unique.setdefault(str(ds.SOPInstanceUID), ds)
    first = str(images[0][phase].SeriesInstanceUID)
    own = [ds for ds in unique.values() if str(ds.SeriesInstanceUID) == first]
    further = [ds for ds in unique.values() if str(ds.SeriesInstanceUID) != first]
    thickness = float(np.nanmedian(cine.slice_thickness)) if np.isfinite(
        cine.slice_thickness).any() else None
    return {
        "source_images": own,
        "further_source_images": further or None,
        "plane_positions": [
            hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT,
                                     [float(v) for v in cine.image_positions[s]])
            for s in range(cine.n_slices)
        ],
        "plane_orientation": hd.PlaneOrientationSequence(
            hd.CoordinateSystemNames.PATIENT,
            [float(v) for v in cine.image_orientations[0]]),
        "pixel_measures": hd.PixelMeasuresSequence(
            [float(v) for v in cine.pixel_spacing[0]], thickness),
    }


def frame_slices(ds: Dataset, cine: CineSeries) -> list[int]:
    """The slice of each frame, matched by plane position (highdicom orders the frames of
    an instance by position, not in the order given)."""
    slices = []
    for frame in ds.PerFrameFunctionalGroupsSequence:
        pos = np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        distance = np.linalg.norm(cine.image_positions - pos, axis=1)
        s = int(np.argmin(distance))
        if distance[s] > 1e-3:
            raise ValueError(f"no slice of the stack at frame position {pos.tolist()}")
        slices.append(s)
    return slices


def reference_source_frames(ds: Dataset, cine: CineSeries, phase: int, derivation: Code,
                            slices: Sequence[int] | None = None) -> None:
    """Set each frame's Derivation Image Sequence to its own source frame (its slice at
    ``phase``), with the frame number for multi-frame sources. ``slices``: the slice of
    each frame when already known (:func:`frame_slices`)."""
    if slices is None:
        slices = frame_slices(ds, cine)
    for s, frame in zip(slices, ds.PerFrameFunctionalGroupsSequence, strict=True):
        src = cine.sources[s][phase]
        source = Dataset()
        source.ReferencedSOPClassUID = src.sop_class_uid
        source.ReferencedSOPInstanceUID = src.sop_instance_uid
        if src.frame_number is not None:
            source.ReferencedFrameNumber = src.frame_number
        source.PurposeOfReferenceCodeSequence = [
            hd.sr.CodedConcept.from_code(codes.SOURCE_PURPOSE)]
        source.SpatialLocationsPreserved = "YES"
        item = Dataset()
        item.DerivationCodeSequence = [hd.sr.CodedConcept.from_code(derivation)]
        item.SourceImageSequence = [source]
        frame.DerivationImageSequence = [item]


def _add_cardiac_timing(ds: Dataset, cine: CineSeries, phase: int,
                        slices: Sequence[int]) -> None:
    """Record the trigger delay of each frame (Cardiac Synchronization functional group)."""
    for s, frame in zip(slices, ds.PerFrameFunctionalGroupsSequence, strict=True):
        sync = Dataset()
        sync.NominalCardiacTriggerDelayTime = round(float(cine.slice_trigger_times[s, phase]),
                                                    3)
        if cine.rr_interval_ms:
            sync.RRIntervalTimeNominal = round(float(cine.rr_interval_ms), 3)
        frame.CardiacSynchronizationSequence = [sync]


def _add_frame_anatomy(ds: Dataset) -> None:
    """The heart, an unpaired structure (Body Part Examined, and the shared Frame Anatomy
    functional group), so that no Laterality is expected."""
    ds.BodyPartExamined = "HEART"
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = [hd.sr.CodedConcept.from_code(codes.HEART)]
    anatomy.FrameLaterality = "U"
    ds.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [anatomy]


def _check(cine: CineSeries, images: Sequence[Sequence[Dataset]], values: np.ndarray,
           mask: np.ndarray | None, quantity: str) -> tuple[MapQuantity, np.ndarray]:
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {sorted(QUANTITIES)}, got {quantity!r}")
    if not isinstance(cine, CineSeries):
        raise TypeError(f"cine must be a CineSeries, got {type(cine).__name__}")
    values = np.asarray(values)
    if values.shape != cine.shape:
        raise ValueError(f"values must be [S, T, H, W] = {cine.shape}, got {values.shape}")
    if len(images) != cine.n_slices or any(len(row) != cine.n_phases for row in images):
        raise ValueError(f"images must be [S][T] = [{cine.n_slices}][{cine.n_phases}] "
                         "datasets")
    spec = QUANTITIES[quantity]
    if spec.masked:
        if mask is None:
            raise ValueError(f"{quantity} maps need the ED myocardium mask")
        if np.shape(mask) != (cine.n_slices, *cine.shape[2:]):
            raise ValueError(f"mask must be [S, H, W] = {(cine.n_slices, *cine.shape[2:])}, "
                             f"got {np.shape(mask)}")
    return spec, values


#: attributes a Parametric Map does not copy from its first source image: those each
#: source image has its own of, and those highdicom builds itself
_NOT_COPIED = frozenset({
    "SOPInstanceUID", "InstanceNumber", "ContentDate", "ContentTime", "InstanceCreationDate",
    "InstanceCreationTime", "AcquisitionDate", "AcquisitionTime", "AcquisitionDateTime",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate", "SeriesTime",
    "ContentDescription", "PixelData", "NumberOfFrames", "SourceImageSequence",
    "ReferencedSeriesSequence", "PerFrameFunctionalGroupsSequence",
    "SharedFunctionalGroupsSequence", "DimensionIndexSequence",
    "DimensionOrganizationSequence", "ContributingEquipmentSequence",
})
#: Per-frame Functional Groups Sequence
_PER_FRAME = 0x52009230
#: the elements of a map that depend on its phase's source frames: Source Image Sequence,
#: Referenced Series Sequence, and the per-frame groups (derivation, trigger delay)
_PHASE_REFERENCES = (0x00082112, 0x00081115, _PER_FRAME)
#: attributes of a source image that highdicom copies into Contributing Equipment
_EQUIPMENT = ("Manufacturer", "ManufacturerModelName", "DeviceSerialNumber",
              "SoftwareVersions", "InstitutionName", "InstitutionAddress",
              "InstitutionalDepartmentName", "StationName")


def _source_references(ds: Dataset, own: Sequence[Dataset],
                       further: Sequence[Dataset] | None) -> None:
    """Source Image Sequence and Referenced Series Sequence as highdicom writes them
    (``highdicom.Image._add_source_image_references``): one item per source instance, in
    the order given, and one Referenced Series item per series, in order of appearance."""
    items: list[Dataset] = []
    by_series: dict[str, list[Dataset]] = {}
    for src in [*own, *(further or [])]:
        ref = Dataset()
        ref.ReferencedSOPClassUID = src.SOPClassUID
        ref.ReferencedSOPInstanceUID = src.SOPInstanceUID
        items.append(ref)
        by_series.setdefault(str(src.SeriesInstanceUID), []).append(ref)
    ds.SourceImageSequence = DicomSequence(items)
    series = []
    for uid, refs in by_series.items():
        item = Dataset()
        item.SeriesInstanceUID = uid
        item.ReferencedInstanceSequence = DicomSequence(refs)
        series.append(item)
    ds.ReferencedSeriesSequence = DicomSequence(series)


class _PhaseTemplate:
    """The encoded Parametric Map of one phase, from which other phases are derived.

    A derived instance is the template's file read back (its elements stay encoded, so
    they are written back as they are) with the phase-dependent elements replaced. The
    template is refused (None from :meth:`make`) when its pixel data is not the plain
    little-endian frames in :func:`frame_slices` order, which derivation relies on.
    """

    def __init__(self, encoded: bytes, slices: list[int], source: Dataset, keys: list[str]
                 ) -> None:
        self.encoded = encoded
        #: the template's frames as encoded (geometry, dimension indices): phases of
        #: quantities whose templates have the same frames share their references
        frames = dcmread(io.BytesIO(encoded)).get_item(_PER_FRAME)
        self.frames = hashlib.sha1(bytes(frames.value or b"")).hexdigest()
        self.slices = slices
        self.source = source
        self.keys = keys
        self.signature = _signature(source, keys)
        self.dtype = np.dtype("<u2")

    @classmethod
    def make(cls, pm: Dataset, stored: np.ndarray, slices: list[int], source: Dataset
             ) -> _PhaseTemplate | None:
        """The template of ``pm`` (built from ``stored`` ``[S, H, W]``; ``source`` is
        the first source image it was built from), or None if it cannot be one."""
        expected = np.ascontiguousarray(stored[slices], dtype="<u2").tobytes()
        if int(pm.BitsAllocated) != 16 or pm.get("PixelData") != expected:
            log.info("Parametric Map pixel layout not as expected: every phase is built "
                     "by highdicom")
            return None
        keys = sorted({str(e.keyword) for e in pm if e.keyword} - _NOT_COPIED
                      | set(_EQUIPMENT))
        buffer = io.BytesIO()
        pm.save_as(buffer, enforce_file_format=True)
        return cls(buffer.getvalue(), slices, source, keys)

    def fits(self, source: Dataset) -> bool:
        """Whether a phase whose first source image is ``source`` can be derived: it
        agrees with the template's in everything highdicom copies from it."""
        return source is self.source or _signature(source, self.keys) == self.signature

    def derive(self, cine: CineSeries, images: Sequence[Sequence[Dataset]], phase: int,
               stored: np.ndarray, sop_instance_uid: str, description: str,
               shared: dict[tuple[int, str], list[RawDataElement]] | None = None
               ) -> Dataset:
        """The instance of ``phase`` with stored values ``stored`` ``[S, H, W]``.

        ``shared``: the encoded references of each phase (source images, per-frame
        derivation and trigger delay), kept for the other quantities' instances of the
        phase, which reference the same source frames.
        """
        ds = dcmread(io.BytesIO(self.encoded))
        ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
        ds.SOPInstanceUID = sop_instance_uid
        ds.InstanceNumber = phase + 1
        ds.ContentDescription = description
        key = (phase, self.frames)
        if shared is not None and key in shared:
            for element in shared[key]:
                ds[element.tag] = element
        else:
            arguments = source_arguments(cine, images, phase)
            _source_references(ds, arguments["source_images"],  # type: ignore[arg-type]
                               arguments["further_source_images"])  # type: ignore[arg-type]
            reference_source_frames(ds, cine, phase, codes.MAP_DERIVATION, self.slices)
            _add_cardiac_timing(ds, cine, phase, self.slices)
            if shared is not None:
                shared[key] = [_encoded(ds[tag]) for tag in _PHASE_REFERENCES]
        ds.PixelData = np.ascontiguousarray(stored[self.slices], dtype=self.dtype).tobytes()
        return ds


def _encoded(element: DataElement) -> RawDataElement:
    """``element`` encoded (Explicit VR Little Endian, as every map is written), to be
    written again as it is."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_data_element(buffer, element)
    data = buffer.getvalue()
    header = 12 if element.VR in EXPLICIT_VR_LENGTH_32 else 8
    length = int.from_bytes(data[header - 4:header] if header == 12 else data[6:8], "little")
    return RawDataElement(element.tag, element.VR, length, data[header:], 0, False, True)


def _signature(source: Dataset, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(source.get(k, "")) for k in keys)


def iter_parametric_maps(
    cine: CineSeries,
    images: Sequence[Sequence[Dataset]],
    values: np.ndarray,
    quantity: str,
    *,
    uids: ResultUIDs,
    series_number: int,
    mask: np.ndarray | None = None,
    speed: Speed = FAST,
    shared: dict[tuple[int, str], list[RawDataElement]] | None = None,
) -> Iterator[Dataset]:
    """The Parametric Maps of one quantity, one per phase, phase 0 first, each yielded as
    soon as it is built (a writer need not hold them all).

    Parameters
    ----------
    cine : CineSeries
        The source stack (geometry, timing, source frames).
    images : sequence of sequence of pydicom.dataset.Dataset
        ``[S][T]`` header of each source frame's file (the same dataset repeated for the
        frames of a multi-frame file).
    values : numpy.ndarray
        ``[S, T, H, W]`` float, in the quantity's unit (% or mm), on the source grid.
    quantity : str
        A key of :data:`QUANTITIES`.
    uids : ResultUIDs
        Derives the series and instance UIDs.
    series_number : int
        SeriesNumber of the new series.
    mask : numpy.ndarray, optional
        ``[S, H, W]`` bool ED myocardium; required for strain.
    speed : cinestrain.speed.Speed
        Which speed layers are on (default: all). ``derive_phases``: phases 1.. are
        derived from phase 0's instance (see the module's notes); off, highdicom builds
        every phase. ``memo_iod_lookups``: highdicom's IOD lookups are memoized while it
        builds (:mod:`dicom_io.write.iod_lookup`).
    shared : dict, optional
        Pass the same (initially empty) dict to the calls for each quantity of a stack:
        each phase's source references are then encoded once for all quantities.

    Yields
    ------
    pydicom.dataset.Dataset
        T instances (InstanceNumber = phase + 1), each with S frames (in the order
        highdicom gives them, by plane position; :func:`frame_slices` tells which). The
        first is a :class:`highdicom.pm.ParametricMap`; the others are derived from its
        encoding (see the module's notes) unless their sources differ or
        ``speed.derive_phases`` is off.
    """
    spec, values = _check(cine, images, values, mask, quantity)
    finite = np.isfinite(values)
    outside = ((values < spec.limits[0]) | (values > spec.limits[1])) & finite
    if outside.any():
        log.warning("%s: %d values outside %s %s clipped", quantity, int(outside.sum()),
                    spec.limits, spec.unit.value)
    series_uid = uids.series(f"pm-{quantity}")
    description = f"cinestrain {spec.description} ({spec.unit.value})"
    template: _PhaseTemplate | None = None
    derived = 0
    for t in range(cine.n_phases):
        stored = spec.encode(np.where(finite[:, t], values[:, t], 0.0), mask)
        if mask is not None:
            stored[~finite[:, t]] = NO_VALUE
        trigger = float(np.median(cine.slice_trigger_times[:, t]))
        content = (f"{spec.description}, phase {t + 1}/{cine.n_phases}, "
                   f"{trigger:.0f} ms")[:64]
        sop_uid = uids.instance(f"pm-{quantity}", t)
        if template is not None and template.fits(images[0][t]):
            derived += 1
            yield template.derive(cine, images, t, stored, sop_uid, content, shared)
            continue
        with warnings.catch_warnings(), memoized_iod_lookups(speed.memo_iod_lookups):
            warnings.simplefilter("ignore", UserWarning)  # highdicom's notes on geometry
            pm = hd.pm.ParametricMap(
                **source_arguments(cine, images, t),
                pixel_array=stored,
                series_instance_uid=series_uid,
                series_number=series_number,
                sop_instance_uid=sop_uid,
                instance_number=t + 1,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MANUFACTURER_MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                contains_recognizable_visual_features=False,
                real_world_value_mappings=[spec.mapping()],
                voi_lut_transformations=[spec.voi()],
                content_label=spec.label,
                content_description=content,
                series_description=description[:64],
            )
        slices = frame_slices(pm, cine)
        reference_source_frames(pm, cine, t, codes.MAP_DERIVATION, slices)
        _add_cardiac_timing(pm, cine, t, slices)
        _add_frame_anatomy(pm)
        if template is None and speed.derive_phases:
            template = _PhaseTemplate.make(pm, stored, slices, images[0][t])
        yield pm
    log.debug("built %d Parametric Maps of %s (%d derived from phase 0's), series %s",
             cine.n_phases, quantity, derived, series_uid)


def build_parametric_maps(*args: object, **kwargs: object) -> list[Dataset]:
    """The list of :func:`iter_parametric_maps` (same parameters)."""
    return list(iter_parametric_maps(*args, **kwargs))  # type: ignore[arg-type]
