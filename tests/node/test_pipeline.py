"""The pipeline's reuse of work between its stages (same results, less time)."""

from __future__ import annotations

import numpy as np

import node.pipeline as pipeline
from inference.preprocess import find_heart_centres, normalise_intensity
from tests.dicom_io.test_results import phantom_result


def test_the_phase_0_segmentation_of_the_ed_detection_is_reused(monkeypatch) -> None:
    cine = phantom_result().cine
    calls: list[int] = []
    real = pipeline.segment_myocardium

    def counting(pixels, spacing, phase, **kwargs):
        calls.append(phase)
        return real(pixels, spacing, phase, **kwargs)

    monkeypatch.setattr(pipeline, "segment_myocardium", counting)
    normalised = normalise_intensity(cine.pixels)
    centres = find_heart_centres(normalised, cine.in_plane_spacing)
    segment = pipeline.AutomaticMyocardium(cine, centres)
    reused = pipeline.choose_ed_phase(cine, "auto", centres, normalised=normalised,
                                      segment=segment)
    assert reused == pipeline.choose_ed_phase(cine, "auto", centres)  # same answer alone
    assert calls == [0, 0]
    masks = segment(0)  # ED at phase 0: no third segmentation
    assert calls == [0, 0] and segment(0) is masks
    fresh = real(cine.pixels, cine.in_plane_spacing, 0, centres=centres)
    assert np.array_equal(fresh.myocardium, masks.myocardium)
