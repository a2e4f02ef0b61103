"""The Sunnybrook Cardiac Data contour format, for benchmarks (not part of the product).

An archive ``SCDxxxxxxx.tar.gz`` (``../shared/data/sunnybrook/README.md``) holds
``dicoms/SCDxxxxxxx/N.dcm`` (one file per image: slice ``(N-1) // T``, phase ``(N-1) % T``
in acquisition order) and ``contourfiles/SC-HF-I-x/{i,o}-contours/IM-0001-NNNN-
{i,o}contour-manual.txt``: one ``x y`` point per line, pixel coordinates of image
``NNNN.dcm`` (x = column, y = row; 1-based, see :data:`CONTOUR_ORIGIN`), endocardium at ED
and ES, epicardium at ED only.

:func:`load_study` reads the cine with the product's reader and places every contour on
the reader's (slice, phase) grid through the file each image came from, so nothing here
assumes the reader's slice order.
"""

from __future__ import annotations

import re
import tarfile
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.path import Path as PolygonPath

from cinestrain.dicom_io import CineSeries, find_stacks, load_stack, scan_dicom

#: where the shared archives live, relative to the repository root
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "sunnybrook"
STUDIES = ("SCD0000101", "SCD0000201")

_CONTOUR = re.compile(r"IM-\d+-(\d+)-([io])contour-manual\.txt$")


#: where the contour files put the centre of the first pixel. Not documented; the contours
#: lie on the image edges best when read 1-based (MATLAB-style): the mean gradient
#: magnitude along all 54 contours of both studies peaks at a shift of (-1, -1) to
#: (-1, -1.5) pixels from the 0-based reading, 9-14 % above its value unshifted.
CONTOUR_ORIGIN = 1.0


