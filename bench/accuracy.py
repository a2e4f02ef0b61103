"""Motion accuracy and speed on held-out phantom cases: model vs demons vs zero motion.

    .venv/bin/python bench/accuracy.py [--cases 6] [--threads 2] [--out bench/out/accuracy.json]

Every method runs on the same cases in one run and answers in the same contract
(``u[S, T, 2, H, W]`` mm on the ED grid). Metrics, over all phases but ED:

- myocardial end-point error, mean and 95th percentile (mm);
- end-point error elsewhere in the heart (LV and RV blood pools, mm);
- folding: share of myocardial pixels with det F <= 0 (F = I + grad u);
- runtime per slice (s), median over cases (the model's includes finding the LV, which
  centres its crop, as the product does).

Then a speed table: each method alone in a fresh process with ``--threads`` torch/ITK
threads, on a stack of 25-phase slices, giving the median time per slice over repeats
and the peak memory the runs add to the process once the model and input are in memory
(peak RSS, reset before the first run, minus the resident size then).

Held-out cases use seeds from 900000 up, which training never draws (training samples
come from seeds below 100000, see ``inference/phantom/dataset.py``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cinestrain.config.schema import ModelSettings
from cinestrain.inference.baselines import demons_motion, zero_motion
from cinestrain.inference.heart.centres import (
    find_heart_centres,
    motion_centres,
    normalise_intensity,
)
from cinestrain.inference.heart.myocardium import MyocardiumError, segment_myocardium
from cinestrain.inference.heart.strain import deformation_gradient
from cinestrain.inference.model.checkpoint import load_model
from cinestrain.inference.model.estimate import estimate_motion
from cinestrain.inference.model.shipped_weights import shipped_weights_path
from cinestrain.inference.phantom.case import generate_case

HELD_OUT_SEED = 900_000
DEFAULT_RECENTRE = ModelSettings().recentre_rounds


def motion_metrics(u: np.ndarray, case) -> dict[str, float]:
    """EPE and folding of ``u`` against the case's truth (all phases but ED)."""
    truth = case.truth
    keep = [t for t in range(u.shape[1]) if t != truth.ed_phase]
    err = np.linalg.norm(u[:, keep] - truth.displacement[:, keep], axis=2)  # S, T', H, W
    myo = np.broadcast_to(truth.myocardium[:, None], err.shape)
    blood = np.broadcast_to((truth.lv_cavity | truth.rv_cavity)[:, None], err.shape)
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    det = np.stack(
        [
            np.linalg.det(np.moveaxis(deformation_gradient(u_s, spacing), (1, 2), (-2, -1)))
            for u_s in u[:, keep]
        ]
    )  # S, T', H, W
    return {
        "epe_myo_mean_mm": float(err[myo].mean()),
        "epe_myo_p95_mm": float(np.percentile(err[myo], 95)),
        "epe_blood_mean_mm": float(err[blood].mean()),
        "folding_pct": float(100 * (det[myo] <= 0).mean()),
    }


