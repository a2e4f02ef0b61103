"""The AHA 16-segment bull's-eye plot (matplotlib, no pyplot state).

Standard layout: basal ring outside, apical inside; anterior at the top, septum on the
left (segment 1 at 60-120 degrees, 2 at 120-180, ... counter-clockwise; apical 13 at the
top, 14 septal on the left).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colorbar import ColorbarBase
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Wedge

#: (segment numbers, inner radius, outer radius, start angle of the first, width) per ring
_RINGS = (
    (range(1, 7), 2.0, 3.0, 60.0, 60.0),
    (range(7, 13), 1.0, 2.0, 60.0, 60.0),
    (range(13, 17), 0.0, 1.0, 45.0, 90.0),
)


def bullseye_figure(
    values: dict[int, float | None],
    *,
    title: str = "peak circumferential strain (%)",
    vmin: float = -30.0,
    vmax: float = 0.0,
    cmap: str = "RdYlBu",
) -> Figure:
    """A bull's-eye of one value per AHA segment.

    Parameters
    ----------
    values : dict of int to float or None
        Segment (1-16) -> value; missing or None segments are grey with "n/a".
    title : str
    vmin, vmax : float
        Colour scale limits (percent).
    cmap : str
        Matplotlib colour map (the default shows strong contraction in red).

    Returns
    -------
    matplotlib.figure.Figure
    """
    norm = Normalize(vmin, vmax)
    colours = colormaps[cmap]
    fig = Figure(figsize=(5.0, 5.4), dpi=100)
    ax = fig.add_axes((0.05, 0.1, 0.9, 0.8))
    for segments, r_in, r_out, start, width in _RINGS:
        for i, seg in enumerate(segments):
            a0 = start + i * width
            value = values.get(seg)
            known = value is not None and np.isfinite(value)
            face = colours(norm(value)) if known else (0.8, 0.8, 0.8, 1.0)
            ax.add_patch(Wedge((0, 0), r_out, a0, a0 + width, width=r_out - r_in,
                               facecolor=face, edgecolor="black", linewidth=1.0))
            mid = np.radians(a0 + width / 2)
            r_text = (r_in + r_out) / 2 if r_in > 0 else 0.55
            text = f"{value:.1f}" if known else "n/a"
            ax.text(r_text * np.cos(mid), r_text * np.sin(mid), f"{seg}\n{text}",
                    ha="center", va="center", fontsize=8)
    ax.set_xlim(-3.2, 3.2)
    ax.set_ylim(-3.2, 3.2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    ax.text(0, 3.1, "anterior", ha="center", va="bottom", fontsize=8)
    ax.text(-3.1, 0, "septal", ha="right", va="center", fontsize=8, rotation=90)
    bar_ax = fig.add_axes((0.15, 0.06, 0.7, 0.03))
    ColorbarBase(bar_ax, cmap=colours, norm=norm, orientation="horizontal")
    return fig


def save_bullseye(values: dict[int, float | None], path: str | Path, **kwargs: object) -> Path:
    """Write :func:`bullseye_figure` as a PNG; returns the path."""
    path = Path(path)
    bullseye_figure(values, **kwargs).savefig(path, format="png")  # type: ignore[arg-type]
    return path
