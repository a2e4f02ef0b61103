"""End-diastolic anatomy of the phantom: tissue labels and bSSFP intensities.

The heart is described in its own polar coordinates: on each short-axis slice, radius
``r`` (mm) from the LV centre and the *heart angle* ``phi`` (radians): ``phi = 0`` points
to the mid-septum (towards the RV), ``phi = +pi/2`` to the anterior wall, ``phi = -pi/2``
to the inferior wall, ``phi = +-pi`` to the lateral wall. Every boundary is a radius as a
function of ``phi`` and of the level ``z`` along the LV long axis (0 at the base, 1 at the
endocardial apex), so the anatomy varies smoothly from base to apex and the motion
(:mod:`inference.phantom.wall_motion`) can move it ray by ray.

Outside the heart, the torso (chest wall, lungs, mediastinum, spine, aorta, diaphragm,
liver, upper abdomen) is a 3D model in patient coordinates, so oblique slices cut it
consistently. Intensities are bSSFP-like, relative to LV blood = 1: bright blood and fat,
dark myocardium and muscle, mid-grey liver, near-black lungs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from scipy import ndimage

from cinestrain.inference.phantom.geometry import SlicePlane

TWO_PI = 2.0 * np.pi


class Tissue(IntEnum):
    """Tissue labels of the phantom."""

    AIR = 0
    SUBCUTANEOUS_FAT = 1
    MUSCLE = 2
    LUNG = 3
    LIVER = 4
    ABDOMEN = 5
    BONE = 6
    CSF = 7
    AORTA = 8
    MEDIASTINUM = 9
    PERICARDIAL_FAT = 10
    PERICARDIUM = 11
    EPICARDIAL_FAT = 12
    LV_BLOOD = 13
    LV_MYOCARDIUM = 14
    PAPILLARY = 15
    TRABECULAE = 16
    RV_BLOOD = 17
    RV_MYOCARDIUM = 18


#: tissues inside the LV endocardial contour (the blood pool whose centroid is the LV centre)
LV_CAVITY = (Tissue.LV_BLOOD, Tissue.PAPILLARY, Tissue.TRABECULAE)

# bSSFP signal relative to LV blood, and relative texture amplitude, per tissue
_INTENSITY = {
    Tissue.AIR: 0.0, Tissue.SUBCUTANEOUS_FAT: 0.9, Tissue.MUSCLE: 0.2, Tissue.LUNG: 0.035,
    Tissue.LIVER: 0.4, Tissue.ABDOMEN: 0.3, Tissue.BONE: 0.5, Tissue.CSF: 0.85,
    Tissue.AORTA: 0.8, Tissue.MEDIASTINUM: 0.45, Tissue.PERICARDIAL_FAT: 0.9,
    Tissue.PERICARDIUM: 0.08, Tissue.EPICARDIAL_FAT: 0.88, Tissue.LV_BLOOD: 1.0,
    Tissue.LV_MYOCARDIUM: 0.25, Tissue.PAPILLARY: 0.27, Tissue.TRABECULAE: 0.32,
    Tissue.RV_BLOOD: 0.95, Tissue.RV_MYOCARDIUM: 0.27,
}
_TEXTURE = {
    Tissue.AIR: 0.0, Tissue.SUBCUTANEOUS_FAT: 0.05, Tissue.MUSCLE: 0.1, Tissue.LUNG: 0.35,
    Tissue.LIVER: 0.07, Tissue.ABDOMEN: 0.25, Tissue.BONE: 0.15, Tissue.CSF: 0.04,
    Tissue.AORTA: 0.04, Tissue.MEDIASTINUM: 0.15, Tissue.PERICARDIAL_FAT: 0.05,
    Tissue.PERICARDIUM: 0.1, Tissue.EPICARDIAL_FAT: 0.05, Tissue.LV_BLOOD: 0.03,
    Tissue.LV_MYOCARDIUM: 0.07, Tissue.PAPILLARY: 0.07, Tissue.TRABECULAE: 0.07,
    Tissue.RV_BLOOD: 0.04, Tissue.RV_MYOCARDIUM: 0.07,
}
#: small vessels: bright dots in the lungs and the liver
_VESSEL_INTENSITY = {Tissue.LUNG: 0.16, Tissue.LIVER: 0.7}
_VESSEL_THRESHOLD = 2.3


def wrap(angle: np.ndarray) -> np.ndarray:
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(angle) + np.pi) % TWO_PI - np.pi


def _bump(delta: np.ndarray, width: float) -> np.ndarray:
    """Gaussian bump of a wrapped angle difference."""
    return np.exp(-0.5 * (wrap(delta) / width) ** 2)


def _harmonics(phi: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_k a_k cos(k phi) + b_k sin(k phi)`` for ``coeffs[k-1] = (a_k, b_k)``."""
    out = np.zeros_like(phi, dtype=float)
    for k, (a, b) in enumerate(coeffs, start=1):
        out = out + a * np.cos(k * phi) + b * np.sin(k * phi)
    return out


