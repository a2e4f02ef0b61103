"""A small phantom cine, and the same images in planes that must or must not be analysed
(tests/pipeline/test_guards.py, tests/node/test_refusals.py).

- :func:`phantom_cine`: a 3 x 8 x 128 x 128 short-axis phantom (real anatomy and motion).
- :func:`rotated`: the same study with the whole patient turned, so that the slice normal
  points along ``normal``: the images still show the LV crossing the planes squarely.
- :func:`tilted`: each slice moved in its own plane, so that the LV centres draw a line
  at ``degrees`` from the normal (what planes cut obliquely through the LV show).
- :func:`single_slice`: one slice of a study.

Each returns a :class:`~inference.phantom.scanner.CineStudy` to write with
``write_cine_classic`` (real MR DICOM).
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from cinestrain.cli.phantom import case_seed, cine_study
from cinestrain.inference.phantom import PhantomConfig, generate_case
from cinestrain.inference.phantom.geometry import rotate, unit
from cinestrain.inference.phantom.scanner import CineStudy

#: a slice normal that is neither near a patient axis nor near the typical LV long axis:
#: ``classify_orientation`` says "oblique, short axis unknown"
OBLIQUE_NORMAL = np.array([1.0, 1.0, -1.0]) / np.sqrt(3.0)


@functools.cache
def phantom_cine() -> CineStudy:
    """A 3 x 8 x 128 x 128 short-axis phantom (seed 8, no noise)."""
    config = PhantomConfig(slices=(3, 3), phases=(8, 8), matrix=(128, 128))
    return cine_study(generate_case(case_seed(8, 0), config, snr=None), 0, 8)


def _normal(study: CineStudy) -> np.ndarray:
    return unit(np.cross(study.orientation[:3], study.orientation[3:]))


def rotated(study: CineStudy, normal: np.ndarray = OBLIQUE_NORMAL) -> CineStudy:
    """The study turned as a whole (positions and orientation) so that its slice normal
    is ``normal``; the pixels, and so the anatomy in each plane, are unchanged."""
    before, after = _normal(study), unit(np.asarray(normal, float))
    axis = np.cross(before, after)
    angle = float(np.arctan2(np.linalg.norm(axis), before @ after))
    axis = unit(axis) if np.linalg.norm(axis) > 1e-9 else np.array([1.0, 0.0, 0.0])

    def turn(v: np.ndarray) -> np.ndarray:
        return rotate(np.asarray(v, float), axis, angle)

    orientation = np.concatenate([turn(study.orientation[:3]), turn(study.orientation[3:])])
    positions = np.stack([turn(p) for p in study.positions])
    return dataclasses.replace(study, orientation=orientation, positions=positions,
                               study_instance_uid=None)


def tilted(study: CineStudy, degrees: float) -> CineStudy:
    """Each slice moved along its row direction by ``tan(degrees)`` times its distance
    from the first slice: the LV centres now lie on a line about ``degrees`` from the
    normal (plus the phantom's own few degrees)."""
    normal = _normal(study)
    along = (study.positions - study.positions[0]) @ normal
    shift = np.tan(np.radians(degrees)) * along
    positions = study.positions + shift[:, None] * study.orientation[:3]
    return dataclasses.replace(study, positions=positions, study_instance_uid=None)


def single_slice(study: CineStudy, index: int = 1) -> CineStudy:
    """Slice ``index`` alone, all its phases."""
    trigger = study.trigger_times
    return dataclasses.replace(
        study, pixels=study.pixels[index:index + 1], positions=study.positions[index:index + 1],
        trigger_times=trigger if trigger.ndim == 1 else trigger[index:index + 1],
        study_instance_uid=None)
