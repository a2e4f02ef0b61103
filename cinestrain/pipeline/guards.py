"""Stacks that are refused before any number is computed, and why.

Strain, LV volumes and the AHA segments are defined on short-axis planes: planes that cut
the LV across its long axis. A stack is refused (a reason, no numbers, no DICOM) when:

1. it has fewer than :data:`MIN_SLICES` slices: one plane shows neither where the LV
   long axis runs nor a volume, whatever its orientation;
2. its planes are axial, coronal or sagittal (``short_axis is False`` in
   :func:`dicom_io.geometry.classify_orientation`): no short-axis view is a cardinal
   plane;
3. the LV long axis as the images show it is far from the slice normal: the line through
   the ED LV blood-pool centres of the slices, in patient coordinates (each centre's
   in-plane position fitted by least squares against its position along the normal),
   makes more than :data:`MAX_AXIS_TILT_DEG` with the normal. Short-axis planes are
   prescribed near-perpendicular to the long axis (1.5 to 8 degrees measured on five
   phantoms, 3 and 4 degrees on two real studies). When fewer than 2 slices have an LV
   the images show no axis: the stack is then refused unless its orientation alone says
   short axis (``short_axis is True``: the normal lies near the typical LV long axis).

Rules 1 and 2 read headers only: the node's scheduler applies them before it makes a job
(:mod:`node.readiness`), :func:`pipeline.run.run_analysis` again before it looks for the
myocardium. Rule 3 needs the images: ``run_analysis`` applies it once the ED myocardium is
found, before the motion model runs.
"""

from __future__ import annotations

import numpy as np

from cinestrain.dicom_io.geometry import OrientationClass

#: fewer slices than this are refused
MIN_SLICES = 2

#: the largest angle (degrees) between the slice normal and the LV long axis the images
#: show that is still a short-axis stack
MAX_AXIS_TILT_DEG = 30.0


def header_refusal(n_slices: int, orientation: OrientationClass) -> str | None:
    """Why a stack is refused from its headers alone (rules 1 and 2), or None.

    Parameters
    ----------
    n_slices
        Slices of the stack.
    orientation
        Its planes' orientation class.

    Returns
    -------
    str or None
        The reason, for people (``cinestrain status``, ``report.json``), or None.
    """
    if orientation.short_axis is False:
        return (f"not a short-axis stack: its planes are {orientation.label}, "
                "not a short-axis view")
    if n_slices < MIN_SLICES:
        return (f"a single slice ({orientation.describe()}): one plane shows neither the "
                f"LV long axis nor a volume; strain and LV function need a stack of at "
                f"least {MIN_SLICES} short-axis slices")
    return None


def lv_axis_tilt_deg(
    lv_centres: np.ndarray,
    image_positions: np.ndarray,
    image_orientations: np.ndarray,
    pixel_spacing: np.ndarray,
) -> tuple[float, int] | None:
    """Angle between the slice normal and the LV long axis the LV centres draw.

    Each slice's LV centre is placed in patient coordinates; its in-plane coordinates
    (along the first slice's row and column directions) are fitted by least squares as a
    line of its position along the normal. The slope's size is the tangent of the angle.

    Parameters
    ----------
    lv_centres
        ``[S, 2]`` (row, column) pixels; NaN on slices without an LV.
    image_positions
        ``[S, 3]`` ImagePositionPatient, mm.
    image_orientations
        ``[S, 6]`` ImageOrientationPatient (the stack's slices are parallel).
    pixel_spacing
        ``[S, 2]`` (row, column) spacing, mm.

    Returns
    -------
    (float, int) or None
        The angle in degrees and the number of slices it was measured on; None when fewer
        than 2 slices have an LV, or they lie in one plane.
    """
    centres = np.asarray(lv_centres, dtype=float)
    found = np.all(np.isfinite(centres), axis=1)
    if found.sum() < 2:
        return None
    orientations = np.asarray(image_orientations, dtype=float)[found]
    spacing = np.asarray(pixel_spacing, dtype=float)[found]
    row_dir, col_dir = orientations[:, :3], orientations[:, 3:]
    # column index runs along the row direction, row index along the column direction
    points = (np.asarray(image_positions, dtype=float)[found]
              + (centres[found, 1] * spacing[:, 1])[:, None] * row_dir
              + (centres[found, 0] * spacing[:, 0])[:, None] * col_dir)
    u_dir, v_dir = orientations[0, :3], orientations[0, 3:]
    normal = np.cross(u_dir, v_dir)
    along = points @ (normal / np.linalg.norm(normal))
    if np.ptp(along) < 1e-6:
        return None
    design = np.stack([np.ones_like(along), along], axis=1)
    in_plane = np.stack([points @ u_dir, points @ v_dir], axis=1)
    slopes = np.linalg.lstsq(design, in_plane, rcond=None)[0][1]
    return float(np.degrees(np.arctan(np.hypot(*slopes)))), int(found.sum())


def axis_refusal(tilt: tuple[float, int] | None, orientation: OrientationClass) -> str | None:
    """Why a stack is refused from the LV long axis its images show (rule 3), or None.

    Parameters
    ----------
    tilt
        What :func:`lv_axis_tilt_deg` measured.
    orientation
        The planes' orientation class (decides when the images show no axis).

    Returns
    -------
    str or None
    """
    if tilt is None:
        if orientation.short_axis is True:
            return None
        return (f"the LV is found on fewer than 2 slices, so the images do not show its "
                f"long axis, and the planes' orientation ({orientation.describe()}) does "
                "not say short axis")
    angle, slices = tilt
    if angle <= MAX_AXIS_TILT_DEG:
        return None
    return (f"not a short-axis view: the planes are {angle:.0f} degrees from perpendicular "
            f"to the LV long axis that the LV centres of {slices} slices show (at most "
            f"{MAX_AXIS_TILT_DEG:.0f} for a short-axis stack)")
