"""Rendering: the ED anatomy seen through the inverse motion, then the scanner.

Frame ``t`` is ``I_t(y) = E(phi_t^-1(y))``, where ``E`` is the supersampled ED image
box-filtered over one output pixel (partial volume: at the identity this *is* the average
of the sub-pixels of each pixel) and ``phi_t^-1`` the exact inverse of the Lagrangian map
(:mod:`inference.phantom.wall_motion`), sampled with ``torch.nn.functional.grid_sample``. The
scanner then adds a point-spread blur, the coil sensitivity (bias field) and Rician noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from cinestrain.inference.phantom.anatomy import EDSlice
from cinestrain.inference.phantom.geometry import SlicePlane
from cinestrain.inference.phantom.wall_motion import SliceMotion


def pixel_grid_mm(plane: SlicePlane) -> tuple[np.ndarray, np.ndarray]:
    """Slice-frame (row_mm, col_mm) ``[H, W]`` of the pixel centres."""
    h, w = plane.shape
    rows = np.arange(h) * plane.spacing[0]
    cols = np.arange(w) * plane.spacing[1]
    return np.meshgrid(rows, cols, indexing="ij")


def box_filtered(ed: EDSlice) -> tuple[np.ndarray, float]:
    """The ED image averaged over one output pixel, and the sub-pixel offset of its samples.

    Returns
    -------
    tuple
        ``(image [H*k, W*k] float32, offset)``: entry ``i`` of the image is the mean of the
        ``k`` sub-pixels centred at sub-pixel coordinate ``i + offset``.
    """
    k = ed.supersample
    if k == 1:
        return ed.intensity, 0.0
    origin = 0 if k % 2 else -1
    image = ndimage.uniform_filter(ed.intensity, size=k, mode="nearest", origin=origin)
    return image.astype(np.float32), 0.0 if k % 2 else 0.5


def render_frames(
    ed: EDSlice, motion: SliceMotion, levels: np.ndarray, plane: SlicePlane
) -> np.ndarray:
    """Noise-free frames of one slice.

    Parameters
    ----------
    ed : EDSlice
        The slice's supersampled ED anatomy.
    motion : SliceMotion
        The slice's Lagrangian map.
    levels : numpy.ndarray
        ``[T]`` contraction level of each frame (0 = ED).
    plane : SlicePlane
        The output pixel grid.

    Returns
    -------
    numpy.ndarray
        ``[T, H, W]`` float32 intensities (relative to LV blood).
    """
    image, offset = box_filtered(ed)
    k = ed.supersample
    rows_mm, cols_mm = pixel_grid_mm(plane)
    c = motion.pose.centre
    near = np.hypot(rows_mm - c[0], cols_mm - c[1]) < motion.reach_mm
    grids = []
    for v in np.asarray(levels, dtype=float):
        src_r, src_c = rows_mm.copy(), cols_mm.copy()
        if v > 0:
            src_r[near], src_c[near] = motion.inverse(rows_mm[near], cols_mm[near], float(v))
        # slice-frame mm -> sub-pixel index of the box-filtered image
        m_r = (src_r / plane.spacing[0] + 0.5) * k - 0.5 - offset
        m_c = (src_c / plane.spacing[1] + 0.5) * k - 0.5 - offset
        grids.append(np.stack([m_c * (2.0 / (image.shape[1] - 1)) - 1.0,
                               m_r * (2.0 / (image.shape[0] - 1)) - 1.0], axis=-1))
    grid = torch.from_numpy(np.concatenate(grids, axis=0)[None].astype(np.float32))
    src = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=True)
    return out[0, 0].numpy().reshape(len(levels), *plane.shape)


def displacement(motion: SliceMotion, levels: np.ndarray, plane: SlicePlane) -> np.ndarray:
    """Truth Lagrangian displacement ``u`` on the slice's ED pixel grid.

    Returns
    -------
    numpy.ndarray
        ``[T, 2, H, W]`` float32, mm (component 0 rows, 1 columns); exactly zero where
        nothing moves and at ``v = 0``.
    """
    rows_mm, cols_mm = pixel_grid_mm(plane)
    c = motion.pose.centre
    near = np.hypot(rows_mm - c[0], cols_mm - c[1]) < motion.reach_mm
    out = np.zeros((len(levels), 2) + tuple(plane.shape), dtype=np.float32)
    for t, v in enumerate(np.asarray(levels, dtype=float)):
        if v <= 0:
            continue
        y_r, y_c = motion.forward(rows_mm[near], cols_mm[near], float(v))
        out[t, 0][near] = y_r - rows_mm[near]
        out[t, 1][near] = y_c - cols_mm[near]
    return out


@dataclass(frozen=True)
class CoilBias:
    """Smooth receive-coil sensitivity, 1 at the heart, in patient coordinates.

    ``log b = a . q + q^T diag(b) q`` with ``q = (P - centre) / 100 mm``: a linear
    gradient (anterior array closer) and a bowl (brighter near both coil arrays).
    """

    centre: np.ndarray
    linear: np.ndarray
    quadratic: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, centre: np.ndarray) -> CoilBias:
        """Random sensitivity around ``centre`` ``[3]`` (mm)."""
        linear = np.array([rng.uniform(-0.2, 0.2), rng.uniform(-0.45, 0.05),
                           rng.uniform(-0.15, 0.15)])
        quadratic = np.array([rng.uniform(0.0, 0.15), rng.uniform(0.05, 0.3), 0.0])
        return cls(np.asarray(centre, dtype=float), linear, quadratic)

    def field(self, points: np.ndarray) -> np.ndarray:
        """Sensitivity at patient points ``[..., 3]``."""
        q = (np.asarray(points) - self.centre) / 100.0
        return np.exp(q @ self.linear + (q * q) @ self.quadratic)


def acquire(
    frames: np.ndarray,
    bias: np.ndarray,
    snr: float | None,
    psf_sigma_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """What the scanner makes of noise-free frames: blur, coil bias, Rician noise.

    Parameters
    ----------
    frames : numpy.ndarray
        ``[T, H, W]`` intensities relative to LV blood.
    bias : numpy.ndarray
        ``[H, W]`` coil sensitivity.
    snr : float or None
        LV-blood signal over the noise standard deviation (None: no noise).
    psf_sigma_px : float
        Gaussian point-spread (k-space filter) width, pixels (0: none).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        ``[T, H, W]`` float32 magnitude.
    """
    out = frames.astype(np.float32)
    if psf_sigma_px > 0:
        out = ndimage.gaussian_filter(out, (0, psf_sigma_px, psf_sigma_px))
    out = out * bias[None].astype(np.float32)
    if snr is not None:
        sigma = 1.0 / float(snr)
        real = out + rng.normal(0.0, sigma, out.shape).astype(np.float32)
        imag = rng.normal(0.0, sigma, out.shape).astype(np.float32)
        out = np.hypot(real, imag)
    return out.astype(np.float32)
