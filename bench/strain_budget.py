"""Where the model's segmental strain error comes from: its radial or its tangential motion.

On held-out phantom cases with the truth SEG, the model's displacement is split about each
slice's LV centre into a radial and a tangential component, and each is in turn replaced
by the truth's. The strain analysis then runs on each mixture, so the table says how much
of the segmental circumferential error (and of the missed hypokinetic segments) each
component carries::

    .venv/bin/python bench/strain_budget.py [--cases 6] [--weights PATH] [--threads 2]

A constant shift of the field changes no strain; an error in the tangential component
that varies around the ring (the tangential share of a whole-heart translation, invisible
locally on a smooth wall: the aperture problem) does, by its derivative along the ring.

It also splits the model's myocardial end-point error the same way, and says how much of
the tangential error is a rigid rotation of the slice (a twist error, which changes no
strain) and how much varies round the ring.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from strain import HELD_OUT_SEED, case_metrics, displacement  # noqa: E402

from cinestrain.inference.heart.myocardium import masks_from_segmentation  # noqa: E402
from cinestrain.inference.model.checkpoint import load_model  # noqa: E402
from cinestrain.inference.model.shipped_weights import shipped_weights_path  # noqa: E402
from cinestrain.inference.phantom.case import generate_case  # noqa: E402


def radius_mm(shape: tuple[int, int], centres: np.ndarray, spacing: tuple[float, float]
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``[S, H, W]`` distance (mm) of each pixel from its slice's centre (pixel ``(row,
    col)``), and the row and column of the radial unit vector."""
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float64)
    dr = (rows[None] - centres[:, 0, None, None]) * spacing[0]
    dc = (cols[None] - centres[:, 1, None, None]) * spacing[1]
    length = np.maximum(np.hypot(dr, dc), 1e-6)
    return length, dr / length, dc / length


