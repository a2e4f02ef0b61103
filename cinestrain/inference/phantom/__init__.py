"""Synthetic cine short-axis MR phantom with exact ground-truth motion (issue 3).

- :mod:`~inference.phantom.geometry`: oblique short-axis scan geometry;
- :mod:`~inference.phantom.anatomy`: ED tissue labels and bSSFP intensities;
- :mod:`~inference.phantom.wall_motion`: time course, Lagrangian map and its exact inverse;
- :mod:`~inference.phantom.render`: warping, partial volume, coil bias, Rician noise;
- :mod:`~inference.phantom.params`: what varies between cases;
- :mod:`~inference.phantom.case`: :func:`generate_case`;
- :mod:`~inference.phantom.truth`: ``truth.npz`` / ``truth.json``;
- :mod:`~inference.phantom.dataset`: the training :class:`PhantomDataset`;
- :mod:`~inference.phantom.preview`: PNG montages.
"""

from cinestrain.inference.phantom.case import PhantomCase, generate_case
from cinestrain.inference.phantom.params import CaseParams, PhantomConfig, sample_params
from cinestrain.inference.phantom.truth import Truth, load_truth_arrays, write_truth

__all__ = [
    "CaseParams",
    "PhantomCase",
    "PhantomConfig",
    "Truth",
    "generate_case",
    "load_truth_arrays",
    "sample_params",
    "write_truth",
]
