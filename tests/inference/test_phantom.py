"""The synthetic phantom: exact inverse motion, truth that reproduces the images, strain
ranges, hypokinesia, determinism, truth files and the training dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cinestrain.dicom_io.geometry import classify_orientation
from cinestrain.inference.heart.aha import LEVELS
from cinestrain.inference.model.warp import warp_image
from cinestrain.inference.phantom import (
    PhantomConfig,
    generate_case,
    load_truth_arrays,
    write_truth,
)
from cinestrain.inference.phantom.anatomy import render_ed
from cinestrain.inference.phantom.dataset import PhantomDataset
from cinestrain.inference.phantom.params import contiguous_segments, sample_params
from cinestrain.inference.phantom.render import pixel_grid_mm
from cinestrain.inference.phantom.wall_motion import FIXED_POINT_TOL_MM, TimeCourse, slice_motion

#: small cases: 6 slices x 12 phases x 112 x 112 at 1.6 mm (about a second each)
SMALL = PhantomConfig(matrix=(112, 112), pixel_spacing_mm=(1.6, 1.6), slices=(6, 6),
                      phases=(12, 12), supersample=2, through_plane=1)


@pytest.fixture(scope="module")
def hypokinetic_cases() -> list:
    config = PhantomConfig(**{**SMALL.to_dict(), "hypokinetic_share": 1.0})
    return [generate_case(seed, config) for seed in range(4)]


@pytest.fixture(scope="module")
def clean_case():
    return generate_case(11, SMALL, snr=None)


class TestTimeCourse:
    @pytest.mark.parametrize("es", [0.30, 0.35, 0.40])
    def test_physiologic_phases(self, es: float) -> None:
        course = TimeCourse(es_fraction=es, rapid_filling_fraction=0.7,
                            diastasis_fraction=0.8, atrial_onset=0.83)
        f = np.linspace(0.0, 1.0, 1001)
        v = course(f)
        assert v[0] == 0.0 and abs(v[-1]) < 1e-12
        assert abs(f[np.argmax(v)] - es) < 0.005 and v.max() == pytest.approx(1.0)
        assert np.all(np.diff(v[f <= es]) >= -1e-12)  # ejection
        assert course(es + 0.17) == pytest.approx(0.3)  # end of rapid filling
        assert course(0.83) == pytest.approx(0.2)  # diastasis, before the atrial kick
        assert course(0.96) == pytest.approx(0.0)  # after the atrial kick


class TestMotion:
    def test_inverse_is_exact(self) -> None:
        rng = np.random.default_rng(3)
        params = sample_params(rng, SMALL)
        plane = params.geometry.plane(2)
        ed = render_ed(params.heart, params.body, params.contrast, plane, supersample=1,
                       slice_thickness=8.0, through_plane=1, rng=rng)
        sense = 1.0 if np.dot(plane.normal, params.heart.axis) > 0 else -1.0
        translation = plane.to_slice(params.motion.translation[None] + plane.origin)[0]
        motion = slice_motion(params.motion, ed.pose, ed.section, "mid", translation, sense)
        pts = ed.pose.centre[:, None] + rng.uniform(-1, 1, (2, 20000)) * motion.reach_mm
        for v in (0.3, 1.0):
            yr, yc = motion.forward(pts[0], pts[1], v)
            xr, xc = motion.inverse(yr, yc, v)
            assert np.max(np.hypot(xr - pts[0], xc - pts[1])) < 10 * FIXED_POINT_TOL_MM
            moved = np.hypot(yr - pts[0], yc - pts[1])
            assert moved.max() > 2.0  # the heart does move
            far = np.hypot(*(pts - ed.pose.centre[:, None])) > motion.reach_mm
            assert np.all(moved[far] < 1e-9)  # nothing moves far from the heart

    def test_ed_is_identity_and_truth_is_zero_there(self, clean_case) -> None:
        truth = clean_case.truth
        assert np.all(truth.displacement[:, truth.ed_phase] == 0.0)
        assert truth.contraction[truth.ed_phase] == 0.0
        assert 0.3 <= truth.es_phase / clean_case.shape[1] <= 0.42


def test_warping_with_truth_reproduces_ed(clean_case) -> None:
    """I_t(X + u_t(X)) ~ I_ED(X): far below the error of the unwarped frame."""
    truth = clean_case.truth
    spacing = np.array(clean_case.params.geometry.spacing)
    pixels = torch.from_numpy(clean_case.pixels.astype(np.float32))
    s_count, t_count = clean_case.shape[:2]
    margin = 10
    ratios = []
    for s in range(s_count):
        moving = np.abs(truth.displacement[s]).max(axis=(0, 1)) > 0.5
        region = np.zeros_like(moving)
        region[margin:-margin, margin:-margin] = True
        region &= moving
        ed_frame = pixels[s, truth.ed_phase]
        for t in range(t_count):
            if truth.contraction[t] < 0.3:
                continue
            u_px = torch.from_numpy(truth.displacement[s, t] / spacing[:, None, None])
            warped = warp_image(pixels[s, t][None, None], u_px[None].float())[0, 0]
            err_warped = float((warped - ed_frame).abs()[region].mean())
            err_unwarped = float((pixels[s, t] - ed_frame).abs()[region].mean())
            ratios.append(err_warped / err_unwarped)
    assert len(ratios) >= s_count * 3
    assert max(ratios) < 0.3, ratios
    assert float(np.mean(ratios)) < 0.2


def test_truth_strain_in_ranges_and_hypokinesia(hypokinetic_cases) -> None:
    config = hypokinetic_cases[0].config
    for case in hypokinetic_cases:
        strain = case.truth.strain
        g = strain.global_curves
        c_lo, c_hi = config.circumferential_peak_pct
        r_lo, r_hi = config.radial_peak_pct
        assert c_lo <= g.peak_circumferential_pct <= c_hi
        assert r_lo <= g.peak_radial_pct <= r_hi
        assert 0.28 <= g.time_to_peak_circumferential_ms / case.params.rr_interval_ms <= 0.45
        hypo = case.truth.hypokinetic_segments
        assert hypo, "hypokinetic_share = 1 gives every case a hypokinetic segment"
        for seg in hypo:
            level = LEVELS[0 if seg <= 6 else 1 if seg <= 12 else 2]
            ring = [n for n in contiguous_segments(seg) if n not in hypo and
                    LEVELS[0 if n <= 6 else 1 if n <= 12 else 2] == level]
            own = strain.segments[seg]
            near = [strain.segments[n] for n in ring]
            assert near, seg
            assert abs(own.peak_circumferential_pct) < 0.6 * np.mean(
                [abs(n.peak_circumferential_pct) for n in near])
            assert own.peak_radial_pct < 0.6 * np.mean([n.peak_radial_pct for n in near])


def test_geometry_is_a_realistic_short_axis(hypokinetic_cases) -> None:
    for case in hypokinetic_cases:
        truth = case.truth
        spacing = np.array(case.params.geometry.spacing)
        assert classify_orientation(case.params.geometry.orientation).short_axis is True
        for s in range(case.shape[0]):
            ant, inf = (truth.insertion_points[s] - truth.lv_centres[s]) * spacing
            assert ant @ truth.anterior_direction > inf @ truth.anterior_direction
            assert truth.myocardium[s].sum() > 50
        labels = truth.aha_labels
        assert set(np.unique(labels[0])) - {0} == set(range(1, 7))
        assert set(np.unique(labels[-1])) - {0} == set(range(13, 17))


def test_deterministic_given_the_seed() -> None:
    tiny = PhantomConfig(**{**SMALL.to_dict(), "slices": (3, 3), "phases": (6, 6)})
    a, b, c = generate_case(5, tiny), generate_case(5, tiny), generate_case(6, tiny)
    assert np.array_equal(a.pixels, b.pixels)
    assert np.array_equal(a.truth.displacement, b.truth.displacement)
    assert not np.array_equal(a.pixels, c.pixels)


def test_late_start_puts_ed_elsewhere() -> None:
    config = PhantomConfig(**{**SMALL.to_dict(), "slices": (3, 3), "ed_phase": 7})
    case = generate_case(2, config, snr=None)
    truth = case.truth
    assert truth.ed_phase == 7
    assert np.all(truth.displacement[:, 7] == 0) and np.abs(truth.displacement[:, 0]).max() > 0
    assert truth.es_phase == (7 + round(case.params.motion.timecourse.es_fraction * 12)) % 12 \
        or abs(truth.contraction[truth.es_phase] - 1.0) < 0.05


def test_truth_files(tmp_path, clean_case) -> None:
    npz, path = write_truth(clean_case.truth, tmp_path, {"case_seed": 11})
    arrays = load_truth_arrays(tmp_path)
    s, t, h, w = clean_case.shape
    assert arrays["displacement"].shape == (s, t, 2, h, w)
    assert arrays["displacement"].dtype == np.float32
    assert arrays["myocardium"].dtype == bool and arrays["aha_labels"].shape == (s, h, w)
    assert arrays["insertion_points"].shape == (s, 2, 2)
    doc = json.loads(path.read_text())
    assert doc["case_seed"] == 11 and doc["ed_phase"] == 0
    assert set(doc["strain"]) == {"global", "segments", "slices"}
    assert len(doc["strain"]["segments"]) == 16
    assert doc["strain"]["global"]["peak_circumferential_strain_pct"] < -10


def test_dataset_items() -> None:
    data = PhantomDataset(6, seed=4, grid_size=64, spacing_mm=1.5, phases=(8, 10))
    item = data[3]
    t = item["frames"].shape[0]
    assert 8 <= t <= 10
    assert item["frames"].shape == (t, 1, 64, 64) and item["frames"].dtype == torch.float32
    assert item["u"].shape == (t, 2, 64, 64) and item["u"].dtype == torch.float32
    assert item["myocardium"].shape == (64, 64) and item["myocardium"].any()
    assert torch.all(item["u"][item["ed_phase"]] == 0) and item["u"].abs().max() > 2.0
    assert 0.5 < float(item["frames"].max()) < 3.0
    again = data[3]
    assert torch.equal(item["frames"], again["frames"]) and torch.equal(item["u"], again["u"])
    # the LV sits near the grid centre
    assert np.all(np.abs(item["lv_centre"].numpy() - 31.5) < 10)
    cached = PhantomDataset(4, seed=4, grid_size=48, phases=(6, 6), anatomies=2, ed_phase=None)
    first, second = cached[0], cached[2]
    assert first["frames"].shape == second["frames"].shape == (6, 1, 48, 48)
    with pytest.raises(IndexError):
        data[6]


def test_bias_grid_matches_plane(clean_case) -> None:
    plane = clean_case.params.geometry.plane(0)
    rows, cols = pixel_grid_mm(plane)
    bias = clean_case.params.bias.field(plane.to_patient(rows, cols))
    assert bias.shape == plane.shape and 0.3 < bias.min() and bias.max() < 4.0
