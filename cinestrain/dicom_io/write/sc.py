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
import functools
import logging
from collections.abc import Mapping, Sequence

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

from cinestrain.dicom_io.equipment import (
    DEVICE_SERIAL_NUMBER,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    MANUFACTURER,
    MANUFACTURER_MODEL_NAME,
    SOFTWARE_VERSIONS,
)
from cinestrain.dicom_io.read.cine import CineSeries
from cinestrain.dicom_io.write.bullseye import bullseye_figure
from cinestrain.dicom_io.write.uids import ResultUIDs

log = logging.getLogger(__name__)

#: colour scale of circumferential strain, percent (strong shortening red)
CIRCUMFERENTIAL_RANGE = (-30.0, 10.0)
COLOUR_MAP = "RdYlBu"
#: side of the rendered overlay frames, pixels
OVERLAY_SIZE = (512, 448)
OVERLAY_DESCRIPTION = "cinestrain strain overlay"
#: the last field of each overlay frame's title
OVERLAY_QUANTITY = "circumferential strain"
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
    shift = np.asarray(u, float) / np.asarray(spacing, float)[:, None, None]
    moved = np.zeros(values.shape, float)
    inside = np.zeros(values.shape, bool)
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return moved, inside
    # only where the myocardium can be in this phase: its box grown by the largest shift
    pad = int(np.ceil(np.abs(shift).max())) + 2
    h, w = values.shape
    crop = (slice(max(rows.min() - pad, 0), min(rows.max() + pad + 1, h)),
            slice(max(cols.min() - pad, 0), min(cols.max() + pad + 1, w)))
    grid = np.mgrid[crop].astype(float)
    ed = grid.copy()
    for _ in range(iterations):
        at = np.stack([ndimage.map_coordinates(shift[c], ed, order=1, mode="nearest")
                       for c in range(2)])
        ed = grid - at
    moved[crop] = ndimage.map_coordinates(np.where(mask, values, 0.0), ed, order=1,
                                          mode="nearest")
    inside[crop] = ndimage.map_coordinates(mask.astype(float), ed, order=1,
                                           mode="constant") >= 0.5
    return moved, inside


class OverlayRenderer:
    """Draws overlay frames: cine in grey, strain in colour, colour bar, a title above.

    The figure (black page, colour bar and its scale) is drawn once by matplotlib; each
    frame is then composited into it with numpy (the image resampled bilinearly and the
    strain by nearest neighbour into the box that ``imshow`` gives the image, the strain
    blended at 80 % opacity where it is drawn). The title is a few fields at fixed
    stops (slice, phase, time, ...), each field's text drawn by matplotlib once and kept:
    a frame draws only the fields it does not share with an earlier one, because a
    matplotlib figure per frame (about 0.15 s) would make the captures the slowest of
    the results by far. One renderer serves every slice of a stack.

    Parameters
    ----------
    shape : tuple of int
        ``(H, W)`` of the cine frames.
    spacing : tuple of float
        (row, column) mm, for the aspect ratio.
    widest_title : sequence of str
        The widest text each title field will hold (sets the stops).
    """

    def __init__(self, shape: tuple[int, int], spacing: tuple[float, float],
                 widest_title: Sequence[str]) -> None:
        width, height = OVERLAY_SIZE
        fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="black")
        ax = fig.add_axes((0.02, 0.02, 0.78, 0.88))
        h, w = shape
        ax.imshow(np.zeros(shape), cmap="gray", aspect=spacing[0] / spacing[1])
        ax.axis("off")
        self.norm = Normalize(*CIRCUMFERENTIAL_RANGE)
        self.cmap = colormaps[COLOUR_MAP]
        #: the colour map as 256 RGB levels (0-255)
        self.lut = 255 * self.cmap(np.linspace(0.0, 1.0, 256))[:, :3]
        bar = fig.add_axes((0.82, 0.1, 0.035, 0.75))
        cb = fig.colorbar(ScalarMappable(norm=self.norm, cmap=self.cmap), cax=bar)
        cb.set_label("circumferential strain (%)", color="white", fontsize=8)
        cb.ax.tick_params(colors="white")
        self.background = _rgb(fig)
        (left, top), (right, bottom) = ax.transData.transform(
            [(-0.5, -0.5), (w - 0.5, h - 0.5)])
        self.rows = slice(round(height - top), round(height - bottom))
        self.cols = slice(round(left), round(right))
        box_h, box_w = self.rows.stop - self.rows.start, self.cols.stop - self.cols.start
        # where each box pixel's centre falls in the frame (pixel centres at integers);
        # bilinear weights of the two neighbours along each axis, clamped at the edges
        r = (np.arange(box_h) + 0.5) * h / box_h - 0.5
        c = (np.arange(box_w) + 0.5) * w / box_w - 0.5
        self.row_taps = _linear_taps(r, h)
        self.col_taps = _linear_taps(c, w)
        self.nearest = (np.clip(np.round(r).astype(int), 0, h - 1)[:, None],
                        np.clip(np.round(c).astype(int), 0, w - 1)[None, :])
        self.strip = Figure(figsize=(width / 100, 0.1 * height / 100), dpi=100,
                            facecolor="black")
        self.title = self.strip.text(0.02, 0.5, "", color="white", fontsize=10, va="center")
        self.stops = self._stops(widest_title)
        self._fields: dict[tuple[int, str], np.ndarray] = {}

    def _stops(self, widest: Sequence[str]) -> list[float]:
        """x (figure fraction) of each title field: after the widest text of the field
        before it and two spaces."""
        renderer = FigureCanvasAgg(self.strip).get_renderer()

        def extent(text: str) -> float:
            self.title.set_text(text)
            return float(self.title.get_window_extent(renderer).width) / OVERLAY_SIZE[0]

        gap = extent("x  x") - extent("xx")
        stops = [0.02]
        for text in widest[:-1]:
            stops.append(stops[-1] + extent(text) + gap)
        return stops

    def title_strip(self, fields: Sequence[str]) -> np.ndarray:
        """``[h, OVERLAY_SIZE[0], 3]`` uint8: the title's fields at their stops."""
        strip = None
        for i, text in enumerate(fields):
            key = (min(i, len(self.stops) - 1), text)
            drawn = self._fields.get(key)
            if drawn is None:
                self.title.set_text(text)
                self.title.set_x(self.stops[key[0]])
                drawn = self._fields[key] = _rgb(self.strip)
            strip = drawn if strip is None else np.maximum(strip, drawn)
        if strip is None:
            self.title.set_text("")
            strip = _rgb(self.strip)
        return strip

    def frame(self, image: np.ndarray, strain: np.ndarray, inside: np.ndarray,
              title: Sequence[str]) -> np.ndarray:
        """One frame.

        Parameters
        ----------
        image : numpy.ndarray
            ``[H, W]`` cine pixel values.
        strain : numpy.ndarray
            ``[H, W]`` circumferential strain, percent, at this phase's positions.
        inside : numpy.ndarray
            ``[H, W]`` bool, where the strain is drawn.
        title : sequence of str
            The title's fields, printed above the image.

        Returns
        -------
        numpy.ndarray
            ``[OVERLAY_SIZE[1], OVERLAY_SIZE[0], 3]`` uint8.
        """
        low, high = np.percentile(image, (1, 99.5))
        grey = (np.asarray(image, np.float32) - low) / max(high - low, 1.0)
        grey = np.clip(_resample(grey, self.row_taps, self.col_taps), 0.0, 1.0)
        box = np.repeat(np.round(255 * grey).astype(np.uint8)[..., None], 3, axis=2)
        drawn = np.asarray(inside, bool)[self.nearest]
        if drawn.any():
            level = self.norm(np.asarray(strain, np.float32)[self.nearest][drawn])
            index = np.clip(np.round(np.ma.getdata(level) * 255), 0, 255).astype(int)
            box[drawn] = np.round(0.8 * self.lut[index] + 0.2 * 255 * grey[drawn][:, None])
        out = self.background.copy()
        out[self.rows, self.cols] = box
        strip = self.title_strip(title)
        out[: strip.shape[0]] = np.maximum(out[: strip.shape[0]], strip)
        return out