@dataclass(frozen=True)
class Radii:
    """Boundaries along the rays of a short-axis section, mm from the LV centre.

    Every attribute has the shape of the ``phi`` it was evaluated at. From the centre out:
    LV blood | ``endo`` | LV myocardium | ``epi`` | RV blood (where ``rv_out > epi``) |
    ``rv_out`` | RV free wall | ``rv_wall`` | epicardial fat | ``fat`` | pericardium |
    ``pericardium`` | pericardial fat | ``outer``.
    """

    endo: np.ndarray
    epi: np.ndarray
    rv_out: np.ndarray
    rv_wall: np.ndarray
    fat: np.ndarray
    pericardium: np.ndarray
    outer: np.ndarray
    trabecular_depth: np.ndarray


@dataclass(frozen=True)
class HeartSection:
    """The heart on one short-axis level, in heart polar coordinates.

    Attributes
    ----------
    z : float
        Level along the LV long axis (0 base, 1 endocardial apex).
    r_endo, wall : float
        Mean ED endocardial radius and wall thickness, mm.
    endo_harmonics, wall_harmonics : numpy.ndarray
        ``[K, 2]`` relative Fourier coefficients (k = 1..K) of those two radii.
    rv_depth : float
        Largest RV cavity depth (septum to free wall), mm.
    phi_anterior, phi_inferior : float
        Heart angles of the anterior (> 0) and inferior (< 0) RV insertion points, rad.
    rv_skew : float
        Exponent that moves the widest part of the RV crescent (1 = centred).
    rv_wall, epi_fat, groove_fat, rv_fat, pericardium : float
        Thicknesses, mm.
    pericardial_fat_anterior, pericardial_fat_inferior : float
        Thickness of the pericardial fat pads (anterior, diaphragmatic), mm.
    papillary : tuple
        ``((phi, radius_mm), ...)`` papillary muscles touching the endocardium.
    trabecular_depth : float
        Depth of the trabeculated layer inside the endocardium, mm (laterally).
    """

    z: float
    r_endo: float
    wall: float
    endo_harmonics: np.ndarray
    wall_harmonics: np.ndarray
    rv_depth: float
    phi_anterior: float
    phi_inferior: float
    rv_skew: float
    rv_wall: float
    epi_fat: float
    groove_fat: float
    rv_fat: float
    pericardium: float
    pericardial_fat_anterior: float
    pericardial_fat_inferior: float
    papillary: tuple[tuple[float, float], ...]
    trabecular_depth: float

    def rv_profile(self, phi: np.ndarray) -> np.ndarray:
        """RV crescent depth profile in [0, 1] (0 outside the RV sector)."""
        span = self.phi_anterior - self.phi_inferior
        u = np.clip((wrap(phi - self.phi_inferior)) / span, 0.0, 1.0)
        inside = (wrap(phi - self.phi_inferior) >= 0) & (wrap(phi - self.phi_inferior) <= span)
        return np.where(inside, np.sin(np.pi * u**self.rv_skew) ** 0.8, 0.0)

    def radii(self, phi: np.ndarray) -> Radii:
        """Boundaries at heart angles ``phi`` (radians, any shape)."""
        phi = np.asarray(phi, dtype=float)
        endo = self.r_endo * (1.0 + _harmonics(phi, self.endo_harmonics))
        epi = endo + self.wall * (1.0 + _harmonics(phi, self.wall_harmonics))
        p = self.rv_profile(phi)
        rv_out = epi + self.rv_depth * p
        rv_wall = rv_out + self.rv_wall * np.minimum(1.0, p / 0.12)
        grooves = _bump(phi - self.phi_anterior, 0.18) + _bump(phi - self.phi_inferior, 0.18)
        fat = rv_wall + self.epi_fat + self.groove_fat * grooves + self.rv_fat * p
        peri = fat + self.pericardium
        pads = (self.pericardial_fat_anterior * _bump(phi - 0.9, 0.35)
                + self.pericardial_fat_inferior * _bump(phi + 1.6, 0.3))
        lateral = 0.35 + 0.65 * 0.5 * (1.0 - np.cos(phi))
        return Radii(endo, epi, rv_out, rv_wall, fat, peri, peri + pads,
                     self.trabecular_depth * lateral)


