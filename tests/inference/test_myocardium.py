"""ED myocardium, cavities and RV insertion points: from given masks and automatically."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from cinestrain.inference.heart.myocardium import (
    MyocardiumError,
    insertion_points,
    masks_from_segmentation,
    segment_myocardium,
)
from cinestrain.inference.phantom import PhantomCase, PhantomConfig, generate_case
from tests.conftest import SUNNYBROOK


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return generate_case(5, PhantomConfig(slices=(6, 6), phases=(10, 10), matrix=(128, 128),
                                          hypokinetic_share=0.0))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def _ip_error_mm(found: np.ndarray, truth: np.ndarray, spacing: float) -> float:
    """Mean distance of the two points, whichever order they come in."""
    d = min(np.linalg.norm(found - truth, axis=1).mean(),
            np.linalg.norm(found[::-1] - truth, axis=1).mean())
    return float(d * spacing)


def test_landmarks_of_truth_masks(case: PhantomCase) -> None:
    t = case.truth
    spacing = case.params.geometry.spacing
    masks = masks_from_segmentation(t.myocardium, spacing, lv_cavity=t.lv_cavity,
                                    rv_cavity=t.rv_cavity)
    assert masks.source == "seg" and masks.ring.all() and not masks.warnings
    assert np.abs(masks.lv_centres - t.lv_centres).max() < 0.3
    for s in range(case.shape[0]):
        assert _ip_error_mm(masks.insertion_points[s], t.insertion_points[s], spacing[0]) < 2.5


def test_cavity_derived_from_the_ring_and_rv_found_in_the_image(case: PhantomCase) -> None:
    t = case.truth
    masks = masks_from_segmentation(t.myocardium, case.params.geometry.spacing,
                                    ed_frames=case.pixels[:, t.ed_phase])
    assert _dice(masks.lv_cavity, t.lv_cavity) > 0.95
    assert np.isfinite(masks.insertion_points).all()


def test_automatic_segmentation(case: PhantomCase) -> None:
    t = case.truth
    spacing = case.params.geometry.spacing
    masks = segment_myocardium(case.pixels.astype(np.float32), spacing, t.ed_phase)
    assert masks.source == "automatic" and masks.ring.all()
    assert _dice(masks.myocardium, t.myocardium) > 0.8
    assert _dice(masks.lv_cavity, t.lv_cavity) > 0.9
    assert np.linalg.norm((masks.lv_centres - t.lv_centres) * spacing[0], axis=1).max() < 3.0
    errors = [_ip_error_mm(masks.insertion_points[s], t.insertion_points[s], spacing[0])
              for s in range(case.shape[0])]
    assert np.median(errors) < 20.0  # automatic insertion points: ~5-15 mm off (see bench)


def test_a_slice_without_a_ring_is_left_out(case: PhantomCase) -> None:
    t = case.truth
    myo = t.myocardium.copy()
    myo[0] = False
    myo[0, 10:20, 10:20] = True  # a blob, no ring
    masks = masks_from_segmentation(myo, case.params.geometry.spacing, rv_cavity=t.rv_cavity)
    assert not masks.ring[0] and masks.ring[1:].all()
    assert not masks.myocardium[0].any()
    assert any("slice 0" in w for w in masks.warnings)


def test_insertion_points_are_the_ends_of_the_septal_contact() -> None:
    rows, cols = np.mgrid[0:100, 0:100].astype(float)
    r = np.hypot(rows - 50, cols - 50)
    theta = np.degrees(np.arctan2(rows - 50, cols - 50))
    myo = (r >= 15) & (r < 22)
    rv = (r >= 22) & (r < 32) & (theta > 120) & (theta < 150)  # lower left
    points = insertion_points(myo, rv, np.array([50.0, 50.0]), (1.0, 1.0))
    angles = sorted(np.degrees(np.arctan2(points[:, 0] - 50, points[:, 1] - 50)))
    assert angles[0] == pytest.approx(120, abs=3) and angles[1] == pytest.approx(150, abs=3)
    assert insertion_points(myo, np.zeros_like(rv), np.array([50.0, 50.0]), (1.0, 1.0)) is None


def test_no_lv_is_a_specific_error() -> None:
    flat = np.full((3, 6, 64, 64), 100.0, np.float32)
    with pytest.raises(MyocardiumError):
        segment_myocardium(flat, (1.5, 1.5), 0)
    with pytest.raises(MyocardiumError):
        masks_from_segmentation(np.zeros((2, 8, 8), bool), (1.0, 1.0))


@pytest.mark.requires_file(SUNNYBROOK / "SCD0000201.tar.gz",
                           "a real study with manual contours (the shared Sunnybrook data)")
def test_automatic_segmentation_of_a_real_study_against_the_manual_contours(tmp_path) -> None:
    """SCD0000201 (Sunnybrook, heart failure with infarction) at its manual ED phase: the
    basal slice's blood pool is dimmer than the slice's fat, the lateral wall is shaded and
    trabeculated. bench/real.py measures both studies; this guards the harder one."""
    spec = importlib.util.spec_from_file_location(
        "sunnybrook", Path(__file__).resolve().parents[2] / "bench" / "sunnybrook.py")
    sunnybrook = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("sunnybrook", sunnybrook)  # its dataclass looks itself up there
    spec.loader.exec_module(sunnybrook)
    study = sunnybrook.load_study(sunnybrook.extract("SCD0000201", tmp_path, SUNNYBROOK),
                                  "SCD0000201")
    masks = segment_myocardium(study.cine.pixels, study.spacing, study.ed_phase)
    manual = study.ed_myocardium()
    assert masks.ring[study.slices].all()
    assert _dice(masks.myocardium[study.slices], manual[study.slices]) > 0.7
