"""Two DICOM objects compared element by element as they read back from their files: the
check that a speed layer (:mod:`cinestrain.speed`) gives what the library's plain path
gives.
"""

from __future__ import annotations

import io
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from tests.helpers.results import UNSTABLE_TAGS


def read_back(obj: Dataset | Path) -> Dataset:
    """``obj`` as it reads back from its file (a dataset is written to memory first)."""
    if isinstance(obj, Path):
        return dcmread(obj)
    buffer = io.BytesIO()
    obj.save_as(buffer, enforce_file_format=True)
    return dcmread(io.BytesIO(buffer.getvalue()))


def differences(first: Dataset | Path, second: Dataset | Path) -> list[str]:
    """Where two objects differ, read back from their files: preamble, file meta and data
    set, element by element into sequences; each value compared as encoded (the bytes,
    so pixel data too) and as pydicom reads it. The elements of
    :data:`tests.helpers.results.UNSTABLE_TAGS` (what highdicom takes from the clock or
    draws at random for each object) must be in both, with the same VR, in any value.
    """
    a, b = read_back(first), read_back(second)
    found = [] if a.preamble == b.preamble else ["preamble"]
    return found + _differences(a.file_meta, b.file_meta, "file meta: ") + _differences(
        a, b, "")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _differences(a: Dataset, b: Dataset, where: str) -> list[str]:
    found = []
    for tag in sorted(set(a.keys()) | set(b.keys())):
        if tag not in a or tag not in b:
            found.append(f"{where}{tag} only in the {'first' if tag in a else 'second'}")
            continue
        raw_a, raw_b = a.get_item(tag), b.get_item(tag)  # before conversion
        elem_a, elem_b = a[tag], b[tag]
        name = where + (elem_a.keyword or str(tag))
        if elem_a.VR != elem_b.VR:
            found.append(f"{name}: VR {elem_a.VR} != {elem_b.VR}")
        elif elem_a.VR == "SQ":
            if len(elem_a.value) != len(elem_b.value):
                found.append(f"{name}: {len(elem_a.value)} != {len(elem_b.value)} items")
            for i, (x, y) in enumerate(zip(elem_a.value, elem_b.value, strict=False)):
                found += _differences(x, y, f"{name}[{i}].")
        elif f"{int(tag):08X}" in UNSTABLE_TAGS:
            continue
        elif (isinstance(raw_a, RawDataElement) and isinstance(raw_b, RawDataElement)
              and raw_a.value != raw_b.value) or elem_a.value != elem_b.value:
            found.append(f"{name}: {_short(elem_a.value)} != {_short(elem_b.value)}")
    return found
