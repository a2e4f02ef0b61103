"""A memo of highdicom's IOD lookups (the answers come from the standard and never change).

highdicom asks "is attribute X in the IOD of SOP class Y?" by a linear search of the
standard's module tables, dozens of times for each object it builds (about 2 ms each
here): the 125 Parametric Maps of a 10 x 25 stack spent about 60 % of their build time
there. :func:`memoize_iod_lookups` puts a cache in front of that one pure function.
It patches highdicom's private ``_standard_utils`` (and ``base``, which imported the
function by name); if a later highdicom renames it, nothing is patched and everything
still works, only slower.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from highdicom import _standard_utils, base


def memoize_iod_lookups() -> Callable[..., bool] | None:
    """Install the cache (once); return the cached function, or None if not installed."""
    original = getattr(_standard_utils, "is_attribute_in_iod", None)
    if original is None:
        return None
    if hasattr(original, "cache_info"):
        return original

    @functools.lru_cache(maxsize=8192)
    def lookup(attribute: str, sop_class_uid: str, exclude: tuple[str, ...] | None) -> bool:
        return original(attribute, sop_class_uid, exclude)

    def is_attribute_in_iod(
        attribute: str, sop_class_uid: str, exclude_path_elements: Sequence[str] | None = None
    ) -> bool:
        exclude = None if exclude_path_elements is None else tuple(exclude_path_elements)
        return lookup(attribute, str(sop_class_uid), exclude)

    is_attribute_in_iod.cache_info = lookup.cache_info  # type: ignore[attr-defined]
    is_attribute_in_iod.uncached = original  # type: ignore[attr-defined]
    for module in (_standard_utils, base):
        if getattr(module, "is_attribute_in_iod", None) is original:
            module.is_attribute_in_iod = is_attribute_in_iod
    return is_attribute_in_iod
