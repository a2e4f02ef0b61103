"""Fixtures shared across the suite: small synthetic cine studies to write as real DICOM;
the one rule for a tool or data set a test needs and this machine lacks.

A missing part (a Debian tool, the shared real data, the shipped weights, the OHIF viewer's
parts) skips the test on a developer machine, with the reason, and fails it under CI
(``CI=true``): CI installs every part (``make test``), so a part missing there is a broken
set-up, not a test to leave out. Each such test says what it needs in one of these ways:

* ``pytest.mark.requires_tool(name, why)`` / ``pytest.mark.requires_file(path, why)``: a
  marker on the test, class or module (``pytestmark``), checked before any fixture is set up;
* :func:`require_tool` / :func:`require_file` inside a test, fixture or helper: the path,
  or the skip (failure under CI);
* :func:`optional_tool` for one extra check of a test that checks more: ``None`` on a
  developer machine without the tool (the check is left out), a failure under CI;
* :func:`missing_part` for anything else that is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from cinestrain.inference.phantom.scanner import CineStudy

#: ImageOrientationPatient of a real short-axis stack (Sunnybrook SCD0000101): double oblique
SAX_ORIENTATION = np.array([-0.104592, 0.346381, -0.932245, -0.733192, -0.660188, -0.163037])

#: /work/shared, where the shared real data sets live (absent on some machines)
SHARED = Path(__file__).resolve().parents[1] / "../shared"
#: the Sunnybrook Cardiac Data studies (``SCD0000101.tar.gz``, ...): present in CI, absent
#: from a user's own clone
SUNNYBROOK = SHARED / "data" / "sunnybrook"


def in_ci() -> bool:
    """Whether the suite runs in CI (``CI=true``), where every tool and data set is set up."""
    return os.environ.get("CI") == "true"


def missing_part(what: str, why: str) -> NoReturn:
    """Skip the running test because ``what`` is missing (``why``: what the test needs it
    for); under CI (``CI=true``) fail it instead, since CI installs every part."""
    if in_ci():
        pytest.fail(f"{what} is missing, under CI=true (make test sets up every part: "
                    f"a broken set-up, not a test to skip); needed for: {why}", pytrace=False)
    pytest.skip(f"{what} is missing; needed for: {why}")


def _which(name: str) -> str | None:
    """The path of the program ``name`` on PATH or in /usr/sbin, /sbin (where Debian puts
    Orthanc and nginx, often not on a user's PATH), None when absent."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(("/usr/sbin", "/sbin")))


def require_tool(name: str, why: str) -> str:
    """The path of the program ``name`` (on PATH, or in /usr/sbin); when absent,
    :func:`missing_part` (a skip on a developer machine, a failure under CI)."""
    path = _which(name)
    if path is None:
        missing_part(f"the program {name!r} (not on PATH, nor in /usr/sbin)", why)
    return path


def optional_tool(name: str, why: str) -> str | None:
    """The path of ``name`` for an extra check of a test that checks more without it:
    ``None`` on a developer machine without the program (the caller leaves that check
    out), a failure under CI."""
    path = _which(name)
    if path is None and in_ci():
        missing_part(f"the program {name!r} (not on PATH, nor in /usr/sbin)", why)
    return path


def require_file(path: Path, why: str) -> Path:
    """``path`` (a data file, weights, a folder) when it exists; otherwise
    :func:`missing_part` (a skip on a developer machine, a failure under CI)."""
    if not Path(path).exists():
        missing_part(str(path), why)
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_tool(name, why): the test runs the program `name`; skipped "
        "where it is not on PATH, failed under CI=true (tests/conftest.py)")
    config.addinivalue_line(
        "markers", "requires_file(path, why): the test reads `path` (data, weights); skipped "
        "where it is absent, failed under CI=true (tests/conftest.py)")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """The ``requires_tool`` and ``requires_file`` markers, before any fixture is set up
    (a skip is reported at the test, as ``skipif`` reports it)."""
    try:
        for mark in item.iter_markers("requires_tool"):
            require_tool(*mark.args, **mark.kwargs)
        for mark in item.iter_markers("requires_file"):
            require_file(*mark.args, **mark.kwargs)
    except pytest.skip.Exception as skip:
        raise pytest.skip.Exception(skip.msg, _use_item_location=True) from None


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
