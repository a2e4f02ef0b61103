"""Scan geometry of a phantom study: an oblique short-axis stack in patient coordinates.

Coordinates are DICOM patient coordinates (LPS: +x patient left, +y posterior, +z head), in
mm. Each slice has its own *slice frame*: ``(row_mm, col_mm) = (i * row_spacing,
j * col_spacing)`` for pixel (row i, column j), with the origin at the centre of pixel
(0, 0), which is ``ImagePositionPatient``. The row direction (first triplet of
``ImageOrientationPatient``) is the direction of increasing column index, the column
direction (second triplet) that of increasing row index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: patient anterior in LPS
ANTERIOR = np.array([0.0, -1.0, 0.0])


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` scaled to unit length (last axis)."""
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rotate(v: np.ndarray, axis: np.ndarray, angle: float) -> np.ndarray:
    """Right-handed rotation of ``v`` ``[3]`` about unit ``axis`` by ``angle`` (radians)."""
    axis = unit(axis)
    return (
        v * np.cos(angle)
        + np.cross(axis, v) * np.sin(angle)
        + axis * np.dot(axis, v) * (1.0 - np.cos(angle))
    )


def in_plane(v: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Unit projection of ``v`` ``[3]`` onto the plane with unit ``normal``."""
    return unit(v - normal * np.dot(v, normal))


@dataclass(frozen=True)
class SlicePlane:
    """One image plane and its pixel grid.

    Attributes
    ----------
    origin : numpy.ndarray
        ``[3]`` ImagePositionPatient: centre of pixel (0, 0), mm.
    row_dir, col_dir : numpy.ndarray
        ``[3]`` unit directions of increasing column / row index.
    spacing : tuple of float
        (row spacing, column spacing), mm.
    shape : tuple of int
        (H, W) pixels.
    """

    origin: np.ndarray
    row_dir: np.ndarray
    col_dir: np.ndarray
    spacing: tuple[float, float]
    shape: tuple[int, int]

    @property
    def normal(self) -> np.ndarray:
        """``[3]`` row direction x column direction."""
        return np.cross(self.row_dir, self.col_dir)

    def to_patient(self, rows_mm: np.ndarray, cols_mm: np.ndarray, offset_mm: float = 0.0
                   ) -> np.ndarray:
        """Patient coordinates ``[..., 3]`` of slice-frame points (mm), optionally shifted
        ``offset_mm`` along the normal (through-plane sub-samples)."""
        rows_mm = np.asarray(rows_mm, dtype=float)[..., None]
        cols_mm = np.asarray(cols_mm, dtype=float)[..., None]
        return (
            self.origin + cols_mm * self.row_dir + rows_mm * self.col_dir
            + offset_mm * self.normal
        )

    def to_slice(self, points: np.ndarray) -> np.ndarray:
        """Slice-frame ``(row_mm, col_mm)`` ``[..., 2]`` of patient points ``[..., 3]``
        (projected onto the plane)."""
        d = np.asarray(points, dtype=float) - self.origin
        return np.stack([d @ self.col_dir, d @ self.row_dir], axis=-1)

    def direction_in_slice(self, v: np.ndarray) -> np.ndarray:
        """Unit in-plane direction ``(row, col)`` of the projection of ``v`` ``[3]``."""
        d = np.array([np.dot(v, self.col_dir), np.dot(v, self.row_dir)])
        return d / np.linalg.norm(d)

    def slice_angle(self, v: np.ndarray) -> float:
        """Slice-frame angle ``atan2(row, col)`` (radians) of the projection of ``v``."""
        d = self.direction_in_slice(v)
        return float(np.arctan2(d[0], d[1]))


@dataclass(frozen=True)
class StackGeometry:
    """The geometry of a short-axis stack, slices ordered base to apex.

    Attributes
    ----------
    orientation : numpy.ndarray
        ``[6]`` ImageOrientationPatient.
    positions : numpy.ndarray
        ``[S, 3]`` ImagePositionPatient per slice, mm.
    spacing : tuple of float
        (row, column) pixel spacing, mm.
    shape : tuple of int
        (H, W).
    slice_thickness : float
        mm.
    """

    orientation: np.ndarray
    positions: np.ndarray
    spacing: tuple[float, float]
    shape: tuple[int, int]
    slice_thickness: float

    @property
    def n_slices(self) -> int:
        """S."""
        return int(self.positions.shape[0])

    def plane(self, s: int) -> SlicePlane:
        """The :class:`SlicePlane` of slice ``s``."""
        return SlicePlane(
            self.positions[s], self.orientation[:3], self.orientation[3:], self.spacing, self.shape
        )

    @property
    def normal(self) -> np.ndarray:
        """``[3]`` unit slice normal (row x column)."""
        return np.cross(self.orientation[:3], self.orientation[3:])

    def positions_along_normal(self) -> np.ndarray:
        """``[S]`` slice positions along the normal, mm (as the cine reader orders them)."""
        return self.positions @ self.normal


def short_axis_basis(
    plane_normal: np.ndarray, in_plane_rotation: float, mirrored: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column directions of a short-axis image.

    The standard display looks from the apex with patient anterior at the top, so the
    septum and RV lie on the left; ``in_plane_rotation`` (radians) turns that view and
    ``mirrored`` flips it left-right (a view from the base), as scanner planning does.

    Parameters
    ----------
    plane_normal : numpy.ndarray
        ``[3]`` unit normal pointing from base to apex.
    in_plane_rotation : float
        Radians.
    mirrored : bool
        Flip the row direction.

    Returns
    -------
    tuple of numpy.ndarray
        ``(row_dir, col_dir)``, each ``[3]`` unit.
    """
    up = rotate(in_plane(ANTERIOR, plane_normal), plane_normal, in_plane_rotation)
    right = np.cross(-plane_normal, up)
    col_dir = -up
    row_dir = -right if mirrored else right
    return unit(row_dir), unit(col_dir)
