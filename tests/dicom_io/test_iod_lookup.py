"""The memo of highdicom's IOD lookups answers exactly as highdicom does."""

from __future__ import annotations

import pytest
from highdicom import _standard_utils, base
from pydicom.uid import MRImageStorage, ParametricMapStorage, SegmentationStorage

from cinestrain.dicom_io.write.iod_lookup import memoize_iod_lookups


@pytest.mark.parametrize("attribute, sop_class", [
    ("ContentDate", ParametricMapStorage), ("PixelData", MRImageStorage),
    ("FloatPixelData", SegmentationStorage), ("NoSuchKeyword", MRImageStorage),
    ("ReferencedSeriesSequence", ParametricMapStorage),
])
def test_memo_gives_highdicoms_answers(attribute, sop_class):
    cached = memoize_iod_lookups()
    assert cached is not None and memoize_iod_lookups() is cached  # installed once
    assert _standard_utils.is_attribute_in_iod is cached and base.is_attribute_in_iod is cached
    for exclude in (None, ["SharedFunctionalGroupsSequence"]):
        expected = cached.uncached(attribute, sop_class, exclude)
        assert cached(attribute, sop_class, exclude) == expected
        assert cached(attribute, sop_class, exclude) == expected  # from the cache
    assert cached.cache_info().hits >= 2