@dataclass(frozen=True)
class HeartShape:
    """Size and shape of the heart (case constants; :meth:`section` gives one level)."""

    r_endo: float
    wall: float
    apex_wall_ratio: float
    endo_harmonics: np.ndarray
    wall_harmonics: np.ndarray
    rv_depth: float
    phi_anterior: float
    phi_inferior: float
    rv_skew: float
    rv_wall: float
    epi_fat: float
    groove_fat: float
    rv_fat: float
    pericardial_fat_anterior: float
    pericardial_fat_inferior: float
    papillary: tuple[tuple[float, float], ...]
    trabecular_depth: float

    def section(self, z: float) -> HeartSection:
        """The section at level ``z`` (0 base, 1 endocardial apex)."""
        zc = float(np.clip(z, 0.0, 0.97))
        r_endo = self.r_endo * np.sqrt(1.0 - zc**2.2) * (1.0 - 0.06 * np.exp(-((zc / 0.08) ** 2)))
        wall = self.wall * (1.0 - (1.0 - self.apex_wall_ratio) * zc)
        pap_scale = max(0.0, np.sin(np.pi * (zc - 0.12) / 0.72)) if 0.12 < zc < 0.84 else 0.0
        papillary = tuple((phi, rad * pap_scale) for phi, rad in self.papillary if pap_scale > 0.3)
        base_weight = 1.0 + 1.0 * (1.0 - zc) ** 4
        return HeartSection(
            z=float(z),
            r_endo=float(r_endo),
            wall=float(wall),
            endo_harmonics=self.endo_harmonics * (1.0 + 0.5 * zc),
            wall_harmonics=self.wall_harmonics,
            rv_depth=self.rv_depth * (1.0 - 0.55 * zc),
            phi_anterior=self.phi_anterior * (1.0 - 0.15 * zc),
            phi_inferior=self.phi_inferior * (1.0 - 0.15 * zc),
            rv_skew=self.rv_skew,
            rv_wall=self.rv_wall,
            epi_fat=self.epi_fat * base_weight,
            groove_fat=self.groove_fat * base_weight,
            rv_fat=self.rv_fat,
            pericardium=0.8,
            pericardial_fat_anterior=self.pericardial_fat_anterior,
            pericardial_fat_inferior=self.pericardial_fat_inferior * (0.5 + zc),
            papillary=papillary,
            trabecular_depth=self.trabecular_depth * (0.6 + 0.8 * zc),
        )


@dataclass(frozen=True)
class Heart:
    """The heart in patient space: LV long axis, its angular frame and shape.

    Attributes
    ----------
    base : numpy.ndarray
        ``[3]`` LV centre on the basal level (z = 0), mm (LPS).
    axis : numpy.ndarray
        ``[3]`` unit LV long axis, base to apex.
    septal : numpy.ndarray
        ``[3]`` unit vector perpendicular to ``axis`` towards the mid-septum (phi = 0).
    anterior : numpy.ndarray
        ``[3]`` unit vector perpendicular to ``axis`` and ``septal``, phi = +pi/2, on the
        patient-anterior side.
    length : float
        Base to endocardial apex, mm.
    shape : HeartShape
    """

    base: np.ndarray
    axis: np.ndarray
    septal: np.ndarray
    anterior: np.ndarray
    length: float
    shape: HeartShape