def product_crop(pixels: np.ndarray, spacing: tuple[float, float], ed: int
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """What the product centres and moves the model's crop with: the automatic LV centres
    (else the heart centre) and the automatic ED myocardium (None when none is found)."""
    coarse = find_heart_centres(normalise_intensity(pixels), spacing)
    try:
        masks = segment_myocardium(pixels, spacing, ed, centres=coarse)
    except MyocardiumError:
        return motion_centres(coarse, None), None
    return motion_centres(coarse, masks.lv_centres), masks.myocardium


def methods(threads: int, variants: list[str], pairings: list[str], weights_dir: Path | None,
            recentre: list[int], baselines: bool = True):
    """name -> function(pixels, spacing, ed) -> u."""
    out = {}
    for temporal in variants:
        path = (weights_dir / f"{temporal}.pt") if weights_dir else shipped_weights_path(temporal)
        if not path.exists():
            print(f"(no weights for {temporal}: {path})", file=sys.stderr)
            continue
        model, _ = load_model(path)
        for pairing in pairings:
            for rounds in recentre:
                settings = ModelSettings(pairing=pairing, recentre_rounds=rounds).motion_settings()

                def run(px, sp, ed, model=model, settings=settings):
                    centres, myocardium = product_crop(px, sp, ed)
                    return estimate_motion(px, sp, ed, model, settings, centres=centres,
                                           follow=myocardium)

                suffix = "" if rounds == DEFAULT_RECENTRE else f"-recentre{rounds}"
                out[f"model-{temporal}-{pairing}{suffix}"] = run
    if baselines:
        out["demons"] = lambda px, sp, ed: demons_motion(px, sp, ed)
        out["zero"] = lambda px, sp, ed: zero_motion(px)
    return out


def _rss_kib(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` of this process, KiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _speed_child(name: str, args: dict, queue) -> None:
    """One method's speed and peak memory, measured in this (fresh) process."""
    torch.set_num_threads(args["threads"])
    import SimpleITK as sitk  # noqa: PLC0415 (the child sets its own thread count)

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args["threads"])
    fn = methods(args["threads"], args["variants"], args["pairings"], args["weights_dir"],
                 args["recentre"])[name]
    case = generate_case(HELD_OUT_SEED)
    spacing = tuple(float(v) for v in case.params.geometry.spacing)
    reps = -(-25 // case.shape[1])  # the case's cycle repeated, cut at 25 phases
    px = np.concatenate([case.pixels] * reps, axis=1)[: args["slices"], :25].astype(np.float32)
    ed = case.truth.ed_phase
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS
    before = _rss_kib("VmRSS")  # model loaded, input ready
    fn(px[:1], spacing, ed)  # warm-up (lazy initialisation, allocator)
    times = []
    for _ in range(args["repeats"]):
        start = time.perf_counter()
        fn(px, spacing, ed)
        times.append((time.perf_counter() - start) / px.shape[0])
    queue.put(
        {
            "s_per_slice": float(np.median(times)),
            "peak_mib": (_rss_kib("VmHWM") - before) / 1024,
            "slices": px.shape[0],
        }
    )


def _rounds(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def speed_table(names: list[str], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per method, in a fresh process each: median s per 25-phase slice, peak MiB added."""
    ctx = multiprocessing.get_context("spawn")
    params = {
        "threads": args.threads,
        "variants": args.variants.split(","),
        "pairings": args.pairings.split(","),
        "weights_dir": args.weights_dir,
        "recentre": _rounds(args.recentre_rounds),
        "slices": args.speed_slices,
        "repeats": args.speed_repeats,
    }
    out = {}
    for name in names:
        queue = ctx.Queue()
        child = ctx.Process(target=_speed_child, args=(name, params, queue))
        child.start()
        out[name] = queue.get(timeout=3600)
        child.join()
        print(f"speed {name}: {out[name]}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--variants", default="gru,transformer,none")
    parser.add_argument("--pairings", default="anchored,consecutive")
    parser.add_argument("--weights-dir", type=Path, help="NAME.pt per variant (default: shipped)")
    parser.add_argument(
        "--recentre-rounds", default=str(DEFAULT_RECENTRE),
        help="comma list: the model's crop-following rounds to compare (default: the "
        "product's; rows for other values are named -recentreN)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/accuracy.json"))
    parser.add_argument("--no-baselines", action="store_true",
                        help="models only: no demons, no zero motion (quick comparisons)")
    parser.add_argument("--speed-slices", type=int, default=4, help="0: no speed table")
    parser.add_argument("--speed-repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    todo = methods(args.threads, args.variants.split(","), args.pairings.split(","),
                   args.weights_dir, _rounds(args.recentre_rounds), not args.no_baselines)
    rows: dict[str, list[dict]] = {name: [] for name in todo}
    for i in range(args.cases):
        case = generate_case(HELD_OUT_SEED + i)
        s, t, h, w = case.shape
        spacing = tuple(float(v) for v in case.params.geometry.spacing)
        px = case.pixels.astype(np.float32)
        print(f"case {i}: {s}x{t}x{h}x{w}, {spacing[0]:.2f} mm", file=sys.stderr)
        for name, fn in todo.items():
            start = time.perf_counter()
            u = fn(px, spacing, case.truth.ed_phase)
            elapsed = time.perf_counter() - start
            m = motion_metrics(u, case)
            m["runtime_per_slice_s"] = elapsed / s
            m["runtime_per_slice_25_phases_s"] = elapsed / s * 25 / (t - 1) if t > 1 else 0.0
            rows[name].append(m)

    summary = {}
    for name, per_case in rows.items():
        if not per_case:  # --cases 0: the speed table only
            continue
        keys = per_case[0].keys()
        agg = {k: float(np.mean([r[k] for r in per_case])) for k in keys}
        agg["runtime_per_slice_s"] = float(np.median([r["runtime_per_slice_s"] for r in per_case]))
        agg["runtime_per_slice_25_phases_s"] = float(
            np.median([r["runtime_per_slice_25_phases_s"] for r in per_case])
        )
        summary[name] = agg

    header = (
        f"{'method':34s} {'EPE myo':>8s} {'p95':>6s} {'EPE blood':>9s} "
        f"{'fold %':>7s} {'s/slice':>8s} {'s/25ph':>7s}"
    )
    print(header)
    print("-" * len(header))
    for name, a in summary.items():
        print(
            f"{name:34s} {a['epe_myo_mean_mm']:8.3f} {a['epe_myo_p95_mm']:6.2f} "
            f"{a['epe_blood_mean_mm']:9.3f} {a['folding_pct']:7.3f} "
            f"{a['runtime_per_slice_s']:8.3f} {a['runtime_per_slice_25_phases_s']:7.3f}"
        )
    if "demons" in summary:
        ref = summary["demons"]["epe_myo_mean_mm"]
        print("\nmyocardial EPE relative to demons (lower is better):")
        for name, a in summary.items():
            print(f"  {name:34s} {a['epe_myo_mean_mm'] / ref:6.2f}")
    speed = {}
    if args.speed_slices:
        speed = speed_table([n for n in todo if n != "zero"], args)
        print(
            f"\nspeed, {args.threads} threads, slices of 25 phases "
            f"({args.speed_slices} slices, median of {args.speed_repeats}):"
        )
        print(f"  {'method':34s} {'s/slice':>8s} {'peak MiB':>9s}")
        for name, r in speed.items():
            print(f"  {name:34s} {r['s_per_slice']:8.3f} {r['peak_mib']:9.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "cases": args.cases,
                "held_out_seed": HELD_OUT_SEED,
                "threads": args.threads,
                "summary": summary,
                "speed": speed,
                "device": "cpu",
                "per_case": rows,
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
