"""highdicom's IOD lookups memoized, only while cinestrain builds its objects.

highdicom asks "is attribute X in the IOD of SOP class Y?" (``is_attribute_in_iod``) by a
linear search of the standard's module tables, several times for every source image of
an object it builds (is it multi-frame, may its Content Date be copied, ...). The answer
depends only on the arguments and the tables highdicom ships, yet highdicom (0.28)
neither caches it nor offers a hook to. A lookup in the Parametric Map IOD (the one
with the most attributes to search) takes milliseconds, and they are about half the time
highdicom takes to build one of our maps, a larger share the more source images it has;
the SEG, SR and captures spend little there, but are built within the same block.

:func:`memoized_iod_lookups` therefore puts an ``lru_cache`` in front of that one pure
function for the duration of a ``with`` block: on entry the function is replaced in the
highdicom modules that hold it by name (:data:`HOLDERS`), on exit the original is put
back. That is private API, so it is scoped and forgiving: a module that does not hold
highdicom's function (a later highdicom renamed or moved it) is left alone, and the
objects are built at highdicom's own speed, the same objects. Blocks nest and may run in
several threads at once: the function is replaced when the first block is entered and
restored when the last one is left; meanwhile other threads get the memo's answers,
which are highdicom's. This is the ``memo_iod_lookups`` switch of :mod:`cinestrain.speed`.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

#: the function memoized
NAME = "is_attribute_in_iod"
#: the highdicom module that defines it, then those that import it by name
HOLDERS = ("highdicom._standard_utils", "highdicom.base", "highdicom.sr.content")

_lock = threading.Lock()
_depth = 0
#: (module, original function) of each module the memo was put into
_replaced: list[tuple[ModuleType, Callable[..., bool]]] = []
_memo: Callable[..., bool] | None = None


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _make_memo(original: Callable[..., bool]) -> Callable[..., bool]:
    """``original`` behind an ``lru_cache`` (its arguments made hashable)."""

    @functools.lru_cache(maxsize=4096)
    def lookup(attribute: str, sop_class_uid: str, exclude: tuple[str, ...] | None) -> bool:
        return original(attribute, sop_class_uid, exclude)

    def is_attribute_in_iod(attribute: str, sop_class_uid: str,
                            exclude_path_elements: Sequence[str] | None = None) -> bool:
        exclude = None if exclude_path_elements is None else tuple(exclude_path_elements)
        return lookup(attribute, str(sop_class_uid), exclude)

    is_attribute_in_iod.cache_info = lookup.cache_info  # type: ignore[attr-defined]
    is_attribute_in_iod.original = original  # type: ignore[attr-defined]
    return is_attribute_in_iod


def memo() -> Callable[..., bool] | None:
    """The memoized function (``.original``: highdicom's; ``.cache_info()``), or None if
    this highdicom has no such function."""
    global _memo
    if _memo is None:
        definer = _module(HOLDERS[0])
        original = getattr(definer, NAME, None) if definer is not None else None
        if original is None:
            return None
        _memo = _make_memo(getattr(original, "original", original))
    return _memo


def _install() -> None:
    cached = memo()
    if cached is None:
        return
    original = cached.original  # type: ignore[attr-defined]
    for name in HOLDERS:
        module = _module(name)
        if module is not None and getattr(module, NAME, None) is original:
            setattr(module, NAME, cached)
            _replaced.append((module, original))


def _restore() -> None:
    while _replaced:
        module, original = _replaced.pop()
        setattr(module, NAME, original)


@contextmanager
def memoized_iod_lookups(enabled: bool = True) -> Iterator[bool]:
    """highdicom's IOD lookups memoized within the block (``enabled=False``: untouched).

    Yields
    ------
    bool
        Whether highdicom's function is memoized in at least one module.
    """
    global _depth
    if not enabled:
        yield False
        return
    with _lock:
        if _depth == 0:
            _install()
        _depth += 1
        active = bool(_replaced)
    try:
        yield active
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore()