@dataclass(frozen=True)
class SlicePose:
    """Where the heart lies on one slice.

    Attributes
    ----------
    centre : numpy.ndarray
        ``[2]`` LV centre (long-axis intersection), slice frame ``(row_mm, col_mm)``.
    theta_septum : float
        Slice angle ``atan2(row, col)`` of phi = 0, radians.
    sense : float
        +1 or -1: slice angle ``theta = theta_septum + sense * phi``.
    z : float
        Level along the long axis.
    """

    centre: np.ndarray
    theta_septum: float
    sense: float
    z: float

    def theta(self, phi: np.ndarray) -> np.ndarray:
        """Slice angles of heart angles ``phi``."""
        return self.theta_septum + self.sense * np.asarray(phi)

    def phi(self, theta: np.ndarray) -> np.ndarray:
        """Heart angles of slice angles ``theta`` (wrapped)."""
        return wrap(self.sense * (np.asarray(theta) - self.theta_septum))

    def point(self, phi: float, r: float) -> np.ndarray:
        """Slice-frame point ``(row_mm, col_mm)`` at heart angle ``phi``, radius ``r``."""
        th = float(self.theta(phi))
        return self.centre + r * np.array([np.sin(th), np.cos(th)])


def slice_pose(heart: Heart, plane: SlicePlane, offset_mm: float = 0.0) -> SlicePose:
    """The heart's pose on ``plane`` (shifted ``offset_mm`` along its normal)."""
    normal = plane.normal
    origin = plane.origin + offset_mm * normal
    tau = float(np.dot(origin - heart.base, normal) / np.dot(heart.axis, normal))
    centre3 = heart.base + tau * heart.axis
    d = centre3 - origin
    centre = np.array([np.dot(d, plane.col_dir), np.dot(d, plane.row_dir)])
    theta_sep = plane.slice_angle(heart.septal)
    theta_ant = plane.slice_angle(heart.anterior)
    sense = 1.0 if wrap(theta_ant - theta_sep) > 0 else -1.0
    return SlicePose(centre, theta_sep, sense, tau / heart.length)


