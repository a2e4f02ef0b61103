"""Strain, segmentation and function accuracy on held-out phantom cases.

    .venv/bin/python bench/strain.py [--cases 10] [--methods truth-seg,truth-auto,model-seg,
        model-auto,demons-seg] [--weights PATH] [--out bench/out/strain.json]

A method is a displacement (truth, the model, SimpleITK demons) and an ED myocardium (the
truth SEG masks, or the automatic segmentation). ``truth-*`` rows separate the analysis'
own error from the motion's. Slices are fed in the reader's order (ascending position
along the slice normal), so base / apex is decided as for real studies. Per case and on
average:

- global peak circumferential / radial strain error (pp), time-to-peak error (ms);
- segmental peak circumferential strain MAE (pp, over segments present in both);
- whether the most hypokinetic segment is among the two least-contracting ones;
- automatic myocardium Dice and symmetric Hausdorff distance (mm) against the truth;
- EF error (pp) against the truth displacement carried over the truth ED cavity; ES phase.

Held-out cases use seeds from 900000 (training draws below 100000).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from cinestrain.config.schema import ModelSettings
from cinestrain.inference.baselines import demons_motion
from cinestrain.inference.heart.analysis import LVAnalysis, analyze_motion
from cinestrain.inference.heart.centres import (
    find_heart_centres,
    motion_centres,
    normalise_intensity,
)
from cinestrain.inference.heart.lv_function import lv_function, slice_spacing
from cinestrain.inference.heart.myocardium import (
    MyocardiumError,
    MyocardiumMasks,
    masks_from_segmentation,
    segment_myocardium,
)
from cinestrain.inference.model.checkpoint import load_model
from cinestrain.inference.model.estimate import estimate_motion
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.inference.phantom.case import PhantomCase, generate_case

HELD_OUT_SEED = 900_000


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)


def hausdorff_mm(a: np.ndarray, b: np.ndarray, spacing: tuple[float, float]) -> float:
    """Symmetric Hausdorff distance of two ``[S, H, W]`` masks, max over slices (mm)."""
    worst = 0.0
    for sa, sb in zip(a, b, strict=True):
        if not sa.any() and not sb.any():
            continue
        if not sa.any() or not sb.any():
            return float("inf")
        da = ndimage.distance_transform_edt(~sa, sampling=spacing)
        db = ndimage.distance_transform_edt(~sb, sampling=spacing)
        worst = max(worst, float(da[sb].max()), float(db[sa].max()))
    return worst


def least_contracting_hit(case: PhantomCase, result: LVAnalysis) -> bool | None:
    """Whether the most hypokinetic segment is among the two with the least negative peak
    circumferential strain (None for cases without one)."""
    hypo = case.params.motion.hypokinetic
    if not hypo:
        return None
    target = min(hypo, key=lambda item: item[1])[0]
    peaks = {k: c.peak_circumferential_pct for k, c in result.strain.segments.items()}
    two = sorted(peaks, key=peaks.get, reverse=True)[:2]
    return target in two


def case_metrics(case: PhantomCase, order: np.ndarray, u: np.ndarray, masks: MyocardiumMasks
                 ) -> dict[str, float | bool | None]:
    t = case.truth
    g = case.params.geometry
    positions = (g.positions @ g.normal)[order]
    result = analyze_motion(u, g.spacing, t.trigger_times[order], positions, t.ed_phase, masks,
                            orientation=g.orientation, slice_thickness=g.slice_thickness)
    est, ref = result.strain.global_curves, t.strain.global_curves
    seg_err = [abs(result.strain.segments[k].peak_circumferential_pct
                   - c.peak_circumferential_pct)
               for k, c in t.strain.segments.items() if k in result.strain.segments]
    true_fn = lv_function(t.displacement, t.lv_cavity, t.myocardium, t.lv_centres, g.spacing,
                          slice_spacing(positions), t.ed_phase)
    truth_myo = t.myocardium[order]
    return {
        "global_circ_err_pp": abs(est.peak_circumferential_pct - ref.peak_circumferential_pct),
        "global_radial_err_pp": abs(est.peak_radial_pct - ref.peak_radial_pct),
        "ttp_circ_err_ms": abs(est.time_to_peak_circumferential_ms
                               - ref.time_to_peak_circumferential_ms),
        "segment_circ_mae_pp": float(np.mean(seg_err)) if seg_err else float("nan"),
        "hypokinetic_hit": least_contracting_hit(case, result),
        "dice": dice(masks.myocardium, truth_myo),
        "hausdorff_mm": hausdorff_mm(masks.myocardium, truth_myo, g.spacing),
        "ef_err_pp": abs(result.function.ef_pct - true_fn.ef_pct) if result.function else None,
        "es_phase_err": abs(result.es_phase - t.es_phase) if result.es_phase is not None
        else None,
    }


def displacement(source: str, case: PhantomCase, order: np.ndarray, pixels: np.ndarray,
                 model: object, masks: MyocardiumMasks,
                 recentre_rounds: int = ModelSettings().recentre_rounds) -> np.ndarray:
    """``[S, T, 2, H, W]`` mm in the reader's slice order from the truth, model or demons.

    The model's grid is centred and moved as the product does it (``pipeline.run``): on
    the LV centres of the myocardium in use, else the heart centre of the cine, following
    that myocardium's mean motion (``model.recentre_rounds``)."""
    ed = case.truth.ed_phase
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    if source == "truth":
        return case.truth.displacement[order]
    if source == "model":
        coarse = find_heart_centres(normalise_intensity(pixels), spacing)
        settings = ModelSettings(recentre_rounds=recentre_rounds).motion_settings()
        return estimate_motion(pixels, spacing, ed, model, settings,
                               centres=motion_centres(coarse, masks.lv_centres),
                               follow=masks.myocardium)
    return demons_motion(pixels, spacing, ed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--first", type=int, default=0,
                        help="index of the first held-out case (seed 900000 + FIRST)")
    parser.add_argument("--hypokinetic-only", action="store_true",
                        help="skip the cases without a hypokinetic segment")
    parser.add_argument("--recentre-rounds", type=int, default=ModelSettings().recentre_rounds,
                        help="the model crop's following rounds (default: the product's)")
    parser.add_argument("--methods", default="truth-seg,truth-auto,model-seg,model-auto,demons-seg")
    parser.add_argument("--weights", type=Path, help="model file (default: shipped gru)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/out/strain.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    methods = args.methods.split(",")
    model = None
    if any(m.startswith("model") for m in methods):
        weights = args.weights or shipped_weights_path("gru")
        if not weights.exists():
            print(f"(no model weights at {weights}: model rows skipped)", file=sys.stderr)
            methods = [m for m in methods if not m.startswith("model")]
        else:
            model, _ = load_model(weights)
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for i in range(args.first, args.first + args.cases):
        case = generate_case(HELD_OUT_SEED + i)
        if args.hypokinetic_only and not case.params.motion.hypokinetic:
            continue
        t = case.truth
        g = case.params.geometry
        order = np.argsort(g.positions @ g.normal)  # the reader's slice order
        pixels = case.pixels[order].astype(np.float32)
        spacing = tuple(float(v) for v in g.spacing)
        seg = masks_from_segmentation(t.myocardium[order], spacing,
                                      lv_cavity=t.lv_cavity[order], rv_cavity=t.rv_cavity[order])
        try:
            auto = segment_myocardium(pixels, spacing, t.ed_phase)
        except MyocardiumError as exc:
            auto = None
            print(f"case {i}: automatic segmentation failed: {exc}", file=sys.stderr)
        cache: dict[str, np.ndarray] = {}
        for method in methods:
            source, mask_kind = method.split("-")
            masks = seg if mask_kind == "seg" else auto
            if masks is None:
                continue
            start = time.perf_counter()
            # the model's crop follows the masks' LV centres; the others do not use them
            key = method if source == "model" else source
            if key not in cache:
                cache[key] = displacement(source, case, order, pixels, model, masks,
                                          args.recentre_rounds)
            m = case_metrics(case, order, cache[key], masks)
            m["case"] = i
            m["seconds"] = time.perf_counter() - start
            rows[method].append(m)
            print(f"case {i} {method}: circ {m['global_circ_err_pp']:.2f} pp, seg MAE "
                  f"{m['segment_circ_mae_pp']:.2f} pp, Dice {m['dice']:.3f}, EF err "
                  f"{m['ef_err_pp']:.1f} pp", file=sys.stderr)
    summary = {}
    for method, per_case in rows.items():
        if not per_case:
            continue
        agg = {k: float(np.nanmean([r[k] for r in per_case if r[k] is not None]))
               for k in ("global_circ_err_pp", "global_radial_err_pp", "ttp_circ_err_ms",
                         "segment_circ_mae_pp", "dice", "hausdorff_mm", "ef_err_pp",
                         "es_phase_err")}
        hits = [r["hypokinetic_hit"] for r in per_case if r["hypokinetic_hit"] is not None]
        agg["hypokinetic_hit_pct"] = 100.0 * float(np.mean(hits)) if hits else float("nan")
        agg["hypokinetic_hits"] = int(sum(hits))
        agg["hypokinetic_cases"] = len(hits)
        agg["cases"] = len(per_case)
        summary[method] = agg
    header = (f"{'method':12s} {'circ pp':>8s} {'rad pp':>7s} {'ttp ms':>7s} {'seg pp':>7s} "
              f"{'hypo':>7s} {'Dice':>6s} {'HD mm':>6s} {'EF pp':>6s} {'ES':>4s}")
    print(header)
    print("-" * len(header))
    for method, a in summary.items():
        print(f"{method:12s} {a['global_circ_err_pp']:8.2f} {a['global_radial_err_pp']:7.2f} "
              f"{a['ttp_circ_err_ms']:7.1f} {a['segment_circ_mae_pp']:7.2f} "
              f"{a['hypokinetic_hits']:>4d}/{a['hypokinetic_cases']:<2d} {a['dice']:6.3f} "
              f"{a['hausdorff_mm']:6.1f} {a['ef_err_pp']:6.2f} {a['es_phase_err']:4.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cases": args.cases, "first": args.first,
                                    "hypokinetic_only": args.hypokinetic_only,
                                    "recentre_rounds": args.recentre_rounds,
                                    "held_out_seed": HELD_OUT_SEED,
                                    "summary": summary, "per_case": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
