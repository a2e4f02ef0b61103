"""The shipped model through the product's entry point: contract, phase order, shift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cinestrain.config.schema import ModelSettings
from cinestrain.inference.model.checkpoint import load_model
from cinestrain.inference.model.estimate import estimate_motion
from cinestrain.inference.model.settings import MotionSettings
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.inference.phantom import PhantomConfig, generate_case

#: the product's settings (the configuration's defaults)
SETTINGS = ModelSettings().motion_settings()

WEIGHTS = shipped_weights_path("gru")
pytestmark = pytest.mark.requires_file(
    WEIGHTS, "the shipped motion model (in the repository; cinestrain train makes it)"
)

SMALL = PhantomConfig(
    matrix=(128, 128),
    slices=(3, 3),
    phases=(10, 10),
    supersample=2,
    through_plane=1,
    hypokinetic_share=0.0,
)


@pytest.fixture(scope="module")
def case():
    return generate_case(900_500, SMALL)


@pytest.fixture(scope="module")
def model():
    return load_model(WEIGHTS)[0]


def _myo_epe(u: np.ndarray, case) -> float:
    err = np.linalg.norm(u - case.truth.displacement, axis=2)
    myo = np.broadcast_to(case.truth.myocardium[:, None], err.shape)
    return float(err[myo].mean())


def test_contract_and_accuracy(case, model) -> None:
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    u = estimate_motion(case.pixels.astype(np.float32), spacing, case.truth.ed_phase, model,
                        SETTINGS, centres=case.truth.lv_centres)
    s, t, h, w = case.shape
    assert u.shape == (s, t, 2, h, w) and u.dtype == np.float32
    assert np.all(u[:, case.truth.ed_phase] == 0)
    zero = _myo_epe(np.zeros_like(u), case)
    assert _myo_epe(u, case) < 0.5 * zero  # far better than no motion


def test_ed_not_first_keeps_acquisition_order(case, model) -> None:
    """Rolling the phases so that ED is phase 3 gives the same fields, rolled."""
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    px = case.pixels.astype(np.float32)
    u0 = estimate_motion(px, spacing, 0, model, SETTINGS)
    u3 = estimate_motion(np.roll(px, 3, axis=1), spacing, 3, model, SETTINGS)
    assert np.all(u3[:, 3] == 0)
    assert np.allclose(np.roll(u0, 3, axis=1), u3, atol=1e-4)


def test_recentring_recovers_a_whole_heart_shift(case, model) -> None:
    """A cine whose heart only shifts (0.5, -0.35) mm per phase: along the smooth wall the
    images hardly show it, so a fixed crop finds part of it; following the myocardium's
    mean motion recovers most of the rest (DESIGN.md: estimate_motion's re-centring)."""
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    ed = case.pixels[:, 0].astype(np.float32)
    step = np.array([0.5, -0.35])
    frames = np.stack([[ndimage.shift(ed[s], k * step / np.array(spacing), order=3,
                                      mode="nearest") for k in range(8)]
                       for s in range(ed.shape[0])])
    truth = (np.arange(8)[:, None] * step)[None, :, :, None, None]
    myo = case.truth.myocardium

    def myo_epe(rounds: int) -> float:
        settings = MotionSettings("anchored", passes=2, recentre_rounds=rounds)
        u = estimate_motion(frames, spacing, 0, model, settings, centres=case.truth.lv_centres,
                            follow=myo)
        err = np.linalg.norm(u - truth, axis=2)
        return float(err[np.broadcast_to(myo[:, None], err.shape)].mean())

    fixed, followed = myo_epe(0), myo_epe(1)
    assert followed < 0.6 * fixed
    assert followed < 0.8  # mm, for shifts up to 4.3 mm


def test_recentring_refuses_bad_input(case, model) -> None:
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    px = case.pixels.astype(np.float32)
    with pytest.raises(ValueError, match="recentre_rounds"):
        MotionSettings("anchored", passes=2, recentre_rounds=-1)
    with pytest.raises(ValueError, match="passes"):
        MotionSettings("anchored", passes=0, recentre_rounds=1)
    with pytest.raises(ValueError, match="pairing"):
        MotionSettings("both", passes=2, recentre_rounds=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="follow"):
        estimate_motion(px, spacing, 0, model, SETTINGS, follow=case.truth.myocardium[:1])


def test_shifted_cine_gives_shifted_field(case, model) -> None:
    """A cine moved by (3, -2) pixels gives the same field, moved by (3, -2) pixels."""
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    px = case.pixels.astype(np.float32)
    u = estimate_motion(px, spacing, 0, model, SETTINGS)
    moved = np.roll(px, (3, -2), axis=(2, 3))
    u_moved = estimate_motion(moved, spacing, 0, model, SETTINGS)
    back = np.roll(u_moved, (-3, 2), axis=(3, 4))
    myo = case.truth.myocardium[:, None, None] & np.ones((1, u.shape[1], 2, 1, 1), bool)
    diff = np.abs(back - u)[myo].mean()
    magnitude = np.abs(u)[myo].mean()
    assert diff < 0.15 * magnitude
