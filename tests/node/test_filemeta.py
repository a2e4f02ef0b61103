"""The file header written before each received dataset: the same bytes as pynetdicom's."""

from __future__ import annotations

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    SegmentationStorage,
)
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from cinestrain.node.receive.filemeta import PREAMBLE, file_header


@pytest.mark.parametrize("sop_class", [MRImageStorage, SegmentationStorage])
@pytest.mark.parametrize(
    "transfer_syntax",
    [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
     JPEG2000Lossless],
)
@pytest.mark.parametrize(
    "sop_instance", ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498." + "9" * 37]
)
def test_header_equals_pynetdicoms_file_meta(sop_class, transfer_syntax, sop_instance):
    """Odd and even UID lengths (padding), up to 64 characters; several syntaxes."""
    meta = create_file_meta(
        sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=transfer_syntax
    )
    expected = PREAMBLE + encode_file_meta(meta)
    assert file_header(sop_class, sop_instance, transfer_syntax) == expected
