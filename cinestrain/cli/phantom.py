"""``cinestrain phantom``: write synthetic cine short-axis studies with exact truth.

Per case, under ``OUT/case_NNN/`` (NNN: the case number, from 000):

- ``dicom/``: the cine as classic single-frame MR images (one series, or one per slice
  with ``--per-slice-series``);
- ``enhanced/cine.dcm`` with ``--enhanced``: the same stack as one Enhanced MR object;
- ``seg/seg.dcm``: the truth ED myocardium (and LV / RV cavities) as a DICOM
  Segmentation referencing the ED images;
- ``truth.npz``, ``truth.json``: displacement, masks, AHA labels, strain (see
  :mod:`inference.phantom.truth`);
- ``preview/*.png`` with ``--preview``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from tqdm import tqdm

from cinestrain.dicom_io.write.seg import build_segmentation
from cinestrain.inference.phantom import PhantomCase, PhantomConfig, generate_case, write_truth
from cinestrain.inference.phantom.scanner import CineStudy, write_cine_classic, write_cine_enhanced

#: series numbers of what a case holds
CINE_SERIES_NUMBER = 1
ENHANCED_SERIES_NUMBER = 100
SEG_SERIES_NUMBER = 200


def _range(text: str) -> tuple[int, int]:
    """``"LO-HI"`` or ``"N"`` -> (LO, HI)."""
    try:
        parts = [int(p) for p in text.split("-")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected N or LO-HI, got {text!r}") from exc
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or parts[0] > parts[1] or parts[0] < 1:
        raise argparse.ArgumentTypeError(f"expected N or LO-HI with LO <= HI, got {text!r}")
    return parts[0], parts[1]


def _ed_phase(text: str) -> int | None:
    if text == "random":
        return None
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an index or 'random', got {text!r}") from exc
    if value < 0:
        raise argparse.ArgumentTypeError("the ED phase index must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's arguments."""
    defaults = PhantomConfig()
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="output folder (one sub-folder per case)")
    parser.add_argument("--cases", type=int, default=1, metavar="N", help="cases (default 1)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="seed; the same seed writes the same studies (default 0)")
    parser.add_argument("--enhanced", action="store_true",
                        help="also write the stack as one Enhanced MR multi-frame object")
    parser.add_argument("--per-slice-series", action="store_true",
                        help="one classic series per slice, as many scanners send cines")
    parser.add_argument("--preview", action="store_true",
                        help="write PNG montages (ED/ES, truth contours, displacement)")
    parser.add_argument("--slices", type=_range, default=defaults.slices, metavar="LO-HI",
                        help="slices per stack (default %(default)s)")
    parser.add_argument("--phases", type=_range, default=defaults.phases, metavar="LO-HI",
                        help="phases per cycle (default %(default)s)")
    parser.add_argument("--matrix", type=_range, default=defaults.matrix, metavar="LO-HI",
                        help="image matrix (default %(default)s)")
    parser.add_argument("--ed-phase", type=_ed_phase, default=0, metavar="K|random",
                        help="index of the ED phase; 'random' starts acquisitions late in the "
                        "cycle (default 0)")
    parser.add_argument("--hypokinetic-share", type=float, default=defaults.hypokinetic_share,
                        metavar="F", help="share of cases with hypokinetic segments "
                        "(default %(default)s)")
    parser.add_argument("--no-noise", action="store_true", help="render without noise")
    parser.add_argument("--strain-maps", action="store_true",
                        help="also store the truth strain maps in truth.npz (large)")
    parser.add_argument("--file-names", choices=("uid", "random"), default="uid",
                        help="classic file names: <SOPInstanceUID>.dcm or random (default uid)")


def case_seed(seed: int, index: int) -> int:
    """The seed of case ``index`` of a run seeded ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def cine_study(case: PhantomCase, index: int, run_seed: int) -> CineStudy:
    """The :class:`~inference.phantom.scanner.CineStudy` of a phantom case."""
    geometry = case.params.geometry
    return CineStudy(
        pixels=case.pixels,
        positions=geometry.positions,
        orientation=geometry.orientation,
        pixel_spacing=geometry.spacing,
        slice_thickness=geometry.slice_thickness,
        trigger_times=case.params.trigger_times,
        rr_interval_ms=case.params.rr_interval_ms,
        patient_name=f"PHANTOM^CASE{index:03d}",
        patient_id=f"CS-PH-{run_seed}-{index:03d}",
        study_id=f"{index + 1}",
        series_description="cine SAX bSSFP (phantom)",
        series_number=CINE_SERIES_NUMBER,
    )


def write_case(case: PhantomCase, index: int, args: argparse.Namespace, out: Path
               ) -> dict[str, Any]:
    """Write one case's DICOM, SEG, truth and previews; return its summary."""
    study = cine_study(case, index, args.seed)
    paths = write_cine_classic(study, out / "dicom", per_slice_series=args.per_slice_series,
                               file_names=args.file_names, seed=case.seed)
    n_s, n_t = case.pixels.shape[:2]
    ed = case.truth.ed_phase
    ed_images = [dcmread(paths[s * n_t + ed]) for s in range(n_s)]
    uids: dict[str, Any] = {
        "study_instance_uid": study.study_instance_uid,
        "frame_of_reference_uid": study.frame_of_reference_uid,
        "cine_series_instance_uids": sorted({str(ds.SeriesInstanceUID) for ds in ed_images}),
        "ed_sop_instance_uids": [str(ds.SOPInstanceUID) for ds in ed_images],
    }
    if args.enhanced:
        enhanced = dataclasses.replace(
            study, series_number=ENHANCED_SERIES_NUMBER,
            series_description="cine SAX bSSFP (phantom, enhanced)")
        path = write_cine_enhanced(enhanced, out / "enhanced" / "cine.dcm", seed=case.seed)
        uids["enhanced_sop_instance_uid"] = str(dcmread(path, stop_before_pixels=True)
                                                .SOPInstanceUID)
    truth = case.truth
    seg = build_segmentation(
        ed_images,
        {"myocardium": truth.myocardium, "lv_cavity": truth.lv_cavity,
         "rv_cavity": truth.rv_cavity},
        series_number=SEG_SERIES_NUMBER,
        series_description="ED myocardium (phantom truth)",
    )
    (out / "seg").mkdir(parents=True, exist_ok=True)
    seg.save_as(out / "seg" / "seg.dcm")
    uids["seg_sop_instance_uid"] = str(seg.SOPInstanceUID)
    write_truth(truth, out, _case_description(case, index, args, uids),
                strain_maps=args.strain_maps)
    if args.preview:
        from cinestrain.inference.phantom.preview import save_previews

        save_previews(case, out / "preview")
    g = truth.strain.global_curves
    return {
        "case": out.name,
        "shape": list(case.shape),
        "hypokinetic": list(truth.hypokinetic_segments),
        "peak_circumferential_pct": round(g.peak_circumferential_pct, 1) if g else None,
        "peak_radial_pct": round(g.peak_radial_pct, 1) if g else None,
    }


def _case_description(case: PhantomCase, index: int, args: argparse.Namespace,
                      uids: dict[str, Any]) -> dict[str, Any]:
    """The case entries of truth.json besides the truth itself."""
    p = case.params
    geometry = p.geometry
    m = p.motion
    normal = geometry.normal
    return {
        "case_index": index,
        "run_seed": args.seed,
        "case_seed": case.seed,
        "slice_order": "base to apex (truth index 0 is the most basal slice)",
        "geometry": {
            "image_orientation_patient": np.round(geometry.orientation, 6).tolist(),
            "image_positions_patient": np.round(geometry.positions, 4).tolist(),
            "slice_positions_mm": np.round(geometry.positions @ normal, 4).tolist(),
            "pixel_spacing_mm": list(geometry.spacing),
            "slice_thickness_mm": round(geometry.slice_thickness, 3),
        },
        "timing": {"rr_interval_ms": round(p.rr_interval_ms, 3),
                   "heart_rate_bpm": round(60000.0 / p.rr_interval_ms, 2),
                   "es_fraction_of_rr": round(m.timecourse.es_fraction, 4)},
        "acquisition": {"snr_blood": None if args.no_noise else round(p.snr, 2),
                        "psf_sigma_px": round(p.psf_sigma_px, 3),
                        "stored_blood_value": round(p.stored_blood_value, 1)},
        "motion": {
            "midwall_circumferential_target_pct": round(100 * m.circumferential, 3),
            "myocardial_area_gain": round(m.area_gain, 4),
            "rotation_base_deg": round(m.rotation_base_deg, 3),
            "rotation_apex_deg": round(m.rotation_apex_deg, 3),
            "twist_deg": round(m.rotation_apex_deg - m.rotation_base_deg, 3),
            "translation_mm": np.round(m.translation, 3).tolist(),
            "hypokinetic": [{"segment": s, "residual_amplitude": round(f, 3)}
                            for s, f in m.hypokinetic],
        },
        "config": case.config.to_dict(),
        "dicom": uids,
    }


def run(args: argparse.Namespace) -> int:
    """Generate and write ``args.cases`` cases; print one line per case."""
    if args.cases < 1:
        print("cinestrain phantom: --cases must be >= 1", file=sys.stderr)
        return 2
    if not 0.0 <= args.hypokinetic_share <= 1.0:
        print("cinestrain phantom: --hypokinetic-share must be in [0, 1]", file=sys.stderr)
        return 2
    try:
        config = PhantomConfig(slices=args.slices, phases=args.phases, matrix=args.matrix,
                               ed_phase=args.ed_phase,
                               hypokinetic_share=args.hypokinetic_share)
    except ValueError as exc:
        print(f"cinestrain phantom: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for index in tqdm(range(args.cases), desc="cases", unit="case", file=sys.stderr):
        seed = case_seed(args.seed, index)
        with tqdm(total=1, desc=f"case {index:03d} slices", leave=False,
                  file=sys.stderr) as bar:
            def progress(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            case = generate_case(seed, config, snr=None if args.no_noise else "sample",
                                 progress=progress)
        summaries.append(write_case(case, index, args, args.out / f"case_{index:03d}"))
    for s in summaries:
        shape = "x".join(str(v) for v in s["shape"])
        print(f"{args.out / s['case']}: {shape} (SxTxHxW), peak circumferential "
              f"{s['peak_circumferential_pct']} %, radial {s['peak_radial_pct']} %, "
              f"hypokinetic segments {s['hypokinetic'] or 'none'}")
    (args.out / "phantom.json").write_text(json.dumps(
        {"seed": args.seed, "cases": summaries}, indent=1) + "\n")
    return 0
