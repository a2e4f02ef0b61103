"""highdicom's IOD lookups, memoized only within :func:`memoized_iod_lookups`: the memo
answers exactly as highdicom does, and highdicom is left as it was after the block."""

from __future__ import annotations

import importlib
import threading

import pytest
from highdicom import _standard_utils
from pydicom.uid import MRImageStorage, ParametricMapStorage, SegmentationStorage

from cinestrain.dicom_io.write.iod_lookup import HOLDERS, NAME, memo, memoized_iod_lookups

ORIGINAL = _standard_utils.is_attribute_in_iod


def holders() -> dict[str, object]:
    """What each highdicom module that holds the function holds now."""
    return {name: getattr(importlib.import_module(name), NAME) for name in HOLDERS}


def test_highdicom_holds_its_own_function_outside_the_block() -> None:
    """Importing the writers patches nothing (the memo is scoped, never global)."""
    import cinestrain.dicom_io.write.results  # noqa: F401

    assert set(map(id, holders().values())) == {id(ORIGINAL)}


@pytest.mark.parametrize("attribute, sop_class", [
    ("ContentDate", ParametricMapStorage), ("PixelData", MRImageStorage),
    ("FloatPixelData", SegmentationStorage), ("NoSuchKeyword", MRImageStorage),
    ("ReferencedSeriesSequence", ParametricMapStorage), ("NumberOfFrames", MRImageStorage),
])
def test_memo_gives_highdicoms_answers(attribute: str, sop_class: str) -> None:
    with memoized_iod_lookups() as active:
        assert active
        cached = memo()
        assert cached is not None and cached.original is ORIGINAL
        assert all(held is cached for held in holders().values())
        for exclude in (None, ["SharedFunctionalGroupsSequence"], ("IconImageSequence",)):
            expected = ORIGINAL(attribute, sop_class, exclude)
            assert cached(attribute, sop_class, exclude) == expected
            assert cached(attribute, sop_class, exclude_path_elements=exclude) == expected
    assert cached.cache_info().hits >= 3
    assert all(held is ORIGINAL for held in holders().values())


def test_unknown_sop_class_raises_as_highdicom_does() -> None:
    with memoized_iod_lookups(), pytest.raises(KeyError, match="No IOD found"):
        _standard_utils.is_attribute_in_iod("PixelData", "1.2.3.4")
    assert _standard_utils.is_attribute_in_iod is ORIGINAL


def test_blocks_nest_and_overlap_across_threads() -> None:
    """Restored only when the last block is left, whichever thread leaves it."""
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with memoized_iod_lookups():
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=other)
    with memoized_iod_lookups():
        with memoized_iod_lookups():
            thread.start()
            assert entered.wait(10)
        assert _standard_utils.is_attribute_in_iod is memo()
    assert _standard_utils.is_attribute_in_iod is memo()  # the other thread's block is open
    leave.set()
    thread.join(10)
    assert _standard_utils.is_attribute_in_iod is ORIGINAL


def test_switched_off_or_absent_leaves_highdicom_alone(monkeypatch) -> None:
    with memoized_iod_lookups(enabled=False) as active:
        assert not active and _standard_utils.is_attribute_in_iod is ORIGINAL
    # a highdicom module that no longer holds the function (renamed, moved) is skipped
    monkeypatch.delattr(importlib.import_module(HOLDERS[1]), NAME)
    with memoized_iod_lookups() as active:
        assert active and not hasattr(importlib.import_module(HOLDERS[1]), NAME)
    assert _standard_utils.is_attribute_in_iod is ORIGINAL
    # a highdicom without the function: nothing to memoize, the block still runs
    for name in HOLDERS[::2]:
        monkeypatch.delattr(importlib.import_module(name), NAME)
    with memoized_iod_lookups() as active:
        assert not active
