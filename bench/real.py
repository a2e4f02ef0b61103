"""Real cine data: the two Sunnybrook studies against their manual contours.

    .venv/bin/python bench/real.py [--studies SCD0000101,SCD0000201] [--work DIR]
        [--threads 2] [--pictures] [--out bench/out/real.json]

Needs ``../shared/data/sunnybrook`` (see its README.md; the contour format is read by
``bench/sunnybrook.py``). Per study, in one run:

- **motion**: the manual ED endocardium carried to the manual ES phase by our motion (the
  displacement ``analyze`` computes with the manual ED myocardium, ``motion.npz``), by
  SimpleITK demons (:func:`inference.baselines.demons_motion`, ED -> ES of the contoured
  slices) and by no motion at all, against the manual ES endocardium: Dice of the LV
  cavity over the contoured slices, symmetric Hausdorff distance (mean over slices and
  worst slice, mm), and EF from the carried contours against EF from the manual ones
  (same slices, Simpson's discs);
- **analyze with the manual myocardium**: the bench writes the manual ED myocardium and
  cavity as a DICOM SEG and runs the product's pipeline with it (``--seg``): global peak
  circumferential / radial strain, ES phase, EF;
- **analyze automatic**: the same pipeline on the images alone: ED / ES phases found
  against the manual ones, global peaks, EF, and the automatic ED myocardium's Dice
  against the manual one (over the contoured slices; at the manual ED phase).

``--pictures`` also writes ``bench/out/real/<study>_myocardium.png`` (manual vs automatic
ED contours on every slice) and ``<study>_es.png`` (manual ES vs carried endocardium).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pydicom.uid import generate_uid
from scipy import ndimage
from strain import dice, hausdorff_mm
from sunnybrook import (
    SHARED,
    STUDIES,
    SunnybrookStudy,
    extract,
    load_study,
    outline_montage,
    polygon_mask,
)

from cinestrain.dicom_io.write.results import read_source_headers
from cinestrain.dicom_io.write.seg import build_cine_segmentation
from cinestrain.inference.baselines import demons_motion

REPO = Path(__file__).resolve().parents[1]


def write_manual_seg(study: SunnybrookStudy, path: Path) -> Path:
    """The manual ED myocardium and LV cavity as a DICOM SEG over the ED frames."""
    myocardium = study.ed_myocardium()
    cavity = study.masks(study.ed_endo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the source's leading-zero UIDs
        seg = build_cine_segmentation(
            study.cine, read_source_headers(study.cine),
            {"myocardium": myocardium, "lv_cavity": cavity}, study.ed_phase,
            series_number=990, series_description="manual contours (Sunnybrook)",
            series_instance_uid=generate_uid(entropy_srcs=[study.name, "manual-seg"]),
            sop_instance_uid=generate_uid(entropy_srcs=[study.name, "manual-seg", "1"]))
        seg.save_as(path)
    return path


def carry(points: np.ndarray, u: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """``[N, 2]`` (row, col) pixel vertices moved by one slice's displacement ``[2, H, W]``
    (mm, Lagrangian: the tissue at X is at X + u(X))."""
    coords = [points[:, 0], points[:, 1]]
    disp = np.stack([ndimage.map_coordinates(u[i].astype(np.float64), coords, order=1,
                                             mode="nearest") for i in range(2)], axis=1)
    return points + disp / np.asarray(spacing, dtype=float)


def contour_metrics(study: SunnybrookStudy, carried: dict[int, np.ndarray]
                    ) -> dict[str, object]:
    """Carried ED endocardium against the manual ES endocardium."""
    shape = study.cine.shape[2:]
    sp = study.spacing
    est = np.stack([polygon_mask(carried[k], shape) for k in study.slices])
    ref = np.stack([polygon_mask(study.es_endo[k], shape) for k in study.slices])
    per_slice = [hausdorff_mm(est[i : i + 1], ref[i : i + 1], sp)
                 for i in range(len(study.slices))]
    edv = study.volumes_ml(study.ed_endo)
    esv = study.volumes_ml(carried)
    return {
        "dice": dice(est, ref),
        "dice_per_slice": [dice(est[i], ref[i]) for i in range(len(study.slices))],
        "hausdorff_mean_mm": float(np.mean(per_slice)),
        "hausdorff_max_mm": float(np.max(per_slice)),
        "hausdorff_per_slice_mm": per_slice,
        "ef_pct": 100.0 * (edv - esv) / edv,
    }


def analyze(study: SunnybrookStudy, out: Path, seg: Path | None,
            weights: Path | None = None, config: Path | None = None) -> tuple[dict, dict]:
    """``cinestrain analyze`` on the study, as a user runs it: (report.json, motion.npz).

    A subprocess (``python -m node``), which also keeps ``bench/node.py`` from shadowing
    the ``node`` package."""
    command = [sys.executable, "-m", "cinestrain", "analyze", str(study.folder), "--out", str(out),
               "--save-motion", *(["--seg", str(seg)] if seg is not None else []),
               *(["--weights", str(weights.resolve())] if weights is not None else []),
               *(["--config", str(config.resolve())] if config is not None else [])]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{study.name}: analyze failed ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    report = json.loads((out / "report.json").read_text())
    with np.load(out / "motion.npz") as motion:
        arrays = {k: motion[k] for k in ("displacement", "myocardium", "ed_phase")}
    return report, arrays


def summary_of(report: dict) -> dict[str, object]:
    """Phases, global peaks and EF of a report.json."""
    g, f = report["global"], report["function"] or {}
    return {"ed_phase": report["ed_phase"], "ed_phase_source": report["ed_phase_source"],
            "es_phase": report["es_phase"],
            "peak_circumferential_pct": g["peak_circumferential_strain_pct"],
            "peak_radial_pct": g["peak_radial_strain_pct"], "ef_pct": f.get("ef_pct"),
            "warnings": report["warnings"]}


def run_study(name: str, work: Path, pictures: Path | None,
              weights: Path | None = None, config: Path | None = None) -> dict[str, object]:
    """Every figure of one study."""
    root = extract(name, work)
    study = load_study(root, name)
    sp, ed, es = study.spacing, study.ed_phase, study.es_phase
    times: dict[str, float] = {}
    result: dict[str, object] = {
        "study": name, "slices": study.slices, "manual_ed_phase": ed, "manual_es_phase": es,
        "manual_ef_pct": study.manual_ef_pct(), "seconds": times}

    start = time.perf_counter()
    seg_path = write_manual_seg(study, root / "manual_seg.dcm")
    report_seg, motion_seg = analyze(study, root / "analyze-seg", seg_path, weights, config)
    times["analyze_manual_seg_s"] = time.perf_counter() - start
    if int(motion_seg["ed_phase"]) != ed:
        raise RuntimeError(f"{name}: analyze with the manual SEG took ED {motion_seg['ed_phase']}")
    start = time.perf_counter()
    report_auto, motion_auto = analyze(study, root / "analyze-auto", None, weights, config)
    times["analyze_auto_s"] = time.perf_counter() - start

    start = time.perf_counter()
    sl = study.slices
    u_demons = demons_motion(study.cine.pixels[sl][:, [ed, es]], sp, 0)[:, 1]
    times["demons_s"] = time.perf_counter() - start
    u_ours = motion_seg["displacement"][sl, es]
    fields = {"ours": dict(zip(sl, u_ours, strict=True)),
              "demons": dict(zip(sl, u_demons, strict=True)),
              "none": {k: np.zeros((2, *study.cine.shape[2:]), np.float32) for k in sl}}
    carried = {m: {k: carry(study.ed_endo[k], f[k], sp) for k in sl} for m, f in fields.items()}
    result["es_carry"] = {m: contour_metrics(study, c) for m, c in carried.items()}

    manual_myo = study.ed_myocardium()
    auto_myo = motion_auto["myocardium"].astype(bool)
    result["analyze_manual_seg"] = summary_of(report_seg)
    result["analyze_auto"] = summary_of(report_auto)
    result["auto_myocardium"] = {
        "dice": dice(auto_myo[sl], manual_myo[sl]),
        "dice_per_slice": {int(k): dice(auto_myo[k], manual_myo[k]) for k in sl},
        "hausdorff_max_mm": hausdorff_mm(auto_myo[sl], manual_myo[sl], sp),
        "slices_found": [int(k) for k in np.nonzero(auto_myo.any(axis=(1, 2)))[0]],
        "at_phase": int(motion_auto["ed_phase"]),
    }
    if pictures is not None:
        save_pictures(study, auto_myo, carried, pictures)
    return result


def save_pictures(study: SunnybrookStudy, auto_myo: np.ndarray,
                  carried: dict[str, dict[int, np.ndarray]], folder: Path) -> None:
    """Montages: ED manual (green) vs automatic (red) myocardium; ES manual (green) vs
    carried by ours (red) and demons (blue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outline_montage(study, study.ed_phase,
                    [(study.ed_myocardium(), "lime"), (auto_myo, "red")],
                    f"{study.name} ED phase {study.ed_phase}: manual (green) vs automatic (red)",
                    folder / f"{study.name}_myocardium.png")
    rows, cols = study.crop()
    fig, axes = plt.subplots(1, len(study.slices), figsize=(2.2 * len(study.slices), 2.6))
    for k, ax in zip(study.slices, np.atleast_1d(axes), strict=True):
        ax.imshow(study.cine.pixels[k, study.es_phase, rows, cols], cmap="gray")
        for points, colour in ((study.es_endo[k], "lime"), (carried["ours"][k], "red"),
                               (carried["demons"][k], "deepskyblue")):
            closed = np.vstack([points, points[:1]])
            ax.plot(closed[:, 1] - cols.start, closed[:, 0] - rows.start, color=colour, lw=0.7)
        ax.set_title(f"slice {k}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"{study.name} ES phase {study.es_phase}: manual (green), ours (red), "
                 "demons (blue)", fontsize=8)
    fig.savefig(folder / f"{study.name}_es.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def print_table(results: list[dict[str, object]]) -> None:
    """One table: a row per study and method."""
    head = (f"{'study':11s} {'method':7s} {'ES Dice':>7s} {'HD mm':>11s} {'EF %':>11s} "
            f"{'ED/ES':>9s} {'circ %':>6s} {'rad %':>6s} {'myo Dice':>8s}")
    print(head)
    print("-" * len(head))
    for r in results:
        seg, auto = r["analyze_manual_seg"], r["analyze_auto"]
        for method, m in r["es_carry"].items():
            print(f"{r['study']:11s} {method:7s} {m['dice']:7.3f} "
                  f"{m['hausdorff_mean_mm']:5.1f}/{m['hausdorff_max_mm']:<5.1f} "
                  f"{m['ef_pct']:5.1f}/{r['manual_ef_pct']:<5.1f}")
        for label, a, myo in (("seg", seg, ""), ("auto", auto,
                                                 f"{r['auto_myocardium']['dice']:8.3f}")):
            ef = "-" if a["ef_pct"] is None else f"{a['ef_pct']:.1f}"
            phases = f"{a['ed_phase']}/{a['es_phase']}"
            print(f"{r['study']:11s} {label:7s} {'':19s} {ef:>5s}/{r['manual_ef_pct']:<5.1f} "
                  f"{phases:>5s}({r['manual_ed_phase']}/{r['manual_es_phase']}) "
                  f"{a['peak_circumferential_pct']:6.1f} {a['peak_radial_pct']:6.1f} {myo}")
    print("ours/demons/none: manual ED endocardium carried to the manual ES phase "
          "(HD mean/worst slice, EF carried/manual);\nseg/auto: analyze with the manual "
          "SEG / automatic (EF analyze/manual, ED/ES found (manual), global peaks).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", default=",".join(STUDIES))
    parser.add_argument("--work", type=Path, default=Path("bench/out/real"),
                        help="where the archives are unpacked and analyze writes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pictures", action="store_true")
    parser.add_argument("--weights", type=Path, help="model file (default: the shipped gru)")
    parser.add_argument("--config", type=Path,
                        help="node configuration whose [model] settings analyze uses")
    parser.add_argument("--out", type=Path, default=Path("bench/out/real.json"))
    args = parser.parse_args(argv)
    if not SHARED.is_dir():
        print(f"no real data at {SHARED}: nothing to benchmark", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    results = []
    for name in args.studies.split(","):
        results.append(run_study(name, args.work, args.work if args.pictures else None,
                                 args.weights, args.config))
        print(f"{name}: {sum(results[-1]['seconds'].values()):.0f} s", file=sys.stderr)
    print_table(results)
    total = time.perf_counter() - start
    print(f"total {total:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"results": results, "seconds": total}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
