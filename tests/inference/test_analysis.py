"""Strain and function of a phantom from its truth displacement: report.json, slice order,
rotated anatomy, failed stacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cinestrain.inference.heart.analysis import analyze_motion, failed_report
from cinestrain.inference.heart.myocardium import MyocardiumError, masks_from_segmentation
from cinestrain.inference.phantom import PhantomCase, PhantomConfig, generate_case

REPORT_KEYS = {"series_instance_uid", "model", "trigger_times_ms", "slice_positions_mm",
               "ed_phase", "es_phase", "global", "segments", "slices", "warnings",
               "function", "ed_phase_source", "myocardium_source", "slice_order",
               "strain_convention"}
CURVE_KEYS = {"radial_strain_pct", "circumferential_strain_pct", "peak_radial_strain_pct",
              "peak_circumferential_strain_pct", "time_to_peak_radial_ms",
              "time_to_peak_circumferential_ms"}
MODEL = {"name": "truth", "version": "0", "pairing": "anchored", "temporal": "gru"}


@pytest.fixture(scope="module")
def case() -> PhantomCase:
    return generate_case(7, PhantomConfig(slices=(6, 6), phases=(10, 10), matrix=(128, 128)))


def _analyse(case: PhantomCase, flip: bool = False, rotate: bool = False):
    t = case.truth
    g = case.params.geometry
    u, myo, lv, rv = t.displacement, t.myocardium, t.lv_cavity, t.rv_cavity
    positions = g.positions @ g.normal
    orientation = g.orientation
    if flip:  # the reader's order may be apex to base
        u, myo, lv, rv, positions = u[::-1], myo[::-1], lv[::-1], rv[::-1], positions[::-1]
    if rotate:  # new (r, c) = (W - 1 - c, r); u components turn with the grid
        def turn(a: np.ndarray) -> np.ndarray:
            return np.rot90(a, axes=(-2, -1))
        u = np.stack([turn(-u[:, :, 1]), turn(u[:, :, 0])], axis=2)
        myo, lv, rv = turn(myo), turn(lv), turn(rv)
        orientation = np.concatenate([orientation[3:], -orientation[:3]])
    masks = masks_from_segmentation(myo, g.spacing, lv_cavity=lv, rv_cavity=rv)
    return analyze_motion(u, g.spacing, t.trigger_times, positions, t.ed_phase, masks,
                          orientation=orientation, slice_thickness=g.slice_thickness)


def test_truth_motion_gives_truth_strain_and_function(case: PhantomCase) -> None:
    t = case.truth
    result = _analyse(case)
    assert result.levels == list(t.levels)
    assert result.slice_order.base_first and result.slice_order.source == "geometry"
    assert np.mean(result.aha_labels[t.myocardium] == t.aha_labels[t.myocardium]) > 0.95
    g, tg = result.strain.global_curves, t.strain.global_curves
    assert g.peak_circumferential_pct == pytest.approx(tg.peak_circumferential_pct, abs=0.05)
    assert g.peak_radial_pct == pytest.approx(tg.peak_radial_pct, abs=0.1)
    for k, curves in t.strain.segments.items():
        assert result.strain.segments[k].peak_circumferential_pct == pytest.approx(
            curves.peak_circumferential_pct, abs=1.5)
    assert result.es_phase == t.es_phase
    assert 30 < result.function.ef_pct < 80 and result.function.mass_g > 30


def test_report_json_keys(case: PhantomCase) -> None:
    t = case.truth
    report = _analyse(case).report(
        series_instance_uid="1.2.3", model=MODEL, trigger_times=t.trigger_times.mean(axis=0),
        slice_positions=np.arange(6.0) * 8, ed_phase_source="fixed", warnings=["earlier"])
    assert set(report) == REPORT_KEYS
    assert set(report["segments"]) == {str(k) for k in range(1, 17)}
    assert CURVE_KEYS <= set(report["global"]) and CURVE_KEYS <= set(report["segments"]["1"])
    assert len(report["global"]["circumferential_strain_pct"]) == 10
    assert [s["level"] for s in report["slices"]] == list(t.levels)
    assert {"position_mm", "level"} | CURVE_KEYS <= set(report["slices"][0])
    assert report["myocardium_source"] == "seg" and report["warnings"][0] == "earlier"
    assert {"edv_ml", "esv_ml", "sv_ml", "ef_pct", "mass_g"} <= set(report["function"])
    json.dumps(report, allow_nan=False)


def test_apex_first_stack_is_turned_round(case: PhantomCase) -> None:
    plain, flipped = _analyse(case), _analyse(case, flip=True)
    assert flipped.levels == plain.levels[::-1]
    assert flipped.slice_order.base_first is False
    for k, curves in plain.strain.segments.items():
        assert flipped.strain.segments[k].peak_circumferential_pct == pytest.approx(
            curves.peak_circumferential_pct, abs=1e-6)


def test_rotating_the_anatomy_rotates_the_labels(case: PhantomCase) -> None:
    plain, rotated = _analyse(case), _analyse(case, rotate=True)
    myo = np.rot90(case.truth.myocardium, axes=(1, 2))
    same = rotated.aha_labels[myo] == np.rot90(plain.aha_labels, axes=(1, 2))[myo]
    assert same.mean() > 0.97
    assert rotated.strain.global_curves.peak_circumferential_pct == pytest.approx(
        plain.strain.global_curves.peak_circumferential_pct, abs=0.05)


def test_uncovered_segments_are_null_with_a_warning(case: PhantomCase) -> None:
    t = case.truth
    keep = t.myocardium.copy()
    keep[2:] = False  # only two slices outlined: no apical level
    masks = masks_from_segmentation(keep, case.params.geometry.spacing,
                                    lv_cavity=t.lv_cavity & keep.any(axis=(1, 2))[:, None, None],
                                    rv_cavity=t.rv_cavity)
    g = case.params.geometry
    result = analyze_motion(t.displacement, g.spacing, t.trigger_times, g.positions @ g.normal,
                            t.ed_phase, masks, orientation=g.orientation)
    report = result.report(series_instance_uid="1", model=MODEL,
                           trigger_times=t.trigger_times[0], slice_positions=np.arange(6.0),
                           ed_phase_source="fixed")
    assert result.levels[2:] == [None] * 4
    nulls = [k for k, v in report["segments"].items() if v["peak_radial_strain_pct"] is None]
    assert nulls and all(int(k) >= 13 for k in nulls)
    assert any("not covered" in w for w in report["warnings"])
    assert report["slices"][5]["peak_circumferential_strain_pct"] is None


def test_failed_report_has_no_numbers() -> None:
    report = failed_report(series_instance_uid="1", model=MODEL, trigger_times=np.arange(3.0),
                           slice_positions=np.arange(2.0), ed_phase=0, ed_phase_source="fixed",
                           warnings=["not a short-axis view"])
    assert set(report) == REPORT_KEYS
    assert report["global"]["peak_circumferential_strain_pct"] is None
    assert all(v["peak_radial_strain_pct"] is None for v in report["segments"].values())
    assert report["function"] is None and report["warnings"] == ["not a short-axis view"]


def test_masks_without_a_ring_are_an_error(case: PhantomCase) -> None:
    t = case.truth
    g = case.params.geometry
    masks = masks_from_segmentation(t.myocardium, g.spacing, lv_cavity=t.lv_cavity)
    empty = type(masks)(masks.myocardium, masks.lv_cavity, masks.rv_cavity, masks.lv_centres,
                        masks.insertion_points, np.zeros_like(masks.ring), "seg")
    with pytest.raises(MyocardiumError):
        analyze_motion(t.displacement, g.spacing, t.trigger_times, np.arange(6.0), 0, empty)
