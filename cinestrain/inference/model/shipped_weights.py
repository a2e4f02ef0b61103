"""Where the package's trained weights are, and whether a model file is there.

Kept apart from :mod:`inference.model.checkpoint` (which needs torch) so that ``serve``,
``config check`` and ``analyze`` can refuse a model without a weights file up front,
without loading torch into the node's long-running main process.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cinestrain.inference.model.temporal import Temporal


def shipped_weights_path(temporal: Temporal) -> Path:
    """The weights the package ships for a temporal variant (``inference/model/weights``)."""
    weights = resources.files("cinestrain.inference.model").joinpath("weights")
    return Path(str(weights.joinpath(f"{temporal}.pt")))


def missing_weights(temporal: Temporal, weights: Path | None) -> str | None:
    """Why no model file is there for ``temporal`` (``weights``: given, or ``None`` for the
    shipped one), or ``None`` when there is one: said before any work, not after it."""
    if weights is not None:
        return None if Path(weights).is_file() else f"model file not found: {weights}"
    if shipped_weights_path(temporal).is_file():
        return None
    return (f"no weights are shipped for the '{temporal}' model; train them (cinestrain "
            f"train --temporal {temporal} --out RUN) and give RUN/model.pt (--weights, or "
            "model.weights in the configuration)")