@dataclass(frozen=True)
class Body:
    """The torso around the heart, in patient coordinates (mm).

    Attributes
    ----------
    centre : numpy.ndarray
        ``[2]`` (x, y) of the torso's axis (head-feet).
    half_axes : tuple of float
        Torso semi-axes (left-right, anterior-posterior), mm.
    fat, muscle : float
        Subcutaneous fat and chest-wall muscle thickness, mm.
    diaphragm_z : float
        z of the diaphragm's central tendon (under the heart), mm.
    dome_right, dome_left : float
        Height of the right / left dome above it, mm.
    liver_edge : float
        x offset (from the torso axis) of the liver's left edge, mm.
    """

    centre: np.ndarray
    half_axes: tuple[float, float]
    fat: float
    muscle: float
    diaphragm_z: float
    dome_right: float
    dome_left: float
    liver_edge: float

    def diaphragm(self, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
        """z of the diaphragm at torso-relative (bx, by), mm."""
        ax, ay = self.half_axes
        return (self.diaphragm_z
                + self.dome_right * np.exp(-0.5 * ((bx + 0.45 * ax) / (0.4 * ax)) ** 2)
                + self.dome_left * np.exp(-0.5 * ((bx - 0.5 * ax) / (0.35 * ax)) ** 2)
                - 45.0 * ((by - 0.1 * ay) / ay) ** 2)

    def labels(self, points: np.ndarray) -> np.ndarray:
        """Tissue labels (uint8) at patient points ``[..., 3]``."""
        bx = points[..., 0] - self.centre[0]
        by = points[..., 1] - self.centre[1]
        z = points[..., 2]
        ax, ay = self.half_axes
        rho = np.sqrt((bx / ax) ** 2 + (by / ay) ** 2)
        depth = np.hypot(bx, by) * (1.0 / np.maximum(rho, 1e-6) - 1.0)
        out = np.full(bx.shape, Tissue.AIR, dtype=np.uint8)
        inside = rho < 1.0
        out[inside] = Tissue.SUBCUTANEOUS_FAT
        wall = inside & (depth > self.fat)
        out[wall] = Tissue.MUSCLE
        cavity = depth > self.fat + self.muscle + 4.0
        zd = self.diaphragm(bx, by)
        thorax = cavity & (z > zd + 3.0)
        abdomen = cavity & (z < zd)
        out[thorax] = Tissue.LUNG
        out[abdomen] = Tissue.ABDOMEN
        liver = ((bx - self.liver_edge + 110.0) / 110.0) ** 2 + ((by + 10.0) / ay) ** 2 < 1.0
        out[abdomen & liver] = Tissue.LIVER
        # mediastinum behind the heart, spine and aorta, back muscles
        spine_y = ay - self.fat - self.muscle - 28.0
        medi = thorax & (((bx - 5.0) / 32.0) ** 2 + ((by - spine_y + 30.0) / 30.0) ** 2 < 1.0)
        out[medi] = Tissue.MEDIASTINUM
        back = (bx / 75.0) ** 2 + ((by - spine_y - 22.0) / 38.0) ** 2 < 1.0
        out[inside & back & (out != Tissue.SUBCUTANEOUS_FAT)] = Tissue.MUSCLE
        out[inside & (np.hypot(bx, by - spine_y) < 17.0)] = Tissue.BONE
        out[inside & (np.hypot(bx, by - spine_y - 26.0) < 7.0)] = Tissue.CSF
        out[inside & (np.hypot(bx - 24.0, by - spine_y + 26.0) < 11.0)] = Tissue.AORTA
        return out


@dataclass(frozen=True)
class Contrast:
    """Per-case bSSFP contrast: intensity and texture amplitude per :class:`Tissue`."""

    intensity: np.ndarray
    texture: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Contrast:
        """Nominal contrast with per-tissue jitter (about +-8 %)."""
        n = len(Tissue)
        intensity = np.array([_INTENSITY[Tissue(i)] for i in range(n)])
        texture = np.array([_TEXTURE[Tissue(i)] for i in range(n)])
        intensity = intensity * rng.uniform(0.92, 1.08, n)
        intensity[Tissue.LV_BLOOD] = 1.0
        return cls(intensity, texture * rng.uniform(0.7, 1.3, n))


def heart_labels(
    rows_mm: np.ndarray,
    cols_mm: np.ndarray,
    pose: SlicePose,
    section: HeartSection,
    trabecular_field: np.ndarray,
) -> np.ndarray:
    """Heart tissue labels at slice-frame points; ``Tissue.AIR`` (0) outside the heart.

    Parameters
    ----------
    rows_mm, cols_mm : numpy.ndarray
        Slice-frame coordinates (mm), any shape.
    pose : SlicePose
    section : HeartSection
    trabecular_field : numpy.ndarray
        Unit-variance smooth random field at the same points (trabeculation pattern).
    """
    out = np.zeros(np.shape(rows_mm), dtype=np.uint8)
    reach = float(section.radii(np.linspace(-np.pi, np.pi, 361)).outer.max()) + 1.0
    r_all = np.hypot(rows_mm - pose.centre[0], cols_mm - pose.centre[1])
    near = r_all < reach
    rows_n, cols_n, r = rows_mm[near], cols_mm[near], r_all[near]
    phi = pose.phi(np.arctan2(rows_n - pose.centre[0], cols_n - pose.centre[1]))
    rad = section.radii(phi)
    lab = np.zeros(r.shape, dtype=np.uint8)
    layers = (
        (rad.outer, Tissue.PERICARDIAL_FAT),
        (rad.pericardium, Tissue.PERICARDIUM),
        (rad.fat, Tissue.EPICARDIAL_FAT),
        (rad.rv_wall, Tissue.RV_MYOCARDIUM),
        (rad.rv_out, Tissue.RV_BLOOD),
        (rad.epi, Tissue.LV_MYOCARDIUM),
        (rad.endo, Tissue.LV_BLOOD),
    )
    for boundary, tissue in layers:
        lab[r < boundary] = tissue
    depth = (rad.endo - r) / np.maximum(rad.trabecular_depth, 1e-3)
    trab = ((lab == Tissue.LV_BLOOD) & (depth < 1.0)
            & (trabecular_field[near] > 0.2 + 1.8 * depth))
    lab[trab] = Tissue.TRABECULAE
    for phi_p, radius in section.papillary:
        endo_p = float(section.radii(np.array(phi_p)).endo)
        centre = pose.point(phi_p, endo_p - 0.6 * radius)
        inside = np.hypot(rows_n - centre[0], cols_n - centre[1]) < radius
        lab[inside & (r < rad.endo)] = Tissue.PAPILLARY
    out[near] = lab
    return out


@dataclass(frozen=True)
class TextureFields:
    """Smooth unit-variance random fields on a grid: ``coarse`` (tissue texture),
    ``medium`` (vessels) and ``fine`` (trabeculae)."""

    coarse: np.ndarray
    medium: np.ndarray
    fine: np.ndarray

    @classmethod
    def sample(cls, shape: tuple[int, int], pixel_mm: float, rng: np.random.Generator
               ) -> TextureFields:
        """Fields of correlation lengths ~4, ~2 and ~0.8 mm on a grid of ``pixel_mm``."""
        fields = []
        for sigma_mm in (4.0, 2.0, 0.8):
            f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_mm / pixel_mm,
                                        mode="wrap")
            fields.append((f / max(float(f.std()), 1e-12)).astype(np.float32))
        return cls(*fields)


