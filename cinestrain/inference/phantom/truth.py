"""Ground truth of a phantom case, and its files ``truth.npz`` and ``truth.json``.

``truth.npz`` (arrays, slices base to apex as in the DICOM stack, phases by trigger time):

- ``displacement`` float32 ``[S, T, 2, H, W]``: Lagrangian ``u`` in mm on each slice's ED
  pixel grid, component 0 along rows, 1 along columns; ``u[:, ed_phase] = 0`` (DESIGN.md
  § Displacement convention: ``I_t(X + u_t(X)) = I_ED(X)``);
- ``myocardium``, ``lv_cavity``, ``rv_cavity`` bool ``[S, H, W]``: ED masks;
- ``aha_labels`` uint8 ``[S, H, W]``: AHA segment of each ED myocardium pixel (0 outside);
- ``lv_centres`` ``[S, 2]`` (row, col) pixels: ED LV blood-pool centroids;
- ``insertion_points`` ``[S, 2, 2]``: anterior then inferior RV insertion point (row, col);
- ``trigger_times`` ``[S, T]`` ms; ``contraction`` ``[T]`` (0 at ED, 1 at end-systole);
- ``radial_strain_pct``, ``circumferential_strain_pct`` float32 ``[S, T, H, W]`` only when
  written with ``strain_maps=True``.

``truth.json`` has the scalars: phases, geometry, levels, hypokinetic segments and the
true strain curves (global, per AHA segment, per slice) with peaks and times to peak in
the keys of ``report.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cinestrain.inference.heart.strain import StrainResult

#: what the displacement means, written into truth.json
CONVENTION = (
    "u[s, t, :, X] in mm is the Lagrangian displacement of the material point at ED pixel X "
    "of slice s: in phase t it is at X + u (component 0 along rows, 1 along columns), so "
    "I_t(X + u_t(X)) = I_ED(X); u[:, ed_phase] = 0. Strain: F = I + grad u (mm), engineering "
    "eps_n = |F n| - 1 with n radial from the LV centre or circumferential, percent."
)


@dataclass(frozen=True)
class Truth:
    """Exact ground truth of a case (see the module docstring for shapes and units)."""

    displacement: np.ndarray
    myocardium: np.ndarray
    lv_cavity: np.ndarray
    rv_cavity: np.ndarray
    lv_centres: np.ndarray
    insertion_points: np.ndarray
    anterior_direction: np.ndarray
    levels: tuple[str | None, ...]
    aha_labels: np.ndarray
    hypokinetic_segments: tuple[int, ...]
    ed_phase: int
    es_phase: int
    trigger_times: np.ndarray
    contraction: np.ndarray
    strain: StrainResult

    def arrays(self, strain_maps: bool = False) -> dict[str, np.ndarray]:
        """The arrays of ``truth.npz``."""
        out = {
            "displacement": self.displacement.astype(np.float32),
            "myocardium": self.myocardium,
            "lv_cavity": self.lv_cavity,
            "rv_cavity": self.rv_cavity,
            "aha_labels": self.aha_labels.astype(np.uint8),
            "lv_centres": self.lv_centres,
            "insertion_points": self.insertion_points,
            "trigger_times": self.trigger_times,
            "contraction": self.contraction,
        }
        if strain_maps:
            out["radial_strain_pct"] = self.strain.radial_pct.astype(np.float32)
            out["circumferential_strain_pct"] = self.strain.circumferential_pct.astype(
                np.float32)
        return out

    def summary(self) -> dict[str, object]:
        """The content of ``truth.json`` that the truth itself knows."""
        s, t = self.displacement.shape[:2]
        return {
            "convention": CONVENTION,
            "shape": {"slices": s, "phases": t, "rows": int(self.displacement.shape[3]),
                      "columns": int(self.displacement.shape[4])},
            "ed_phase": self.ed_phase,
            "es_phase": self.es_phase,
            "trigger_times_ms": np.round(self.trigger_times, 3).tolist(),
            "contraction": np.round(self.contraction, 5).tolist(),
            "levels": list(self.levels),
            "lv_centres_px": np.round(self.lv_centres, 4).tolist(),
            "insertion_points_px": {
                "anterior": np.round(self.insertion_points[:, 0], 4).tolist(),
                "inferior": np.round(self.insertion_points[:, 1], 4).tolist(),
            },
            "anterior_direction_rc": np.round(self.anterior_direction, 6).tolist(),
            "hypokinetic_segments": list(self.hypokinetic_segments),
            "strain": self.strain.to_dict(),
        }


def write_truth(
    truth: Truth,
    out_dir: str | Path,
    extra: dict[str, object] | None = None,
    *,
    strain_maps: bool = False,
) -> tuple[Path, Path]:
    """Write ``truth.npz`` (compressed) and ``truth.json`` into ``out_dir``.

    Parameters
    ----------
    truth : Truth
    out_dir : str or pathlib.Path
        Created when missing.
    extra : dict, optional
        More JSON entries (case parameters, DICOM UIDs, ...), merged at the top level.
    strain_maps : bool
        Also store the strain maps (large).

    Returns
    -------
    tuple of pathlib.Path
        The two paths.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = out_dir / "truth.npz"
    np.savez_compressed(npz, **truth.arrays(strain_maps))
    doc = truth.summary()
    doc.update(extra or {})
    path = out_dir / "truth.json"
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return npz, path


def load_truth_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a ``truth.npz`` (or of the folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "truth.npz"
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
