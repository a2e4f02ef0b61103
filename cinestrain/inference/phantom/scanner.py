"""Write a cine short-axis study as real MR DICOM: classic single-frame or enhanced multi-frame.

Used by the synthetic phantom and by the tests, so that every reader path is exercised with
real files on disk. Everything written passes ``dciodvfy`` (dicom3tools) without errors.

UIDs are deterministic: the study and frame-of-reference UIDs are derived from the study's
content when not given, and series / instance UIDs from those plus the writer's ``seed``.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence
from pydicom.uid import (
    UID,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from cinestrain.dicom_io.equipment import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from cinestrain.dicom_io.read.scan import PatientStudy

logger = logging.getLogger(__name__)

#: transfer syntaxes written without compression
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}

_SOFTWARE_VERSION = "cinestrain phantom 1"
_MODEL_NAME = "cinestrain synthetic"
_DEVICE_SERIAL = "CS-0001"


@dataclass(frozen=True)
class CineStudy:
    """A cine stack of S slices x T phases with its geometry and patient/study identity.

    Parameters
    ----------
    pixels : numpy.ndarray
        ``[S, T, H, W]`` stored pixel values (integer; written unsigned 16-bit, or signed
        16-bit when any value is negative), slices in the order given.
    positions : numpy.ndarray
        ``[S, 3]`` ImagePositionPatient of each slice (mm, patient LPS).
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient: row direction cosines then column direction cosines.
    pixel_spacing : tuple of float
        (row spacing, column spacing) in mm, as DICOM PixelSpacing.
    slice_thickness : float
        Slice thickness in mm.
    trigger_times : numpy.ndarray
        ``[T]`` or ``[S, T]`` trigger delay after the R wave, ms.
    rr_interval_ms : float
        The nominal R-R interval, ms.

    Notes
    -----
    ``study_instance_uid`` and ``frame_of_reference_uid`` are derived deterministically from
    the content (pixels, geometry, patient ID, study date/time) when left ``None``.
    """

    pixels: np.ndarray
    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    slice_thickness: float
    trigger_times: np.ndarray
    rr_interval_ms: float
    patient_name: str = "PHANTOM^CINE"
    patient_id: str = "CS-PHANTOM"
    patient_birth_date: str = ""
    patient_sex: str = "O"
    study_instance_uid: str | None = None
    study_id: str = "1"
    accession_number: str = ""
    study_date: str = "20260101"
    study_time: str = "120000"
    series_description: str = "cine SAX"
    series_number: int = 1
    frame_of_reference_uid: str | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    manufacturer: str = "cinestrain phantom"
    _digest: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pixels = np.asarray(self.pixels)
        if pixels.ndim != 4 or min(pixels.shape) < 1:
            raise ValueError(f"pixels: expected a non-empty [S, T, H, W] array, got {pixels.shape}")
        if not np.issubdtype(pixels.dtype, np.integer):
            raise ValueError(f"pixels: stored values must be integers, got dtype {pixels.dtype}")
        if pixels.min() < -32768 or pixels.max() > 65535:
            raise ValueError("pixels: values do not fit in 16 bits")
        if pixels.min() < 0 and pixels.max() > 32767:
            raise ValueError("pixels: mixed-sign values do not fit in signed 16 bits")
        n_slices, n_phases = pixels.shape[:2]
        positions = np.asarray(self.positions, dtype=float)
        if positions.shape != (n_slices, 3):
            raise ValueError(f"positions: expected [{n_slices}, 3], got {positions.shape}")
        orientation = np.asarray(self.orientation, dtype=float)
        if orientation.shape != (6,):
            raise ValueError(f"orientation: expected 6 direction cosines, got {orientation.shape}")
        row, col = orientation[:3], orientation[3:]
        if not (np.isclose(np.linalg.norm(row), 1, atol=1e-4)
                and np.isclose(np.linalg.norm(col), 1, atol=1e-4)
                and abs(float(row @ col)) < 1e-4):
            raise ValueError("orientation: row and column cosines must be orthonormal")
        if len(self.pixel_spacing) != 2 or min(self.pixel_spacing) <= 0:
            raise ValueError(
                f"pixel_spacing: expected two positive values, got {self.pixel_spacing}"
            )
        if self.slice_thickness <= 0:
            raise ValueError(f"slice_thickness: must be positive, got {self.slice_thickness}")
        trigger = np.asarray(self.trigger_times, dtype=float)
        if trigger.shape not in ((n_phases,), (n_slices, n_phases)):
            raise ValueError(
                f"trigger_times: expected [{n_phases}] or [{n_slices}, {n_phases}], "
                f"got {trigger.shape}"
            )
        if self.rr_interval_ms <= 0:
            raise ValueError(f"rr_interval_ms: must be positive, got {self.rr_interval_ms}")
        if self.rescale_slope == 0:
            raise ValueError("rescale_slope: must not be zero")
        for name in ("pixels", "positions", "orientation", "trigger_times"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        object.__setattr__(self, "pixel_spacing", tuple(float(v) for v in self.pixel_spacing))
        object.__setattr__(self, "_digest", self._content_digest())
        if self.study_instance_uid is None:
            object.__setattr__(self, "study_instance_uid", self.uid("study"))
        if self.frame_of_reference_uid is None:
            object.__setattr__(self, "frame_of_reference_uid", self.uid("frame-of-reference"))

    @property
    def n_slices(self) -> int:
        """Number of slices S."""
        return int(self.pixels.shape[0])

    @property
    def n_phases(self) -> int:
        """Number of phases T."""
        return int(self.pixels.shape[1])

    def trigger_time(self, s: int, t: int) -> float:
        """Trigger time of slice ``s``, phase ``t`` in ms."""
        trig = self.trigger_times
        return float(trig[t] if trig.ndim == 1 else trig[s, t])

    def uid(self, *parts: object) -> UID:
        """A UID derived deterministically from this study's content and ``parts``.

        pydicom hashes its entropy sources joined with no separator, so each part is
        prefixed with one: without it (slice 1, phase 10) and (slice 11, phase 0) got the
        same SOP Instance UID, and a stack of 11 or more slices and phases lost images."""
        return generate_uid(entropy_srcs=[self._digest, *(f"/{p}" for p in parts)])

    def _content_digest(self) -> str:
        h = hashlib.sha256()
        for arr in (self.pixels, self.positions, self.orientation, self.trigger_times):
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(f"{self.patient_id}|{self.study_date}|{self.study_time}".encode())
        h.update(f"{self.study_instance_uid}|{self.frame_of_reference_uid}".encode())
        return h.hexdigest()


def write_cine_classic(
    study: CineStudy,
    out_dir: str | Path,
    *,
    per_slice_series: bool = False,
    file_names: Literal["uid", "random"] = "uid",
    seed: int = 0,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> list[Path]:
    """Write one MR Image Storage file per (slice, phase).

    Parameters
    ----------
    study : CineStudy
        The stack to write.
    out_dir : str or pathlib.Path
        Folder to write into (created when missing).
    per_slice_series : bool
        One series per slice (series numbers ``study.series_number + s``), as many scanners
        send cine stacks; otherwise one series for the whole stack.
    file_names : {"uid", "random"}
        ``"uid"``: ``<SOPInstanceUID>.dcm``; ``"random"``: meaningless 12-character hex names
        without extension.
    seed : int
        Makes the series and instance UIDs (and random names) reproducible.
    transfer_syntax : str
        Explicit or implicit VR little endian, or a compressed syntax pydicom can encode
        (RLE Lossless; JPEG 2000 Lossless with pylibjpeg-openjpeg, which needs a matrix
        of at least 32 x 32).

    Returns
    -------
    list of pathlib.Path
        ``S * T`` paths, slice-major then phase.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = random.Random(seed)
    paths: list[Path] = []
    for s in range(study.n_slices):
        series_key = s if per_slice_series else 0
        series_uid = study.uid("classic-series", seed, series_key)
        series_number = study.series_number + (s if per_slice_series else 0)
        for t in range(study.n_phases):
            ds = _classic_dataset(study, s, t, series_uid, series_number, seed, per_slice_series)
            if file_names == "random":
                name = f"{names.getrandbits(48):012x}"
            elif file_names == "uid":
                name = f"{ds.SOPInstanceUID}.dcm"
            else:
                raise ValueError(f"file_names: expected 'uid' or 'random', got {file_names!r}")
            path = out_dir / name
            _save(ds, path, transfer_syntax)
            paths.append(path)
    logger.info(
        "wrote %d classic MR files of study %s to %s", len(paths), study.study_instance_uid, out_dir
    )
    return paths


