"""Secondary captures that every viewer shows: strain over the cine, and the bull's-eye.

- :func:`build_strain_overlay`: per slice, a **Multi-frame True Color Secondary Capture**
  (one frame per phase, a cine loop) of circumferential strain in colour over the cine
  image, with the colour bar, its scale and the phase's trigger time burned in. highdicom's
  ``SCImage`` writes single-frame images only, so this object is built with pydicom (SC
  Equipment, SC Multi-frame Image and Cine modules). The strain is drawn where the
  myocardium is *in that phase*: the Lagrangian map (ED grid) is carried by the motion
  (``x = X + u_t(X)``, inverted by fixed-point iteration).
- :func:`build_bullseye_capture`: the AHA 16-segment bull's-eye of segmental peak
  circumferential strain with the global peaks and EF printed on it (highdicom
  ``SCImage``).

Pictures are rendered with matplotlib (Agg, no pyplot state) into RGB arrays.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping

import highdicom as hd
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, MultiFrameTrueColorSecondaryCaptureImageStorage
from scipy import ndimage

from dicom_io.cine import CineSeries
from dicom_io.equipment import (
    DEVICE_SERIAL_NUMBER,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from dicom_io.uids import ResultUIDs
from inference.bullseye import bullseye_figure

log = logging.getLogger(__name__)

#: colour scale of circumferential strain, percent (strong shortening red)
CIRCUMFERENTIAL_RANGE = (-30.0, 10.0)
COLOUR_MAP = "RdYlBu"
#: side of the rendered overlay frames, pixels
OVERLAY_SIZE = (512, 448)
OVERLAY_DESCRIPTION = "cinestrain strain overlay"
BULLSEYE_DESCRIPTION = "cinestrain bull's-eye"


# ------------------------------------------------------------------ rendering


def _rgb(fig: Figure) -> np.ndarray:
    """``[H, W, 3]`` uint8 of a figure drawn by Agg."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def carry_to_phase(values: np.ndarray, mask: np.ndarray, u: np.ndarray,
                   spacing: tuple[float, float], iterations: int = 5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A Lagrangian map moved to where its material points are in one phase.

    Parameters
    ----------
    values : numpy.ndarray
        ``[H, W]`` values on the ED grid.
    mask : numpy.ndarray
        ``[H, W]`` bool where ``values`` mean something (ED myocardium).
    u : numpy.ndarray
        ``[2, H, W]`` displacement of that phase, mm (rows, columns).
    spacing : tuple of float
        (row, column) pixel spacing, mm.
    iterations : int
        Fixed-point steps of ``X = x - u(X)``.

    Returns
    -------
    tuple of numpy.ndarray
        ``[H, W]`` values and bool mask at the phase's pixel positions.
    """
    grid = np.mgrid[0:values.shape[0], 0:values.shape[1]].astype(float)
    shift = np.asarray(u, float) / np.asarray(spacing, float)[:, None, None]
    ed = grid.copy()
    for _ in range(iterations):
        at = np.stack([ndimage.map_coordinates(shift[c], ed, order=1, mode="nearest")
                       for c in range(2)])
        ed = grid - at
    moved = ndimage.map_coordinates(np.where(mask, values, 0.0), ed, order=1, mode="nearest")
    inside = ndimage.map_coordinates(mask.astype(float), ed, order=1, mode="constant") >= 0.5
    return moved, inside


def render_overlay_frame(image: np.ndarray, strain: np.ndarray, inside: np.ndarray,
                         spacing: tuple[float, float], title: str) -> np.ndarray:
    """One cine frame in grey with circumferential strain in colour and a colour bar.

    Parameters
    ----------
    image : numpy.ndarray
        ``[H, W]`` cine pixel values.
    strain : numpy.ndarray
        ``[H, W]`` circumferential strain, percent, at this phase's positions.
    inside : numpy.ndarray
        ``[H, W]`` bool, where the strain is drawn.
    spacing : tuple of float
        (row, column) mm, for the aspect ratio.
    title : str
        Printed above the image.

    Returns
    -------
    numpy.ndarray
        ``[OVERLAY_SIZE[1], OVERLAY_SIZE[0], 3]`` uint8.
    """
    width, height = OVERLAY_SIZE
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="black")
    ax = fig.add_axes((0.02, 0.02, 0.78, 0.88))
    low, high = np.percentile(image, (1, 99.5))
    ax.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1),
              aspect=spacing[0] / spacing[1], interpolation="bilinear")
    norm = Normalize(*CIRCUMFERENTIAL_RANGE)
    ax.imshow(np.ma.masked_where(~inside, strain), cmap=COLOUR_MAP, norm=norm, alpha=0.8,
              aspect=spacing[0] / spacing[1], interpolation="nearest")
    ax.axis("off")
    fig.text(0.02, 0.95, title, color="white", fontsize=10, va="center")
    bar = fig.add_axes((0.82, 0.1, 0.035, 0.75))
    cb = fig.colorbar(ScalarMappable(norm=norm, cmap=colormaps[COLOUR_MAP]), cax=bar)
    cb.set_label("circumferential strain (%)", color="white", fontsize=8)
    cb.ax.tick_params(colors="white")
    return _rgb(fig)


def render_bullseye(report: Mapping[str, object]) -> np.ndarray:
    """The bull's-eye of segmental peak circumferential strain with global values and EF.

    Parameters
    ----------
    report : mapping
        The ``report.json`` document.

    Returns
    -------
    numpy.ndarray
        ``[H, W, 3]`` uint8.
    """
    segments = report["segments"]
    values = {int(k): v.get("peak_circumferential_strain_pct")  # type: ignore[union-attr]
              for k, v in segments.items()}  # type: ignore[union-attr]
    fig = bullseye_figure(values, vmin=CIRCUMFERENTIAL_RANGE[0], vmax=0.0, cmap=COLOUR_MAP)
    g = report["global"]
    f = report.get("function") or {}

    def fmt(value: object, unit: str, spec: str = ".1f") -> str:
        return "n/a" if value is None else f"{value:{spec}} {unit}"

    lines = [
        f"global peak circumferential {fmt(g['peak_circumferential_strain_pct'], '%')}"  # type: ignore[index]
        f"  radial {fmt(g['peak_radial_strain_pct'], '%')}",  # type: ignore[index]
        f"EF {fmt(f.get('ef_pct'), '%', '.0f')}  EDV {fmt(f.get('edv_ml'), 'ml', '.0f')}  "  # type: ignore[union-attr]
        f"ESV {fmt(f.get('esv_ml'), 'ml', '.0f')}  mass {fmt(f.get('mass_g'), 'g', '.0f')}",  # type: ignore[union-attr]
    ]
    fig.text(0.5, 0.985, "\n".join(lines), ha="center", va="top", fontsize=8)
    return _rgb(fig)


# ------------------------------------------------------------------ objects


def _source_item(src_class: str, src_uid: str, frame: int | None) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = src_class
    item.ReferencedSOPInstanceUID = src_uid
    if frame is not None:
        item.ReferencedFrameNumber = frame
    return item


def build_strain_overlay(
    cine: CineSeries,
    slice_index: int,
    circumferential_pct: np.ndarray,
    myocardium: np.ndarray,
    u: np.ndarray,
    *,
    uids: ResultUIDs,
    series_number: int,
) -> Dataset:
    """A Multi-frame True Color SC of one slice's circumferential strain over the cine.

    Parameters
    ----------
    cine : CineSeries
        The source stack (pixels, timing, spacing, source frames, patient and study).
    slice_index : int
        The slice s (0-based, the stack's order); InstanceNumber is s + 1.
    circumferential_pct : numpy.ndarray
        ``[S, T, H, W]`` Lagrangian strain maps, percent.
    myocardium : numpy.ndarray
        ``[S, H, W]`` bool ED myocardium.
    u : numpy.ndarray
        ``[S, T, 2, H, W]`` displacement, mm.
    uids : ResultUIDs
    series_number : int

    Returns
    -------
    pydicom.dataset.Dataset
        With file meta information, ready for ``save_as``.
    """
    s_count, t_count, h, w = cine.shape
    if not 0 <= int(slice_index) < s_count:
        raise ValueError(f"slice_index {slice_index} outside 0..{s_count - 1}")
    if np.shape(circumferential_pct) != cine.shape:
        raise ValueError(f"circumferential_pct must be {cine.shape}, "
                         f"got {np.shape(circumferential_pct)}")
    if np.shape(myocardium) != (s_count, h, w):
        raise ValueError(f"myocardium must be {(s_count, h, w)}, got {np.shape(myocardium)}")
    if np.shape(u) != (s_count, t_count, 2, h, w):
        raise ValueError(f"u must be {(s_count, t_count, 2, h, w)}, got {np.shape(u)}")
    s = int(slice_index)
    spacing = cine.in_plane_spacing
    frames = []
    for t in range(t_count):
        strain, inside = carry_to_phase(circumferential_pct[s, t], myocardium[s], u[s, t],
                                        spacing)
        title = (f"slice {s + 1}/{s_count}  phase {t + 1}/{t_count}  "
                 f"{cine.slice_trigger_times[s, t]:.0f} ms  circumferential strain")
        frames.append(render_overlay_frame(cine.pixels[s, t], strain, inside, spacing, title))
    pixels = np.stack(frames)
    ds = _sc_dataset(cine, uids.series("sc-overlay"), uids.instance("sc-overlay", s),
                     series_number, s + 1, OVERLAY_DESCRIPTION)
    _rgb_pixels(ds, pixels)
    ds.SOPClassUID = MultiFrameTrueColorSecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.NumberOfFrames = t_count
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    rr = cine.rr_interval_ms or float(cine.trigger_times[-1] + np.median(
        np.diff(cine.trigger_times)))
    ds.FrameTime = f"{rr / t_count:.3f}"
    ds.RecommendedDisplayFrameRate = max(1, round(1000.0 * t_count / rr))
    ds.ImageComments = (f"circumferential Lagrangian strain (%) over the cine, slice {s + 1}; "
                        f"colour scale {CIRCUMFERENTIAL_RANGE[0]:g} to "
                        f"{CIRCUMFERENTIAL_RANGE[1]:g} %")
    ds.SourceImageSequence = DicomSequence([
        _source_item(f.sop_class_uid, f.sop_instance_uid, f.frame_number)
        for f in cine.sources[s]])
    ds.DerivationDescription = "circumferential strain of cinestrain over the source cine"
    log.info("built strain overlay SC %s of slice %d (%d frames)", ds.SOPInstanceUID, s,
             t_count)
    return ds


def _sc_dataset(cine: CineSeries, series_uid: str, sop_uid: str, series_number: int,
                instance_number: int, description: str) -> Dataset:
    """The modules of a Secondary Capture that do not depend on the pixels."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.file_meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.SpecificCharacterSet = "ISO_IR 192"
    now = datetime.datetime.now()
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    ds.SOPInstanceUID = sop_uid
    cine.patient_study.copy_to(ds)
    ds.Modality = "OT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.BodyPartExamined = "HEART"
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER_MODEL_NAME
    ds.SoftwareVersions = SOFTWARE_VERSIONS
    ds.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
    ds.ConversionType = "WSD"
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SecondaryCaptureDeviceManufacturerModelName = MANUFACTURER_MODEL_NAME
    ds.SecondaryCaptureDeviceSoftwareVersions = SOFTWARE_VERSIONS
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.ContentDate = ds.InstanceCreationDate
    ds.ContentTime = ds.InstanceCreationTime
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.BurnedInAnnotation = "YES"
    ds.RecognizableVisualFeatures = "NO"
    ds.LossyImageCompression = "00"
    return ds


def _rgb_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    """Image Pixel module of ``[frames, H, W, 3]`` uint8 RGB."""
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()


def build_bullseye_capture(
    report: Mapping[str, object],
    cine: CineSeries,
    phase: int,
    *,
    uids: ResultUIDs,
    series_number: int,
) -> hd.sc.SCImage:
    """A single-frame colour SC of the bull's-eye (:func:`render_bullseye`).

    Parameters
    ----------
    report : mapping
        The ``report.json`` document (``segments``, ``global``, ``function``).
    cine : CineSeries
        The source stack (patient and study, source frames).
    phase : int
        The phase (normally ED) whose frame of each slice is referenced as the source
        (with ReferencedFrameNumber when the stack is one multi-frame object).
    uids : ResultUIDs
    series_number : int

    Returns
    -------
    highdicom.sc.SCImage
    """
    for key in ("segments", "global"):
        if not isinstance(report.get(key), Mapping):
            raise ValueError(f"report lacks {key!r} (not a report.json document)")
    if not 0 <= int(phase) < cine.n_phases:
        raise ValueError(f"phase must be in [0, {cine.n_phases}), got {phase}")
    p = cine.patient_study
    sc = hd.sc.SCImage(
        pixel_array=render_bullseye(report),
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        study_instance_uid=p.study_instance_uid,
        series_instance_uid=uids.series("sc-bullseye"),
        series_number=series_number,
        sop_instance_uid=uids.instance("sc-bullseye"),
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_id=p.patient_id,
        patient_name=p.patient_name,
        patient_birth_date=p.patient_birth_date,
        patient_sex=p.patient_sex or None,
        accession_number=p.accession_number,
        study_id=p.study_id,
        study_date=p.study_date,
        study_time=p.study_time,
        referring_physician_name=p.referring_physician_name,
        patient_orientation=("L", "P"),  # replaced below: highdicom insists on one
        series_description=BULLSEYE_DESCRIPTION,
    )
    sc.PatientOrientation = ""  # a diagram: no patient direction along rows or columns
    sc.ManufacturerModelName = MANUFACTURER_MODEL_NAME
    sc.SoftwareVersions = SOFTWARE_VERSIONS
    sc.DeviceSerialNumber = DEVICE_SERIAL_NUMBER
    sc.BodyPartExamined = "HEART"
    sc.BurnedInAnnotation = "YES"
    sc.ImageComments = "AHA 16-segment peak circumferential strain (%), global values, EF"
    sc.SourceImageSequence = DicomSequence([
        _source_item(row[phase].sop_class_uid, row[phase].sop_instance_uid,
                     row[phase].frame_number) for row in cine.sources])
    log.info("built bull's-eye SC %s", sc.SOPInstanceUID)
    return sc

