"""Patient-space geometry of image planes: slice normals, orientation checks, view labels.

Coordinates are DICOM patient coordinates (LPS: +x patient left, +y posterior, +z head),
in mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: two planes have the same orientation when their normals and row directions agree
#: within this angle (degrees)
ORIENTATION_TOLERANCE_DEG = 1.0

#: a normal within this angle (degrees) of a patient axis is an axial/coronal/sagittal plane
CARDINAL_TOLERANCE_DEG = 15.0

#: a normal within this angle (degrees) of the typical LV long axis is a short-axis plane
SHORT_AXIS_TOLERANCE_DEG = 45.0

#: typical direction of the LV long axis, base to apex (patient left, anterior, inferior)
TYPICAL_LV_LONG_AXIS = np.array([1.0, -1.0, -1.0]) / np.sqrt(3.0)

_CARDINAL = (("sagittal", 0), ("coronal", 1), ("axial", 2))


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """Unit normal of an image plane.

    Parameters
    ----------
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient (row cosines, column cosines).

    Returns
    -------
    numpy.ndarray
        ``[3]`` row x column, normalised.
    """
    orientation = np.asarray(orientation, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    return normal / np.linalg.norm(normal)


def position_along_normal(position: np.ndarray, normal: np.ndarray) -> float:
    """Signed distance (mm) of a plane through ``position`` ``[3]`` along unit ``normal``."""
    return float(np.dot(np.asarray(position, dtype=float), normal))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def same_orientation(
    a: np.ndarray, b: np.ndarray, tolerance_deg: float = ORIENTATION_TOLERANCE_DEG
) -> bool:
    """Whether two ImageOrientationPatient ``[6]`` describe the same plane orientation.

    Both the slice normals and the row directions must agree within ``tolerance_deg``, so an
    in-plane rotation or flip counts as a different orientation (the pixel grids differ).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    return (
        _angle_deg(slice_normal(a), slice_normal(b)) <= tolerance_deg
        and _angle_deg(a[:3], b[:3]) <= tolerance_deg
    )


@dataclass(frozen=True)
class OrientationClass:
    """What an image plane probably shows.

    Attributes
    ----------
    short_axis : bool or None
        True when the normal lies near the typical LV long axis, False for an axial,
        coronal or sagittal plane, None when it cannot be told from geometry alone
        (an oblique plane far from the typical long axis: a long-axis view, or an unusual
        heart position).
    label : str
        ``"short axis"``, ``"axial"``, ``"coronal"``, ``"sagittal"`` or ``"oblique"``.
    normal : tuple of float
        The unit slice normal (LPS).
    angle_to_long_axis_deg : float
        Angle between the normal (either sign) and the typical LV long axis, degrees.
    """

    short_axis: bool | None
    label: str
    normal: tuple[float, float, float]
    angle_to_long_axis_deg: float

    def describe(self) -> str:
        """A short phrase for people, e.g. ``"not short axis (axial)"``."""
        if self.short_axis is True:
            return "short axis (oblique)"
        if self.short_axis is False:
            return f"not short axis ({self.label})"
        return "oblique, short axis unknown"


def classify_orientation(orientation: np.ndarray) -> OrientationClass:
    """Guess from geometry alone whether a plane is a cardiac short-axis view.

    Without anatomy the LV long axis is unknown; this uses its typical direction in the
    patient (towards patient left, anterior and inferior, ``TYPICAL_LV_LONG_AXIS``):
    short-axis stacks are double-oblique with a normal near it, and a plane whose normal
    is a patient axis is axial, coronal or sagittal, not a short-axis view.

    Parameters
    ----------
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient.

    Returns
    -------
    OrientationClass
    """
    normal = slice_normal(orientation)
    angle = min(_angle_deg(normal, TYPICAL_LV_LONG_AXIS), _angle_deg(-normal, TYPICAL_LV_LONG_AXIS))
    normal_tuple = tuple(round(float(v), 6) for v in normal)
    for label, axis in _CARDINAL:
        if np.degrees(np.arccos(min(1.0, abs(float(normal[axis]))))) <= CARDINAL_TOLERANCE_DEG:
            return OrientationClass(False, label, normal_tuple, angle)
    if angle <= SHORT_AXIS_TOLERANCE_DEG:
        return OrientationClass(True, "short axis", normal_tuple, angle)
    return OrientationClass(None, "oblique", normal_tuple, angle)
