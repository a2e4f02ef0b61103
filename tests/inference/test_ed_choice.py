"""The ED choice reuses the automatic segmentation of phase 0 (same results, less time)."""

from __future__ import annotations

import numpy as np

import cinestrain.inference.heart.myocardium as myocardium
from cinestrain.inference.heart.centres import find_heart_centres, normalise_intensity
from cinestrain.inference.heart.ed_phase import choose_ed_phase
from tests.helpers.results import phantom_result


def test_the_phase_0_segmentation_of_the_ed_detection_is_reused(monkeypatch) -> None:
    cine = phantom_result().cine
    calls: list[int] = []
    real = myocardium.segment_myocardium

    def counting(pixels, spacing, phase, **kwargs):
        calls.append(phase)
        return real(pixels, spacing, phase, **kwargs)

    monkeypatch.setattr(myocardium, "segment_myocardium", counting)
    normalised = normalise_intensity(cine.pixels)
    centres = find_heart_centres(normalised, cine.in_plane_spacing)
    spacing = cine.in_plane_spacing
    segment = myocardium.AutomaticMyocardium(cine.pixels, spacing, centres)
    reused = choose_ed_phase(cine.pixels, spacing, "auto", centres, normalised=normalised,
                             segment=segment)
    assert reused == choose_ed_phase(cine.pixels, spacing, "auto", centres)  # same alone
    assert calls == [0, 0]
    masks = segment(0)  # ED at phase 0: no third segmentation
    assert calls == [0, 0] and segment(0) is masks
    fresh = real(cine.pixels, cine.in_plane_spacing, 0, centres=centres)
    assert np.array_equal(fresh.myocardium, masks.myocardium)