def read_contour(path: Path) -> np.ndarray:
    """``[N, 2]`` 0-based (row, col) pixel vertices of one contour file (``x y`` lines,
    1-based, see :data:`CONTOUR_ORIGIN`)."""
    xy = np.loadtxt(path, dtype=float, ndmin=2)
    if xy.shape[1] != 2 or len(xy) < 3:
        raise ValueError(f"{path}: expected at least 3 'x y' lines, got shape {xy.shape}")
    return xy[:, ::-1] - CONTOUR_ORIGIN


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` bool: pixels whose centre lies inside the (row, col) polygon."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    centres = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(float)
    inside = PolygonPath(points[:, ::-1]).contains_points(centres)
    return inside.reshape(shape)


def polygon_area_mm2(points: np.ndarray, spacing: tuple[float, float]) -> float:
    """Shoelace area of a closed (row, col) pixel polygon, mm^2."""
    y, x = points[:, 0] * spacing[0], points[:, 1] * spacing[1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


@dataclass
class SunnybrookStudy:
    """One study: the cine as the product reads it and the manual contours on its grid.

    Attributes
    ----------
    name : str
        ``SCDxxxxxxx``.
    folder : pathlib.Path
        The DICOM folder (what ``analyze`` is given).
    cine : CineSeries
    ed_phase, es_phase : int
        The phases the manual endocardial contours outline (reader's phase index).
    slices : list of int
        Reader slices with ED endo-, ED epi- and ES endocardial contours.
    ed_endo, ed_epi, es_endo : dict of int to numpy.ndarray
        Per slice in ``slices``: ``[N, 2]`` (row, col) pixel contour.
    """

    name: str
    folder: Path
    cine: CineSeries
    ed_phase: int
    es_phase: int
    slices: list[int]
    ed_endo: dict[int, np.ndarray]
    ed_epi: dict[int, np.ndarray]
    es_endo: dict[int, np.ndarray]

    @property
    def spacing(self) -> tuple[float, float]:
        """(row, col) pixel spacing, mm."""
        return tuple(float(v) for v in self.cine.in_plane_spacing)  # type: ignore[return-value]

    def masks(self, contours: dict[int, np.ndarray]) -> np.ndarray:
        """``[S, H, W]`` bool: the inside of the contours (other slices empty)."""
        s, _, h, w = self.cine.shape
        out = np.zeros((s, h, w), bool)
        for k, points in contours.items():
            out[k] = polygon_mask(points, (h, w))
        return out

    def ed_myocardium(self) -> np.ndarray:
        """``[S, H, W]`` bool: between the ED epi- and endocardial contours."""
        return self.masks(self.ed_epi) & ~self.masks(self.ed_endo)

    def volumes_ml(self, contours: dict[int, np.ndarray]) -> float:
        """Sum of the contours' areas over ``slices`` times the slice spacing, ml."""
        gap = float(np.median(np.diff(self.cine.slice_positions)))
        return sum(polygon_area_mm2(contours[k], self.spacing) for k in self.slices) * gap / 1e3

    def manual_ef_pct(self) -> float:
        """EF from the manual ED and ES endocardial contours (same slices), percent."""
        edv, esv = self.volumes_ml(self.ed_endo), self.volumes_ml(self.es_endo)
        return 100.0 * (edv - esv) / edv

    def crop(self, half: int = 45) -> tuple[slice, slice]:
        """Rows and columns of a square around the manual ED epicardia (pictures)."""
        centre = np.mean([c.mean(axis=0) for c in self.ed_epi.values()], axis=0)
        r, c = centre.round().astype(int)
        return slice(r - half, r + half), slice(c - half, c + half)


def outline_montage(study: SunnybrookStudy, phase: int,
                    outlines: list[tuple[np.ndarray, str]], title: str, path: Path) -> None:
    """Every slice at ``phase``, cropped around the LV, with each ``[S, H, W]`` mask of
    ``outlines`` drawn as a contour in its colour; saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = study.crop()
    n_s = study.cine.n_slices
    fig, axes = plt.subplots(2, (n_s + 1) // 2, figsize=(2.2 * ((n_s + 1) // 2), 4.8))
    for s, ax in zip(range(n_s), axes.ravel(), strict=False):
        ax.imshow(study.cine.pixels[s, phase, rows, cols], cmap="gray")
        for mask, colour in outlines:
            if mask[s].any():
                ax.contour(mask[s, rows, cols], levels=[0.5], colors=colour, linewidths=0.7)
        ax.set_title(f"slice {s}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=8)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def extract(name: str, into: Path, shared: Path = SHARED) -> Path:
    """Unpack ``shared/name.tar.gz`` into ``into`` (once); returns the archive's root."""
    root = into / name
    if not (root / "dicoms" / name).is_dir():
        root.mkdir(parents=True, exist_ok=True)
        with tarfile.open(shared / f"{name}.tar.gz") as tar:
            tar.extractall(root, filter="data")
    return root


def load_study(root: Path, name: str) -> SunnybrookStudy:
    """Read an unpacked study (see :func:`extract`) and its manual contours."""
    folder = root / "dicoms" / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the leading-zero UIDs: known, harmless here
        cine = load_stack(find_stacks(scan_dicom([folder])).select(None))
    where = {int(Path(f.path).stem): (s, t)
             for s, row in enumerate(cine.sources) for t, f in enumerate(row)}
    [contour_dir] = list((root / "contourfiles").iterdir())
    found: dict[str, dict[tuple[int, int], np.ndarray]] = {"i": {}, "o": {}}
    for path in sorted(contour_dir.glob("?-contours/*.txt")):
        match = _CONTOUR.search(path.name)
        if match is None:
            continue
        found[match.group(2)][where[int(match.group(1))]] = read_contour(path)
    ed_phase = Counter(t for _, t in found["o"]).most_common(1)[0][0]
    es_phase = Counter(t for _, t in found["i"] if t != ed_phase).most_common(1)[0][0]
    ed_endo = {s: c for (s, t), c in found["i"].items() if t == ed_phase}
    es_endo = {s: c for (s, t), c in found["i"].items() if t == es_phase}
    ed_epi = {s: c for (s, t), c in found["o"].items() if t == ed_phase}
    slices = sorted(set(ed_endo) & set(es_endo) & set(ed_epi))
    return SunnybrookStudy(name, folder, cine, ed_phase, es_phase, slices,
                           {k: ed_endo[k] for k in slices}, {k: ed_epi[k] for k in slices},
                           {k: es_endo[k] for k in slices})
