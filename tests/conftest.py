"""Fixtures shared across the suite: small synthetic cine studies to write as real DICOM."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cinestrain.inference.phantom.scanner import CineStudy

#: ImageOrientationPatient of a real short-axis stack (Sunnybrook SCD0000101): double oblique
SAX_ORIENTATION = np.array([-0.104592, 0.346381, -0.932245, -0.733192, -0.660188, -0.163037])

#: /work/shared, where the shared real data sets live (absent on some machines)
SHARED = Path(__file__).resolve().parents[1] / "../shared"


def _orthonormal(orientation: np.ndarray) -> np.ndarray:
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    col = orientation[3:] - (orientation[3:] @ row) * row
    return np.concatenate([row, col / np.linalg.norm(col)])


@pytest.fixture
def make_study() -> Callable[..., CineStudy]:
    """Factory of small cine studies with known content.

    ``make_study(n_slices=4, n_phases=10, rows=32, columns=32, **fields)``: slices 8 mm
    apart along the normal of a double-oblique short-axis orientation, trigger times
    35 ms apart with a per-slice jitter of up to 2 ms, pixel values unique per
    (slice, phase) so that any mix-up shows. Any :class:`CineStudy` field can be overridden.
    """

    def factory(
        n_slices: int = 4, n_phases: int = 10, rows: int = 32, columns: int = 32, **fields
    ) -> CineStudy:
        rng = np.random.default_rng(n_slices * 1000 + n_phases)
        orientation = np.asarray(fields.pop("orientation", _orthonormal(SAX_ORIENTATION)), float)
        normal = np.cross(orientation[:3], orientation[3:])
        origin = np.array([160.0, 35.0, 145.0])
        pixels = rng.integers(0, 900, size=(n_slices, n_phases, rows, columns))
        pixels += (np.arange(n_slices) * 37)[:, None, None, None]
        pixels += (np.arange(n_phases) * 3)[None, :, None, None]
        defaults = {
            "pixels": pixels.astype(np.uint16),
            "positions": origin + 8.0 * np.arange(n_slices)[:, None] * normal,
            "orientation": orientation,
            "pixel_spacing": (1.5, 1.5),
            "slice_thickness": 8.0,
            "trigger_times": np.arange(n_phases) * 35.0
            + rng.uniform(0, 2.0, size=(n_slices, 1)),
            "rr_interval_ms": 35.0 * n_phases + 20,
        }
        defaults.update(fields)
        return CineStudy(**defaults)

    return factory
