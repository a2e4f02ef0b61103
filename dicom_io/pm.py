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
shape in every phase; the strain overlay captures (:mod:`dicom_io.sc`) show it moving.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.coding import Code

from dicom_io import codes
from dicom_io.cine import CineSeries
from dicom_io.equipment import (
    DEVICE_SERIAL_NUMBER,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from dicom_io.iod_lookup import memoize_iod_lookups
from dicom_io.uids import ResultUIDs

log = logging.getLogger(__name__)

memoize_iod_lookups()  # highdicom's IOD searches: most of a Parametric Map's build time

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


def displacement_in_patient(u: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """In-plane displacement as patient (LPS) X, Y, Z components.

    Parameters
    ----------
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` mm; component 0 along increasing row index (the column
        direction cosines, ``orientation[3:]``), 1 along increasing column index
        (``orientation[:3]``).
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient.

    Returns
    -------
    numpy.ndarray
        ``[3, S, T, H, W]`` mm along patient X, Y, Z.
    """
    u = np.asarray(u, float)
    if u.ndim != 5 or u.shape[2] != 2:
        raise ValueError(f"u must be [S, T, 2, H, W], got shape {u.shape}")
    o = np.asarray(orientation, float)
    if o.shape != (6,):
        raise ValueError(f"orientation must have 6 values, got shape {o.shape}")
    return (np.einsum("i,sthw->isthw", o[3:], u[:, :, 0])
            + np.einsum("i,sthw->isthw", o[:3], u[:, :, 1]))


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


def reference_source_frames(ds: Dataset, cine: CineSeries, phase: int, derivation: Code
                            ) -> None:
    """Set each frame's Derivation Image Sequence to its own source frame (its slice at
    ``phase``), with the frame number for multi-frame sources."""
    for s, frame in zip(frame_slices(ds, cine), ds.PerFrameFunctionalGroupsSequence,
                        strict=True):
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


def _add_cardiac_timing(ds: Dataset, cine: CineSeries, phase: int) -> None:
    """Record the trigger delay of each frame (Cardiac Synchronization functional group)."""
    for s, frame in zip(frame_slices(ds, cine), ds.PerFrameFunctionalGroupsSequence,
                        strict=True):
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


def build_parametric_maps(
    cine: CineSeries,
    images: Sequence[Sequence[Dataset]],
    values: np.ndarray,
    quantity: str,
    *,
    uids: ResultUIDs,
    series_number: int,
    mask: np.ndarray | None = None,
) -> list[hd.pm.ParametricMap]:
    """One Parametric Map per phase of one quantity.

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

    Returns
    -------
    list of highdicom.pm.ParametricMap
        T instances (InstanceNumber = phase + 1), each with S frames (in the order
        highdicom gives them, by plane position; :func:`frame_slices` tells which).
    """
    spec, values = _check(cine, images, values, mask, quantity)
    finite = np.isfinite(values)
    outside = ((values < spec.limits[0]) | (values > spec.limits[1])) & finite
    if outside.any():
        log.warning("%s: %d values outside %s %s clipped", quantity, int(outside.sum()),
                    spec.limits, spec.unit.value)
    series_uid = uids.series(f"pm-{quantity}")
    description = f"cinestrain {spec.description} ({spec.unit.value})"
    maps = []
    for t in range(cine.n_phases):
        stored = spec.encode(np.where(finite[:, t], values[:, t], 0.0), mask)
        if mask is not None:
            stored[~finite[:, t]] = NO_VALUE
        trigger = float(np.median(cine.slice_trigger_times[:, t]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # highdicom's notes on geometry
            pm = hd.pm.ParametricMap(
                **source_arguments(cine, images, t),
                pixel_array=stored,
                series_instance_uid=series_uid,
                series_number=series_number,
                sop_instance_uid=uids.instance(f"pm-{quantity}", t),
                instance_number=t + 1,
                manufacturer=MANUFACTURER,
                manufacturer_model_name=MANUFACTURER_MODEL_NAME,
                software_versions=SOFTWARE_VERSIONS,
                device_serial_number=DEVICE_SERIAL_NUMBER,
                contains_recognizable_visual_features=False,
                real_world_value_mappings=[spec.mapping()],
                voi_lut_transformations=[spec.voi()],
                content_label=spec.label,
                content_description=f"{spec.description}, phase {t + 1}/{cine.n_phases}, "
                                    f"{trigger:.0f} ms"[:64],
                series_description=description[:64],
            )
        reference_source_frames(pm, cine, t, codes.MAP_DERIVATION)
        _add_cardiac_timing(pm, cine, t)
        _add_frame_anatomy(pm)
        maps.append(pm)
    log.info("built %d Parametric Maps of %s, series %s", len(maps), quantity, series_uid)
    return maps
