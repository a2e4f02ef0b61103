"""AHA 16-segment labels: levels, insertion-point order, handedness from the geometry."""

from __future__ import annotations

import numpy as np
import pytest

from cinestrain.inference.heart.aha import (
    aha_label_map,
    order_insertion_points,
    segment_map,
    slice_levels,
)

SHAPE = (101, 101)
CENTRE = np.array([50.0, 50.0])


def _point(angle_deg: float, radius: float = 30.0) -> np.ndarray:
    """Pixel (row, col) at slice angle atan2(row, col) = angle about CENTRE."""
    a = np.radians(angle_deg)
    return CENTRE + radius * np.array([np.sin(a), np.cos(a)])


def _label_at(labels: np.ndarray, angle_deg: float, radius: float = 30.0) -> int:
    r, c = np.round(_point(angle_deg, radius)).astype(int)
    return int(labels[r, c])


# Standard display: anterior up (row -), septum and RV on the left (col -).
ANTERIOR_IP = _point(-120.0)  # upper left
INFERIOR_IP = _point(125.0)  # lower left


class TestSliceLevels:
    def test_thirds_base_to_apex(self) -> None:
        assert slice_levels(6) == ["basal"] * 2 + ["mid"] * 2 + ["apical"] * 2
        assert slice_levels(7) == ["basal"] * 3 + ["mid"] * 2 + ["apical"] * 2
        assert slice_levels(8) == ["basal"] * 3 + ["mid"] * 3 + ["apical"] * 2

    def test_uncovered_slices_have_no_level(self) -> None:
        levels = slice_levels(5, covered=[False, True, True, True, False])
        assert levels == [None, "basal", "mid", "apical", None]

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError):
            slice_levels(3, covered=[True])


class TestSegmentMap:
    def test_basal_ring_order_through_the_septum(self) -> None:
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "basal")
        # just past the anterior insertion point towards the septum, then around
        assert _label_at(labels, -125.0) == 2
        assert _label_at(labels, -115.0) == 1
        expected = {-150: 2, 170: 3, 110: 4, 50: 5, -10: 6, -70: 1}
        for angle, segment in expected.items():
            assert _label_at(labels, angle) == segment, angle

    def test_mid_ring_is_basal_plus_six(self) -> None:
        basal = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "basal")
        mid = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "mid")
        assert np.array_equal(mid, basal + 6)

    def test_sixty_degrees_each(self) -> None:
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "basal")
        rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
        ring = (np.hypot(rows - 50, cols - 50) > 20) & (np.hypot(rows - 50, cols - 50) < 45)
        counts = np.bincount(labels[ring], minlength=7)[1:]
        assert counts.min() > 0.9 * counts.mean() and counts.max() < 1.1 * counts.mean()

    def test_apical_septal_centred_on_mid_septum(self) -> None:
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "apical")
        mid_septum = 0.5 * (-120.0 + (125.0 - 360.0))  # halfway along the septal arc
        assert _label_at(labels, mid_septum) == 14
        assert _label_at(labels, mid_septum + 40) == 14
        assert _label_at(labels, mid_septum - 40) == 14
        assert _label_at(labels, mid_septum + 90) == 13  # anterior side
        assert _label_at(labels, mid_septum - 90) == 15  # inferior side
        assert _label_at(labels, mid_septum + 180) == 16

    def test_handedness_comes_from_the_insertion_points(self) -> None:
        """A mirrored image (septum on the right) mirrors the labels."""
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "basal")
        flip = np.array([0.0, 100.0])
        mirrored = segment_map(SHAPE, CENTRE, np.abs(flip - ANTERIOR_IP),
                               np.abs(flip - INFERIOR_IP), "basal")
        rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
        ring = (np.hypot(rows - 50, cols - 50) > 10) & (np.hypot(rows - 50, cols - 50) < 45)
        assert np.mean(mirrored[ring] == labels[:, ::-1][ring]) > 0.99

    def test_rotated_image_rotates_labels(self) -> None:
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "apical")
        rot = np.rot90(labels)  # new (r, c) = (W - 1 - c, r)
        turn = lambda p: np.array([100.0 - p[1], p[0]])  # noqa: E731
        rotated = segment_map(SHAPE, CENTRE, turn(ANTERIOR_IP), turn(INFERIOR_IP), "apical")
        rows, cols = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
        ring = (np.hypot(rows - 50, cols - 50) > 10) & (np.hypot(rows - 50, cols - 50) < 45)
        assert np.mean(rotated[ring] == rot[ring]) > 0.99

    def test_mask_and_anisotropic_spacing(self) -> None:
        mask = np.zeros(SHAPE, bool)
        mask[10:20, 10:20] = True
        labels = segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "mid", mask=mask,
                             spacing=(1.0, 2.0))
        assert labels[~mask].max() == 0 and labels[mask].min() >= 7

    def test_bad_input(self) -> None:
        with pytest.raises(ValueError):
            segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, "equatorial")
        with pytest.raises(ValueError):
            segment_map(SHAPE, CENTRE, CENTRE, INFERIOR_IP, "basal")
        assert segment_map(SHAPE, CENTRE, ANTERIOR_IP, INFERIOR_IP, None).max() == 0


def test_order_insertion_points_by_patient_anterior() -> None:
    up = np.array([-1.0, 0.0])  # patient anterior towards row 0
    ant, inf = order_insertion_points(CENTRE, INFERIOR_IP, ANTERIOR_IP, up)
    assert np.array_equal(ant, ANTERIOR_IP) and np.array_equal(inf, INFERIOR_IP)
    ant, inf = order_insertion_points(CENTRE, INFERIOR_IP, ANTERIOR_IP, -up)
    assert np.array_equal(ant, INFERIOR_IP)


def test_label_map_of_a_stack() -> None:
    mask = np.ones((3,) + SHAPE, bool)
    centres = np.repeat(CENTRE[None], 3, axis=0)
    labels = aha_label_map(centres, np.repeat(ANTERIOR_IP[None], 3, 0),
                           np.repeat(INFERIOR_IP[None], 3, 0), slice_levels(3), mask)
    assert [set(np.unique(s)) for s in labels] == [
        set(range(1, 7)), set(range(7, 13)), set(range(13, 17))]
    with pytest.raises(ValueError):
        aha_label_map(centres[:2], centres, centres, slice_levels(3), mask)