def write_cine_enhanced(
    study: CineStudy,
    out_path: str | Path,
    *,
    seed: int = 0,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> Path:
    """Write the whole stack as one Enhanced MR Image Storage multi-frame object.

    Frames are slice-major then phase; each carries its plane position, trigger delay
    (``NominalCardiacTriggerDelayTime``) and dimension indices (stack, in-stack position,
    temporal position) in the per-frame functional groups.

    Parameters
    ----------
    study : CineStudy
        The stack to write.
    out_path : str or pathlib.Path
        File to write (parent folders are created).
    seed : int
        Makes the series and instance UIDs reproducible.
    transfer_syntax : str
        As for :func:`write_cine_classic`.

    Returns
    -------
    pathlib.Path
        ``out_path``.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ds = _enhanced_dataset(study, seed)
    _save(ds, out_path, transfer_syntax)
    logger.info(
        "wrote enhanced MR object %s (%d frames) of study %s",
        ds.SOPInstanceUID, ds.NumberOfFrames, study.study_instance_uid,
    )
    return out_path


# -- building blocks -------------------------------------------------------------------------


def _ds_number(value: float) -> str:
    """A DS value: as many digits as its 16 characters hold."""
    text = format_number_as_ds(float(value))
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _add_patient_study(ds: Dataset, study: CineStudy) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    PatientStudy(
        patient_name=study.patient_name,
        patient_id=study.patient_id,
        patient_birth_date=study.patient_birth_date,
        patient_sex=study.patient_sex,
        study_instance_uid=study.study_instance_uid,
        study_id=study.study_id,
        study_date=study.study_date,
        study_time=study.study_time,
        accession_number=study.accession_number,
        study_description="cardiac MR",
    ).copy_to(ds)


def _add_series_equipment(ds: Dataset, study: CineStudy, series_uid: str, number: int) -> None:
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = number
    ds.SeriesDate = study.study_date
    ds.SeriesTime = study.study_time
    ds.SeriesDescription = study.series_description
    ds.BodyPartExamined = "HEART"
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = study.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = study.manufacturer
    ds.ManufacturerModelName = _MODEL_NAME
    ds.DeviceSerialNumber = _DEVICE_SERIAL
    ds.SoftwareVersions = _SOFTWARE_VERSION
    ds.InstitutionName = ""
    ds.StationName = "CINESTRAIN"


def _add_pixel_module(ds: Dataset, study: CineStudy) -> None:
    signed = bool(study.pixels.min() < 0)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(v) for v in study.pixels.shape[2:])
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0


def _pixel_bytes(frames: np.ndarray, signed: bool) -> bytes:
    return np.ascontiguousarray(frames.astype("<i2" if signed else "<u2")).tobytes()


def _window(study: CineStudy) -> tuple[str, str]:
    lo = float(study.pixels.min()) * study.rescale_slope + study.rescale_intercept
    hi = float(study.pixels.max()) * study.rescale_slope + study.rescale_intercept
    return _ds_number((lo + hi) / 2), _ds_number(max(hi - lo, 1.0))


def _classic_dataset(
    study: CineStudy,
    s: int,
    t: int,
    series_uid: str,
    series_number: int,
    seed: int,
    per_slice_series: bool,
) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = study.uid("classic-instance", seed, s, t)
    ds.InstanceCreationDate = study.study_date
    ds.InstanceCreationTime = study.study_time
    _add_patient_study(ds, study)
    _add_series_equipment(ds, study, series_uid, series_number)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = (t + 1) if per_slice_series else (s * study.n_phases + t + 1)
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    ds.AcquisitionDate = study.study_date
    ds.AcquisitionTime = study.study_time
    ds.ImagesInAcquisition = study.n_phases if per_slice_series else study.n_slices * study.n_phases
    # image plane
    orientation = np.asarray(study.orientation, dtype=float)
    position = np.asarray(study.positions[s], dtype=float)
    ds.ImagePositionPatient = [_ds_number(v) for v in position]
    ds.ImageOrientationPatient = [_ds_number(v) for v in orientation]
    ds.PixelSpacing = [_ds_number(v) for v in study.pixel_spacing]
    ds.SliceThickness = _ds_number(study.slice_thickness)
    normal = np.cross(orientation[:3], orientation[3:])
    ds.SliceLocation = _ds_number(float(position @ normal))
    # MR image
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SS"
    ds.ScanOptions = "CG"
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "cine_bssfp"
    ds.AngioFlag = "N"
    ds.RepetitionTime = "3.2"
    ds.EchoTime = "1.6"
    ds.EchoTrainLength = 1
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "63.87"
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = "1.5"
    ds.FlipAngle = "50"
    ds.TriggerTime = _ds_number(study.trigger_time(s, t))
    ds.NominalInterval = round(study.rr_interval_ms)
    ds.CardiacNumberOfImages = study.n_phases
    ds.HeartRate = round(60000.0 / study.rr_interval_ms)
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.PercentPhaseFieldOfView = "100"
    ds.PercentSampling = "100"
    ds.PixelBandwidth = "930"
    ds.ReceiveCoilName = "BODY"
    ds.TransmitCoilName = "BODY"
    _add_pixel_module(ds, study)
    if (study.rescale_slope, study.rescale_intercept) != (1.0, 0.0):
        # not part of the MR IOD, but what scanners (e.g. Philips) write; dciodvfy warns
        ds.RescaleSlope = _ds_number(study.rescale_slope)
        ds.RescaleIntercept = _ds_number(study.rescale_intercept)
        ds.RescaleType = "US"
    ds.WindowCenter, ds.WindowWidth = _window(study)
    ds.BurnedInAnnotation = "NO"
    ds.PixelData = _pixel_bytes(study.pixels[s, t], ds.PixelRepresentation == 1)
    return ds


def _enhanced_shared_group(study: CineStudy) -> Dataset:
    group = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [_ds_number(v) for v in study.pixel_spacing]
    measures.SliceThickness = _ds_number(study.slice_thickness)
    group.PixelMeasuresSequence = Sequence([measures])
    orient = Dataset()
    orient.ImageOrientationPatient = [_ds_number(v) for v in study.orientation]
    group.PlaneOrientationSequence = Sequence([orient])
    anatomy = Dataset()
    anatomy.AnatomicRegionSequence = Sequence([_code("80891009", "SCT", "Heart")])
    anatomy.FrameLaterality = "U"
    group.FrameAnatomySequence = Sequence([anatomy])
    transform = Dataset()
    transform.RescaleIntercept = _ds_number(study.rescale_intercept)
    transform.RescaleSlope = _ds_number(study.rescale_slope)
    transform.RescaleType = "US"
    group.PixelValueTransformationSequence = Sequence([transform])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = _window(study)
    group.FrameVOILUTSequence = Sequence([voi])
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "CARDIAC_GATED", "NONE"]
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    frame_type.ComplexImageComponent = "MAGNITUDE"
    frame_type.AcquisitionContrast = "UNKNOWN"
    group.MRImageFrameTypeSequence = Sequence([frame_type])
    timing = Dataset()
    timing.RepetitionTime = 3.2
    timing.FlipAngle = 50.0
    timing.EchoTrainLength = 1
    timing.RFEchoTrainLength = 1
    timing.GradientEchoTrainLength = 1
    timing.GradientOutputType = "DB_DT"
    timing.GradientOutput = 50.0
    sar = Dataset()
    sar.SpecificAbsorptionRateDefinition = "IEC_WHOLE_BODY"
    sar.SpecificAbsorptionRateValue = 1.0
    timing.SpecificAbsorptionRateSequence = Sequence([sar])
    mode = Dataset()
    mode.OperatingModeType = "STATIC FIELD"
    mode.OperatingMode = "IEC_NORMAL"
    timing.OperatingModeSequence = Sequence([mode])
    group.MRTimingAndRelatedParametersSequence = Sequence([timing])
    fov = Dataset()
    fov.InPlanePhaseEncodingDirection = "ROW"
    fov.MRAcquisitionFrequencyEncodingSteps = int(study.pixels.shape[3])
    fov.MRAcquisitionPhaseEncodingStepsInPlane = int(study.pixels.shape[2])
    fov.PercentSampling = 100.0
    fov.PercentPhaseFieldOfView = 100.0
    group.MRFOVGeometrySequence = Sequence([fov])
    echo = Dataset()
    echo.EffectiveEchoTime = 1.6
    group.MREchoSequence = Sequence([echo])
    modifier = Dataset()
    modifier.InversionRecovery = "NO"
    modifier.FlowCompensation = "NONE"
    modifier.T2Preparation = "NO"
    modifier.SpectrallySelectedExcitation = "NONE"
    modifier.SpatialPresaturation = "NONE"
    modifier.PartialFourier = "NO"
    modifier.ParallelAcquisition = "NO"
    group.MRModifierSequence = Sequence([modifier])
    imaging = Dataset()
    imaging.MagnetizationTransfer = "NONE"
    imaging.BloodSignalNulling = "NO"
    imaging.Tagging = "NONE"
    imaging.TransmitterFrequency = 63.87
    imaging.PixelBandwidth = 930.0
    group.MRImagingModifierSequence = Sequence([imaging])
    receive = Dataset()
    receive.ReceiveCoilName = "BODY"
    receive.ReceiveCoilManufacturerName = study.manufacturer
    receive.ReceiveCoilType = "BODY"
    receive.QuadratureReceiveCoil = "NO"
    group.MRReceiveCoilSequence = Sequence([receive])
    transmit = Dataset()
    transmit.TransmitCoilName = "BODY"
    transmit.TransmitCoilManufacturerName = study.manufacturer
    transmit.TransmitCoilType = "BODY"
    group.MRTransmitCoilSequence = Sequence([transmit])
    averages = Dataset()
    averages.NumberOfAverages = 1.0
    group.MRAveragesSequence = Sequence([averages])
    return group


def _enhanced_frame_group(study: CineStudy, s: int, t: int, frame_number: int) -> Dataset:
    group = Dataset()
    content = Dataset()
    content.FrameAcquisitionNumber = frame_number
    acq_datetime = f"{study.study_date}{study.study_time}"
    content.FrameReferenceDateTime = acq_datetime
    content.FrameAcquisitionDateTime = acq_datetime
    content.FrameAcquisitionDuration = 40.0
    content.CardiacCyclePosition = "UNDETERMINED"
    content.StackID = "1"
    content.InStackPositionNumber = s + 1
    content.TemporalPositionIndex = t + 1
    content.DimensionIndexValues = [1, s + 1, t + 1]
    group.FrameContentSequence = Sequence([content])
    position = Dataset()
    position.ImagePositionPatient = [_ds_number(v) for v in study.positions[s]]
    group.PlanePositionSequence = Sequence([position])
    cardiac = Dataset()
    cardiac.NominalPercentageOfCardiacPhase = round(
        100.0 * study.trigger_time(s, t) / study.rr_interval_ms, 3
    )
    cardiac.NominalCardiacTriggerDelayTime = study.trigger_time(s, t)
    cardiac.ActualCardiacTriggerDelayTime = study.trigger_time(s, t)
    cardiac.IntervalsAcquired = 1
    cardiac.IntervalsRejected = 0
    cardiac.HeartRate = round(60000.0 / study.rr_interval_ms)
    cardiac.RRIntervalTimeNominal = float(study.rr_interval_ms)
    cardiac.LowRRValue = round(0.8 * study.rr_interval_ms)
    cardiac.HighRRValue = round(1.2 * study.rr_interval_ms)
    group.CardiacSynchronizationSequence = Sequence([cardiac])
    return group


def _dimensions(ds: Dataset, organization_uid: str) -> None:
    organization = Dataset()
    organization.DimensionOrganizationUID = organization_uid
    ds.DimensionOrganizationSequence = Sequence([organization])
    ds.DimensionOrganizationType = "3D_TEMPORAL"
    index = []
    for pointer, description in (
        (0x00209056, "Stack ID"),
        (0x00209057, "In-Stack Position Number"),
        (0x00209128, "Temporal Position Index"),
    ):
        item = Dataset()
        item.DimensionOrganizationUID = organization_uid
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111  # FrameContentSequence
        item.DimensionDescriptionLabel = description
        index.append(item)
    ds.DimensionIndexSequence = Sequence(index)


def _enhanced_dataset(study: CineStudy, seed: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = EnhancedMRImageStorage
    ds.SOPInstanceUID = study.uid("enhanced-instance", seed)
    ds.InstanceCreationDate = study.study_date
    ds.InstanceCreationTime = study.study_time
    _add_patient_study(ds, study)
    _add_series_equipment(ds, study, study.uid("enhanced-series", seed), study.series_number)
    # enhanced MR image module
    ds.ImageType = ["ORIGINAL", "PRIMARY", "CARDIAC_GATED", "NONE"]
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ContentQualification = "RESEARCH"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = 1.5
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = f"{study.study_date}{study.study_time}"
    ds.AcquisitionDuration = 10.0
    # MR pulse sequence module
    ds.PulseSequenceName = "cine_bssfp"
    ds.MRAcquisitionType = "2D"
    ds.EchoPulseSequence = "GRADIENT"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "FREE_PRECESSION"
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.SegmentedKSpaceTraversal = "PARTIAL"
    ds.NumberOfKSpaceTrajectories = 1
    # cardiac, respiratory and bulk motion synchronization modules
    ds.CardiacSynchronizationTechnique = "RETROSPECTIVE"
    ds.CardiacSignalSource = "ECG"
    ds.CardiacRRIntervalSpecified = float(study.rr_interval_ms)
    ds.CardiacBeatRejectionTechnique = "RR_INTERVAL"
    ds.LowRRValue = round(0.8 * study.rr_interval_ms)
    ds.HighRRValue = round(1.2 * study.rr_interval_ms)
    ds.IntervalsAcquired = study.n_slices
    ds.IntervalsRejected = 0
    ds.SkipBeats = 0
    ds.RespiratoryMotionCompensationTechnique = "BREATH_HOLD"
    ds.RespiratorySignalSource = "NONE"
    ds.AcquisitionContextSequence = Sequence([])
    # multi-frame functional groups and dimensions
    n_frames = study.n_slices * study.n_phases
    ds.InstanceNumber = 1
    ds.ContentDate = study.study_date
    ds.ContentTime = study.study_time
    ds.NumberOfFrames = n_frames
    ds.SharedFunctionalGroupsSequence = Sequence([_enhanced_shared_group(study)])
    ds.PerFrameFunctionalGroupsSequence = Sequence(
        [
            _enhanced_frame_group(study, s, t, s * study.n_phases + t + 1)
            for s in range(study.n_slices)
            for t in range(study.n_phases)
        ]
    )
    _dimensions(ds, study.uid("dimension-organization", seed))
    _add_pixel_module(ds, study)
    frames = study.pixels.reshape(n_frames, *study.pixels.shape[2:])
    ds.PixelData = _pixel_bytes(frames, ds.PixelRepresentation == 1)
    return ds


def _save(ds: Dataset, path: Path, transfer_syntax: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ts = UID(transfer_syntax)
    if str(ts) in _UNCOMPRESSED:
        meta.TransferSyntaxUID = ts
    else:
        ds.compress(ts, generate_instance_uid=False)
    dcmwrite(path, ds, enforce_file_format=True)
