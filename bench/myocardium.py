"""The automatic ED myocardium alone: Sunnybrook Dice as bench/real.py has it, phantom Dice
as bench/strain.py has it, in a minute instead of ten.

    .venv/bin/python bench/myocardium.py [--real SCD0000101,SCD0000201] [--phantoms 3]
        [--cache /tmp/cinestrain-myocardium] [--pictures DIR] [--per-slice] [--out F.json]

- **real**: per study, what ``analyze`` does before the motion: the stack's heart centres,
  the ED phase (:func:`inference.heart.ed_phase.choose_ed_phase`, automatic), the automatic
  myocardium at that phase; its Dice against the manual ED myocardium over the contoured
  slices only (as ``bench/real.py``'s ``auto_myocardium.dice``), and again at the manual
  ED phase. Needs ``../shared/data/sunnybrook``.
- **phantom**: :func:`inference.heart.myocardium.segment_myocardium` on held-out cases from seed
  900000 in the reader's slice order at the true ED phase, Dice and Hausdorff distance
  against the truth myocardium over all slices (``bench/strain.py``'s ``*-auto`` rows).

The read studies and generated cases are cached (pickles) under ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
from strain import HELD_OUT_SEED, dice, hausdorff_mm
from sunnybrook import SHARED, STUDIES, SunnybrookStudy, extract, load_study, outline_montage

from cinestrain.inference.heart.centres import find_heart_centres, normalise_intensity
from cinestrain.inference.heart.ed_phase import choose_ed_phase
from cinestrain.inference.heart.myocardium import AutomaticMyocardium, segment_myocardium
from cinestrain.inference.phantom.case import generate_case


def _cached(path: Path, make: object) -> object:
    if path.exists():
        return pickle.loads(path.read_bytes())
    value = make()  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(value))
    return value


def real_study(name: str, cache: Path, per_slice: bool, pictures: Path | None
               ) -> dict[str, object]:
    """Dice at the automatic and at the manual ED phase of one Sunnybrook study."""
    study: SunnybrookStudy = _cached(cache / f"{name}.pkl",
                                     lambda: load_study(extract(name, cache), name))
    cine, sl = study.cine, study.slices
    start = time.perf_counter()
    centres = find_heart_centres(normalise_intensity(cine.pixels), cine.in_plane_spacing)
    spacing = cine.in_plane_spacing
    segment = AutomaticMyocardium(cine.pixels, spacing, centres)
    ed, _, _ = choose_ed_phase(cine.pixels, spacing, "auto", centres, segment=segment)
    manual = study.ed_myocardium()
    out: dict[str, object] = {"study": name, "ed_found": ed, "ed_manual": study.ed_phase}
    for label, phase in (("found", ed), ("manual", study.ed_phase)):
        masks = segment(phase)
        found = [int(k) for k in np.flatnonzero(masks.ring)]
        out[label] = {"phase": phase, "dice": dice(masks.myocardium[sl], manual[sl]),
                      "found": found, "missed": sorted(set(sl) - set(found)),
                      "extra": sorted(set(found) - set(sl))}
        if per_slice:
            out[label]["per_slice"] = {int(k): round(dice(masks.myocardium[k], manual[k]), 3)
                                       for k in sl}
        if pictures is not None:
            outline_montage(
                study, phase,
                [(study.masks(study.ed_endo), "lime"), (study.masks(study.ed_epi), "lime"),
                 (masks.lv_cavity, "red"), (masks.lv_cavity | masks.myocardium, "red")],
                f"{name} phase {phase} (manual ED {study.ed_phase}): manual (green), "
                "automatic (red)", pictures / f"{name}_ed{phase}.png")
    out["seconds"] = time.perf_counter() - start
    return out


def phantom_case(i: int, cache: Path) -> dict[str, float]:
    """Dice and Hausdorff distance of the automatic myocardium of held-out case ``i``."""

    def make() -> tuple[np.ndarray, np.ndarray, tuple[float, float], int]:
        case = generate_case(HELD_OUT_SEED + i)
        g = case.params.geometry
        order = np.argsort(g.positions @ g.normal)  # the reader's slice order
        return (case.pixels[order].astype(np.float32), case.truth.myocardium[order],
                tuple(float(v) for v in g.spacing), int(case.truth.ed_phase))

    pixels, truth, spacing, ed = _cached(cache / f"phantom{HELD_OUT_SEED + i}.pkl", make)
    masks = segment_myocardium(pixels, spacing, ed)
    return {"dice": dice(masks.myocardium, truth),
            "hausdorff_mm": hausdorff_mm(masks.myocardium, truth, spacing)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--real", default=",".join(STUDIES), help="studies ('' for none)")
    parser.add_argument("--phantoms", type=int, default=3, help="held-out cases (0: none)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/cinestrain-myocardium"))
    parser.add_argument("--pictures", type=Path, help="folder for the real studies' montages")
    parser.add_argument("--per-slice", action="store_true", help="Dice of every slice too")
    parser.add_argument("--out", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    results: dict[str, object] = {"real": [], "phantom": []}
    names = [n for n in args.real.split(",") if n]
    if names and not SHARED.is_dir():
        print(f"no real data at {SHARED}: real studies skipped", file=sys.stderr)
        names = []
    for name in names:
        r = real_study(name, args.cache, args.per_slice, args.pictures)
        results["real"].append(r)  # type: ignore[union-attr]
        for label in ("found", "manual"):
            m = r[label]
            print(f"{name} {label:6s} ED {m['phase']:2d}: Dice {m['dice']:.3f}  missed "
                  f"{m['missed']} extra {m['extra']}"
                  + (f"  {m['per_slice']}" if args.per_slice else ""))
    if args.phantoms:
        rows = [phantom_case(i, args.cache) for i in range(args.phantoms)]
        results["phantom"] = rows
        print("phantom Dice " + " ".join(f"{r['dice']:.3f}" for r in rows)
              + f"  mean {np.mean([r['dice'] for r in rows]):.3f}; Hausdorff mean "
              f"{np.mean([r['hausdorff_mm'] for r in rows]):.1f} mm")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
