"""The rooms of the package and who may import whom (README, "Layout").

Each check runs in a fresh interpreter, so what one module imports is not hidden by what
the test session imported before.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: module -> package prefixes it must not load, and why
RULES = {
    # the training command trains the model: nothing of the DICOM service
    "cinestrain.cli.train": ("cinestrain.node", "cinestrain.pipeline"),
    # the writer takes plain arrays and the report document
    "cinestrain.dicom_io.write.results": ("cinestrain.inference", "cinestrain.node", "torch"),
    "cinestrain.dicom_io.read.cine": ("cinestrain.inference", "cinestrain.node", "torch"),
    # the heart analysis is numpy and scipy: no model, no torch, no DICOM
    "cinestrain.inference.heart.analysis": ("cinestrain.inference.model.network", "torch",
                                            "cinestrain.dicom_io", "pydicom"),
    "cinestrain.inference.heart.ed_phase": ("torch", "cinestrain.dicom_io", "pydicom"),
    # the network knows nothing of the heart analysis but where the heart is
    "cinestrain.inference.model.estimate": ("cinestrain.inference.heart.analysis",
                                            "cinestrain.inference.heart.myocardium",
                                            "cinestrain.dicom_io", "pydicom"),
    # the configuration, the job contract and the node's own commands stay light
    "cinestrain.config": ("torch", "cinestrain.node", "cinestrain.dicom_io"),
    "cinestrain.pipeline.job": ("torch", "cinestrain.dicom_io"),
    "cinestrain.node.service": ("torch", "cinestrain.pipeline.run"),
}


def loaded_by(module: str) -> list[str]:
    """Every module a fresh interpreter has after importing ``module``."""
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT, timeout=120)
    return json.loads(out.stdout)


@pytest.mark.parametrize("module", sorted(RULES))
def test_rooms_import_only_what_they_may(module: str) -> None:
    loaded = loaded_by(module)
    forbidden = [m for m in loaded
                 if any(m == p or m.startswith(p + ".") for p in RULES[module])]
    assert forbidden == [], f"{module} loads {forbidden}"


def test_installed_as_one_namespace() -> None:
    """``cinestrain.*`` imports; no top-level ``node``, ``config``, ``inference`` or
    ``dicom_io`` is installed (they would collide with anything else of that name)."""
    code = ("import importlib.util, json; import cinestrain.node, cinestrain.inference; "
            "print(json.dumps({n: importlib.util.find_spec(n) is not None "
            "for n in ('node', 'config', 'inference', 'dicom_io')}))")
    # run outside the repository, so that its folders are not on the path
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd="/", timeout=120)
    assert json.loads(out.stdout) == {"node": False, "config": False, "inference": False,
                                      "dicom_io": False}
    top = (metadata.distribution("cinestrain").read_text("top_level.txt") or "").split()
    assert top in ([], ["cinestrain"])
