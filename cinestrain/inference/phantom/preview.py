"""PNG previews of a phantom case (matplotlib, no display needed).

- ``montage.png``: ED and ES of a basal, a mid and an apical slice, whole field of view,
  with the truth myocardium contours (ES contours are the ED ones moved by the truth
  displacement);
- ``motion.png``: the same slices zoomed on the heart: ED with contours, insertion points
  and AHA segment borders; ES with the moved contours; the truth displacement at ES as a
  quiver plot over the ED image;
- ``strain.png``: true global and segmental strain curves.
"""

from __future__ import annotations

import logging
from pathlib import Path

import contourpy
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from cinestrain.inference.heart.aha import SEGMENT_NAMES  # noqa: E402
from cinestrain.inference.phantom.case import PhantomCase  # noqa: E402

log = logging.getLogger(__name__)

_ZOOM_MM = 65.0


def representative_slices(levels: tuple[str | None, ...]) -> list[tuple[str, int]]:
    """(level, slice index) of the middle slice of each level present."""
    out = []
    for level in ("basal", "mid", "apical"):
        idx = [i for i, lv in enumerate(levels) if lv == level]
        if idx:
            out.append((level, idx[len(idx) // 2]))
    return out


def _contours(mask: np.ndarray) -> list[np.ndarray]:
    """Contour lines ``[N, 2]`` (row, col) of a boolean mask at level 1/2."""
    gen = contourpy.contour_generator(z=mask.astype(float))
    return [line[:, ::-1] for line in gen.lines(0.5) if len(line) > 2]


def _moved(line: np.ndarray, u_px: np.ndarray) -> np.ndarray:
    """Contour points moved by the displacement ``u_px`` ``[2, H, W]`` (pixels)."""
    d = np.stack([ndimage.map_coordinates(u_px[i], line.T, order=1) for i in range(2)], axis=1)
    return line + d


def _show(ax: plt.Axes, image: np.ndarray, vmax: float, title: str) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def _zoom(ax: plt.Axes, centre: np.ndarray, spacing: tuple[float, float]) -> None:
    ax.set_xlim(centre[1] - _ZOOM_MM / spacing[1], centre[1] + _ZOOM_MM / spacing[1])
    ax.set_ylim(centre[0] + _ZOOM_MM / spacing[0], centre[0] - _ZOOM_MM / spacing[0])


def save_previews(case: PhantomCase, out_dir: str | Path) -> list[Path]:
    """Write the PNG previews of ``case`` into ``out_dir``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = case.truth
    spacing = case.params.geometry.spacing
    vmax = float(np.percentile(case.pixels, 99.5))
    picks = representative_slices(truth.levels)
    u_px = truth.displacement / np.array(spacing)[None, None, :, None, None]
    paths = [
        _montage(case, picks, u_px, vmax, out_dir / "montage.png"),
        _motion(case, picks, u_px, vmax, out_dir / "motion.png"),
        _strain(case, out_dir / "strain.png"),
    ]
    log.info("wrote previews of case %d to %s", case.seed, out_dir)
    return paths


def _montage(case: PhantomCase, picks: list[tuple[str, int]], u_px: np.ndarray, vmax: float,
             path: Path) -> Path:
    truth = case.truth
    ed, es = truth.ed_phase, truth.es_phase
    fig, axes = plt.subplots(len(picks), 2, figsize=(7, 3.4 * len(picks)), squeeze=False)
    for row, (level, s) in enumerate(picks):
        lines = _contours(truth.myocardium[s])
        for col, (phase, name) in enumerate(((ed, "ED"), (es, "ES"))):
            ax = axes[row, col]
            _show(ax, case.pixels[s, phase], vmax,
                  f"{level} slice {s}, {name} (phase {phase}, "
                  f"{truth.trigger_times[s, phase]:.0f} ms)")
            for line in lines:
                pts = line if phase == ed else _moved(line, u_px[s, phase])
                ax.plot(pts[:, 1], pts[:, 0], color="tab:red", lw=0.7)
    fig.suptitle(f"phantom case {case.seed}: S x T x H x W = {case.shape}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _motion(case: PhantomCase, picks: list[tuple[str, int]], u_px: np.ndarray, vmax: float,
            path: Path) -> Path:
    truth = case.truth
    spacing = case.params.geometry.spacing
    ed, es = truth.ed_phase, truth.es_phase
    fig, axes = plt.subplots(len(picks), 3, figsize=(10, 3.4 * len(picks)), squeeze=False)
    h, w = case.pixels.shape[2:]
    for row, (level, s) in enumerate(picks):
        centre = truth.lv_centres[s]
        lines = _contours(truth.myocardium[s])
        ax_ed, ax_es, ax_q = axes[row]
        _show(ax_ed, case.pixels[s, ed], vmax, f"{level} slice {s}: ED, AHA segments")
        labels = truth.aha_labels[s].astype(float)
        labels[labels == 0] = np.nan
        ax_ed.imshow(labels, cmap="tab20", alpha=0.25, vmin=1, vmax=20, interpolation="nearest")
        for seg in np.unique(truth.aha_labels[s]):
            if seg:
                rr, cc = np.nonzero(truth.aha_labels[s] == seg)
                ax_ed.text(cc.mean(), rr.mean(), str(seg), fontsize=7, color="yellow",
                           ha="center", va="center")
        ant, inf = truth.insertion_points[s]
        ax_ed.plot([ant[1]], [ant[0]], "o", color="cyan", ms=4, label="anterior IP")
        ax_ed.plot([inf[1]], [inf[0]], "s", color="magenta", ms=4, label="inferior IP")
        ax_ed.plot([centre[1]], [centre[0]], "+", color="yellow", ms=6)
        ax_ed.legend(loc="lower right", fontsize=6)
        _show(ax_es, case.pixels[s, es], vmax, f"ES (phase {es}), contours moved by u")
        _show(ax_q, case.pixels[s, ed], vmax, "truth u at ES (arrows X -> X + u)")
        for line in lines:
            ax_ed.plot(line[:, 1], line[:, 0], color="tab:red", lw=0.7)
            moved = _moved(line, u_px[s, es])
            ax_es.plot(moved[:, 1], moved[:, 0], color="tab:red", lw=0.7)
        step = max(1, int(round(4.0 / spacing[0])))
        rr, cc = np.mgrid[0:h:step, 0:w:step]
        ur, uc = u_px[s, es, 0][rr, cc], u_px[s, es, 1][rr, cc]
        moving = np.hypot(ur, uc) > 0.05
        colour = np.where(truth.myocardium[s][rr, cc], 1.0, 0.0)[moving]
        ax_q.quiver(cc[moving], rr[moving], uc[moving], ur[moving], colour, cmap="autumn",
                    angles="xy", scale_units="xy", scale=1.0, width=0.004)
        for ax in (ax_ed, ax_es, ax_q):
            _zoom(ax, centre, spacing)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _strain(case: PhantomCase, path: Path) -> Path:
    strain = case.truth.strain
    times = strain.trigger_times_ms
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    hypo = set(case.truth.hypokinetic_segments)
    for ax, key, name in ((axes[0], "circumferential_pct", "circumferential"),
                          (axes[1], "radial_pct", "radial")):
        for seg, curves in sorted(strain.segments.items()):
            style = {"color": "tab:red", "lw": 1.5} if seg in hypo else {"color": "0.6", "lw": 0.6}
            label = f"{seg} {SEGMENT_NAMES[seg]} (hypokinetic)" if seg in hypo else None
            ax.plot(times, getattr(curves, key), label=label, **style)
        if strain.global_curves is not None:
            ax.plot(times, getattr(strain.global_curves, key), color="k", lw=2, label="global")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("trigger time (ms)")
        ax.set_ylabel(f"{name} strain (%)")
        ax.legend(fontsize=7)
    fig.suptitle("truth strain (engineering), segments grey", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