def polar_parts(u: np.ndarray, centres: np.ndarray, spacing: tuple[float, float]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Radial and tangential components of ``u[S, T, 2, H, W]`` about each slice's centre
    (pixel ``(row, col)``), and the ``[S, H, W]`` radial unit vector's row and column."""
    _, er, ec = radius_mm(u.shape[-2:], centres, spacing)
    radial = u[:, :, 0] * er[:, None] + u[:, :, 1] * ec[:, None]
    tangential = -u[:, :, 0] * ec[:, None] + u[:, :, 1] * er[:, None]
    return radial, tangential, er, ec


def recombine(radial: np.ndarray, tangential: np.ndarray, er: np.ndarray, ec: np.ndarray
              ) -> np.ndarray:
    """``u[S, T, 2, H, W]`` from its radial and tangential components."""
    return np.stack([radial * er[:, None] - tangential * ec[:, None],
                     radial * ec[:, None] + tangential * er[:, None]], axis=2)


def gain(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Least-squares slope of ``estimate`` on ``truth`` (``[S, T, H, W]``) inside the
    ``[S, H, W]`` mask over all phases: 1 when a component is found in full."""
    inside = np.broadcast_to(mask[:, None], estimate.shape)
    e, t = estimate[inside], truth[inside]
    return float((e * t).sum() / max(float((t * t).sum()), 1e-12))


def error_split(radial: np.ndarray, tangential: np.ndarray, radial_truth: np.ndarray,
                tangential_truth: np.ndarray, mask: np.ndarray, radius_mm: np.ndarray
                ) -> dict[str, float]:
    """Mean end-point error in the ``[S, H, W]`` mask and its parts (mm, all phases).

    ``tangential_nonrigid_mm`` is what is left of the tangential error once each slice and
    phase's best rigid rotation about the LV centre (``radius_mm`` ``[S, H, W]`` from it)
    is taken out: the part that a better twist estimate could not remove.
    """
    d_rad, d_tan = radial - radial_truth, tangential - tangential_truth
    inside = np.broadcast_to(mask[:, None], d_rad.shape)
    r = np.broadcast_to(radius_mm[:, None], d_rad.shape)
    num = np.where(inside, d_tan * r, 0.0).sum(axis=(2, 3))
    den = np.maximum(np.where(inside, r * r, 0.0).sum(axis=(2, 3)), 1e-12)
    nonrigid = d_tan - (num / den)[..., None, None] * r
    return {
        "epe_mm": float(np.hypot(d_rad, d_tan)[inside].mean()),
        "radial_mm": float(np.abs(d_rad)[inside].mean()),
        "tangential_mm": float(np.abs(d_tan)[inside].mean()),
        "tangential_nonrigid_mm": float(np.abs(nonrigid)[inside].mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--weights", type=Path, help="model file (default: shipped gru)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/strain_budget.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.weights or shipped_weights_path("gru"))
    names = ("model", "model radial + truth tangential", "truth radial + model tangential",
             "truth")
    rows: dict[str, list[dict]] = {n: [] for n in names}
    gains: list[tuple[float, float]] = []
    errors: list[dict[str, float]] = []
    for i in range(args.cases):
        case = generate_case(HELD_OUT_SEED + i)
        t, g = case.truth, case.params.geometry
        order = np.argsort(g.positions @ g.normal)
        pixels = case.pixels[order].astype(np.float32)
        spacing = (float(g.spacing[0]), float(g.spacing[1]))
        seg = masks_from_segmentation(t.myocardium[order], spacing,
                                      lv_cavity=t.lv_cavity[order], rv_cavity=t.rv_cavity[order])
        truth = displacement("truth", case, order, pixels, model, seg)
        ours = displacement("model", case, order, pixels, model, seg)
        centres = np.asarray(seg.lv_centres, dtype=np.float64)  # NaN on slices without
        ring = np.isfinite(centres[:, 0])
        centres = np.where(np.isfinite(centres), centres, 0.0)  # a ring: no strain there
        rad_m, tan_m, er, ec = polar_parts(ours, centres, spacing)
        rad_t, tan_t, _, _ = polar_parts(truth, centres, spacing)
        gains.append((gain(rad_m, rad_t, seg.myocardium), gain(tan_m, tan_t, seg.myocardium)))
        radius, _, _ = radius_mm(pixels.shape[-2:], centres, spacing)
        errors.append(error_split(rad_m, tan_m, rad_t, tan_t,
                                  seg.myocardium.astype(bool) & ring[:, None, None], radius))
        fields = (ours, recombine(rad_m, tan_t, er, ec), recombine(rad_t, tan_m, er, ec), truth)
        for name, u in zip(names, fields, strict=True):
            m = case_metrics(case, order, u, seg)
            m["case"] = i
            rows[name].append(m)
        print(f"case {i} done", file=sys.stderr)
    summary = {}
    print(f"{'displacement (truth SEG)':34s} {'circ pp':>8s} {'rad pp':>7s} {'seg pp':>7s} "
          f"{'hypo':>5s}")
    for name, per_case in rows.items():
        hits = [r["hypokinetic_hit"] for r in per_case if r["hypokinetic_hit"] is not None]
        summary[name] = {
            "global_circ_err_pp": float(np.mean([r["global_circ_err_pp"] for r in per_case])),
            "global_radial_err_pp": float(np.mean([r["global_radial_err_pp"] for r in per_case])),
            "segment_circ_mae_pp": float(np.nanmean([r["segment_circ_mae_pp"]
                                                     for r in per_case])),
            "hypokinetic_hits": int(sum(hits)), "hypokinetic_cases": len(hits),
        }
        a = summary[name]
        print(f"{name:34s} {a['global_circ_err_pp']:8.2f} {a['global_radial_err_pp']:7.2f} "
              f"{a['segment_circ_mae_pp']:7.2f} {a['hypokinetic_hits']:>3d}/{len(hits)}")
    radial_gain, tangential_gain = (float(np.mean(g)) for g in zip(*gains, strict=True))
    print(f"share of the truth's motion the model finds in the myocardium (least-squares "
          f"gain, mean of cases): radial {radial_gain:.2f}, tangential {tangential_gain:.2f}")
    summary["gain"] = {"radial": radial_gain, "tangential": tangential_gain}
    summary["error_split_mm"] = {k: float(np.mean([e[k] for e in errors])) for k in errors[0]}
    a = summary["error_split_mm"]
    print(f"model's myocardial error (mm, mean of cases): end-point {a['epe_mm']:.3f}, radial "
          f"{a['radial_mm']:.3f}, tangential {a['tangential_mm']:.3f}, tangential less each "
          f"slice and phase's best rigid rotation {a['tangential_nonrigid_mm']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases": args.cases, "held_out_seed": HELD_OUT_SEED,
                                    "summary": summary, "per_case": rows,
                                    "error_split_per_case": errors}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
