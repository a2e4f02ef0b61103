"""Model files: architecture, weights and provenance in one file.

A checkpoint rebuilds its model unaided (like VoxelMorph's ``LoadableModel``): it holds
the :class:`MotionConfig`, the state dict and a provenance record (command, seed, data,
steps, wall time, benchmark figures). Files are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from cinestrain.inference.model.network import (
    MotionConfig,
    MotionModel,
    architecture_of,
)

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A model file is missing, unreadable or not a cinestrain checkpoint."""


def save_checkpoint(
    path: str | os.PathLike[str],
    model: MotionModel,
    provenance: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> None:
    """Write model (and optional training state in ``extra``) atomically to ``path``."""
    path = Path(path)
    payload = {
        "format": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "provenance": json.dumps(provenance),
        **(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dictionary, validated."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"model file not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        raise CheckpointError(f"cannot read model file {path}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a cinestrain model file (format {FORMAT_VERSION})")
    return payload


def load_model(path: str | os.PathLike[str]) -> tuple[MotionModel, dict[str, Any]]:
    """Rebuild the model stored in ``path``, in eval mode, with its provenance.

    The file gives the architecture and the weights only; how they are applied (pairing,
    passes, re-centring) is the run's :class:`~inference.model.settings.MotionSettings`.
    """
    payload = read_checkpoint(path)
    model = MotionModel(MotionConfig(**architecture_of(payload["config"])))
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, json.loads(payload["provenance"])
