"""LV function: carried endocardial areas, volumes, EF, mass and the ES phase."""

from __future__ import annotations

import numpy as np
import pytest

from cinestrain.inference.heart.lv_function import (
    MYOCARDIAL_DENSITY_G_PER_ML,
    carried_cavity_areas,
    endocardial_polygon,
    lv_function,
    polygon_area,
    slice_spacing,
)

H, W = 80, 90
SPACING = (1.25, 1.5)
CENTRE = np.array([40.0, 44.0])


def _disk(radius_mm: float) -> np.ndarray:
    rows, cols = np.mgrid[0:H, 0:W].astype(float)
    return np.hypot((rows - CENTRE[0]) * SPACING[0], (cols - CENTRE[1]) * SPACING[1]) < radius_mm


def _scaling(factors: list[float], n_slices: int = 2) -> np.ndarray:
    """``[S, T, 2, H, W]``: phase t scales the plane about CENTRE by ``factors[t]``."""
    rows, cols = np.mgrid[0:H, 0:W].astype(float)
    dy, dx = (rows - CENTRE[0]) * SPACING[0], (cols - CENTRE[1]) * SPACING[1]
    u = np.stack([np.stack([(f - 1) * dy, (f - 1) * dx]) for f in factors])
    return np.repeat(u[None], n_slices, axis=0)


def test_polygon_of_a_disk_has_its_area() -> None:
    cavity = _disk(20.0)
    poly = endocardial_polygon(cavity, CENTRE)
    assert polygon_area(poly, SPACING) == pytest.approx(np.pi * 20.0**2, rel=0.02)
    assert polygon_area(poly, SPACING) == pytest.approx(cavity.sum() * 1.25 * 1.5, rel=0.02)


def test_carried_area_scales_with_the_square() -> None:
    factors = [1.0, 0.9, 0.7, 0.8]
    cavity = np.repeat(_disk(20.0)[None], 2, axis=0)
    areas = carried_cavity_areas(_scaling(factors), cavity, np.repeat(CENTRE[None], 2, 0),
                                 SPACING)
    assert np.allclose(areas / areas[:, :1], np.square(factors)[None], atol=1e-3)


def test_volumes_ef_mass_and_es_phase() -> None:
    factors = [1.0, 0.9, 0.7, 0.8]
    cavity = np.repeat(_disk(20.0)[None], 2, axis=0)
    myo = np.repeat((_disk(28.0) & ~_disk(20.0))[None], 2, axis=0)
    fn = lv_function(_scaling(factors), cavity, myo, np.repeat(CENTRE[None], 2, 0), SPACING,
                     8.0, ed_phase=0)
    assert fn.es_phase == 2
    assert fn.ef_pct == pytest.approx(100 * (1 - 0.49), abs=0.2)
    edv = 2 * np.pi * 20.0**2 * 8.0 / 1000
    assert fn.edv_ml == pytest.approx(edv, rel=0.02)
    assert fn.sv_ml == pytest.approx(fn.edv_ml - fn.esv_ml)
    mass = myo.sum() * 1.25 * 1.5 * 8.0 / 1000 * MYOCARDIAL_DENSITY_G_PER_ML
    assert fn.mass_g == pytest.approx(mass)
    doc = fn.to_dict()
    assert {"edv_ml", "esv_ml", "sv_ml", "ef_pct", "mass_g"} <= set(doc)
    assert len(doc["cavity_area_mm2"]) == 2 and len(doc["cavity_volume_ml"]) == 4


def test_ed_need_not_be_phase_0() -> None:
    factors = [0.8, 0.7, 1.0, 0.9]
    cavity = np.repeat(_disk(20.0)[None], 2, axis=0)
    u = _scaling([f / 1.0 for f in factors])
    fn = lv_function(u, cavity, cavity, np.repeat(CENTRE[None], 2, 0), SPACING, 8.0,
                     ed_phase=2)
    assert fn.es_phase == 1


def test_slice_spacing() -> None:
    assert slice_spacing(np.array([10.0, 2.0, 18.0, 26.0])) == pytest.approx(8.0)
    assert slice_spacing(np.array([3.0]), fallback_mm=6.0) == 6.0
    with pytest.raises(ValueError):
        slice_spacing(np.array([3.0]))


def test_bad_input() -> None:
    cavity = np.repeat(_disk(20.0)[None], 2, axis=0)
    u = _scaling([1.0, 0.9])
    centres = np.repeat(CENTRE[None], 2, 0)
    with pytest.raises(ValueError):
        lv_function(u, np.zeros_like(cavity), cavity, centres, SPACING, 8.0, 0)
    with pytest.raises(ValueError):
        lv_function(u, cavity, cavity, centres, SPACING, 8.0, 5)
    with pytest.raises(ValueError):
        carried_cavity_areas(u, cavity[:, :-1], centres, SPACING)