def intensities(labels: np.ndarray, contrast: Contrast, tex: TextureFields) -> np.ndarray:
    """bSSFP intensity (relative to LV blood) of a label map with textures (float32)."""
    base = contrast.intensity[labels] * (1.0 + contrast.texture[labels] * tex.coarse)
    for tissue, value in _VESSEL_INTENSITY.items():
        vessel = (labels == tissue) & (tex.medium > _VESSEL_THRESHOLD)
        base = np.where(vessel, value, base)
    return np.clip(base, 0.0, None).astype(np.float32)


@dataclass(frozen=True)
class EDSlice:
    """One slice's ED anatomy on a supersampled grid.

    Attributes
    ----------
    intensity : numpy.ndarray
        ``[H*k, W*k]`` float32 intensity (through-plane averaged), before any blur.
    labels : numpy.ndarray
        ``[H*k, W*k]`` uint8 :class:`Tissue` labels of the central plane.
    supersample : int
        k.
    pose : SlicePose
        The heart's pose on the central plane.
    section : HeartSection
    """

    intensity: np.ndarray
    labels: np.ndarray
    supersample: int
    pose: SlicePose
    section: HeartSection


def supersampled_grid(plane: SlicePlane, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Slice-frame (row_mm, col_mm) ``[H*k, W*k]`` of the sub-pixel centres."""
    h, w = plane.shape
    rows = ((np.arange(h * k) + 0.5) / k - 0.5) * plane.spacing[0]
    cols = ((np.arange(w * k) + 0.5) / k - 0.5) * plane.spacing[1]
    return np.meshgrid(rows, cols, indexing="ij")


def render_ed(
    heart: Heart,
    body: Body,
    contrast: Contrast,
    plane: SlicePlane,
    *,
    supersample: int,
    slice_thickness: float,
    through_plane: int,
    rng: np.random.Generator,
) -> EDSlice:
    """Render one slice's ED anatomy, supersampled ``k`` times in-plane.

    Parameters
    ----------
    heart, body, contrast
        The case's anatomy and contrast.
    plane : SlicePlane
        The slice.
    supersample : int
        Sub-pixels per pixel along each axis (k).
    slice_thickness : float
        mm; ``through_plane`` sub-planes spread over it are averaged (partial volume).
    through_plane : int
        Number of sub-planes (1: the central plane only). Only the heart, whose sections
        change quickly along the long axis, is averaged; the torso is taken from the
        central plane.
    rng : numpy.random.Generator
        Texture randomness.

    Returns
    -------
    EDSlice
    """
    if supersample < 1 or through_plane < 1:
        raise ValueError("supersample and through_plane must be >= 1")
    rows_mm, cols_mm = supersampled_grid(plane, supersample)
    pixel_mm = min(plane.spacing) / supersample
    tex = TextureFields.sample(rows_mm.shape, pixel_mm, rng)
    offsets = (np.linspace(-1.0, 1.0, through_plane) * slice_thickness / 3.0
               if through_plane > 1 else np.zeros(1))
    body_labels = body.labels(plane.to_patient(rows_mm, cols_mm))
    centre_pose = slice_pose(heart, plane)
    centre_section = heart.shape.section(centre_pose.z)

    def labels_at(pose: SlicePose, section: HeartSection) -> np.ndarray:
        labels = heart_labels(rows_mm, cols_mm, pose, section, tex.fine)
        return np.where(labels == Tissue.AIR, body_labels, labels)

    total = np.zeros(rows_mm.shape, dtype=np.float32)
    for offset in offsets:
        pose = slice_pose(heart, plane, float(offset))
        total += intensities(labels_at(pose, heart.shape.section(pose.z)), contrast, tex)
    return EDSlice(total / len(offsets), labels_at(centre_pose, centre_section), supersample,
                   centre_pose, centre_section)


def downsample_fraction(mask: np.ndarray, k: int) -> np.ndarray:
    """Area fraction ``[H, W]`` of a supersampled boolean mask ``[H*k, W*k]``."""
    h, w = mask.shape[0] // k, mask.shape[1] // k
    return mask.reshape(h, k, w, k).mean(axis=(1, 3))