def _linear_taps(x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of the two neighbours of positions ``x`` on ``0..n-1`` and the weight of
    the second (linear interpolation, positions outside clamped to the edge)."""
    x = np.clip(x, 0.0, n - 1.0)
    low = np.minimum(np.floor(x).astype(int), n - 1)
    high = np.minimum(low + 1, n - 1)
    return low, high, (x - low).astype(np.float32)


def _resample(image: np.ndarray, rows: tuple[np.ndarray, np.ndarray, np.ndarray],
              cols: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Bilinear resampling of ``image`` at the grid of row and column taps (the same as
    ``ndimage.map_coordinates(order=1, mode="nearest")`` on that grid, separably)."""
    r0, r1, wr = rows
    c0, c1, wc = cols
    along_rows = image[r0] * (1 - wr)[:, None] + image[r1] * wr[:, None]
    return along_rows[:, c0] * (1 - wc) + along_rows[:, c1] * wc


@functools.lru_cache(maxsize=2)
def _renderer(shape: tuple[int, int], spacing: tuple[float, float],
              widest_title: tuple[str, ...]) -> OverlayRenderer:
    """One renderer for every slice of a stack (and the next stack of the same kind)."""
    return OverlayRenderer(shape, spacing, widest_title)


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
    # digits are equally wide in the title's font: the widest text has the most of them
    longest_ms = max(len(f"{v:.0f}") for v in cine.slice_trigger_times.ravel())
    renderer = _renderer((h, w), tuple(spacing), (
        f"slice {s_count}/{s_count}", f"phase {t_count}/{t_count}", "8" * longest_ms + " ms",
        OVERLAY_QUANTITY))
    for t in range(t_count):
        strain, inside = carry_to_phase(circumferential_pct[s, t], myocardium[s], u[s, t],
                                        spacing)
        title = (f"slice {s + 1}/{s_count}", f"phase {t + 1}/{t_count}",
                 f"{cine.slice_trigger_times[s, t]:.0f} ms", OVERLAY_QUANTITY)
        frames.append(renderer.frame(cine.pixels[s, t], strain, inside, title))
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
    log.debug("built strain overlay SC %s of slice %d (%d frames)", ds.SOPInstanceUID, s,
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
    sc.SpecificCharacterSet = "ISO_IR 192"  # names as the source has them (UTF-8)
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
    log.debug("built bull's-eye SC %s", sc.SOPInstanceUID)
    return sc

