"""The DICOM file header of a received instance: preamble, ``DICM`` and File Meta Information.

A C-STORE carries only the dataset; the spool file puts this header in front of it
(DICOM PS3.10 section 7.1). The elements are those of pynetdicom's ``Event.file_meta``
and the bytes those ``Event.encoded_dataset(include_meta=True)`` writes
(``tests/node/test_filemeta.py`` compares them on instances received over an
association). pynetdicom builds and validates a new ``FileMetaDataset`` for every
instance, which costs about as much as parsing the dataset; yet all but one of its
elements are the same for every instance of one SOP class in one transfer syntax. So
those are encoded once (:func:`fixed_elements`), and per instance only the Media Storage
SOP Instance UID and the group length. This is the ``file_header`` switch of
:mod:`cinestrain.speed`; with it off, the handler writes pynetdicom's encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pynetdicom import PYNETDICOM_IMPLEMENTATION_UID, PYNETDICOM_IMPLEMENTATION_VERSION

#: the 128-byte preamble and the ``DICM`` prefix of every DICOM file
PREAMBLE = b"\x00" * 128 + b"DICM"
#: (0002,0000) File Meta Information Group Length
GROUP_LENGTH = 0x00020000
#: (0002,0003) Media Storage SOP Instance UID
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003


def encode_elements(elements: Iterable[DataElement]) -> bytes:
    """Elements encoded in order as File Meta Information is: explicit VR little endian."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    for element in elements:
        write_data_element(fp, element)
    return fp.getvalue()


@lru_cache(maxsize=64)
def fixed_elements(sop_class_uid: str, transfer_syntax: str) -> tuple[bytes, bytes]:
    """The encoded meta elements before and after (0002,0003), which every instance of
    ``sop_class_uid`` received in ``transfer_syntax`` shares (the group length excluded)."""
    before = encode_elements([
        DataElement(0x00020001, "OB", b"\x00\x01"),  # File Meta Information Version
        DataElement(0x00020002, "UI", sop_class_uid),  # Media Storage SOP Class UID
    ])
    after = encode_elements([
        DataElement(0x00020010, "UI", transfer_syntax),
        DataElement(0x00020012, "UI", PYNETDICOM_IMPLEMENTATION_UID),
        DataElement(0x00020013, "SH", PYNETDICOM_IMPLEMENTATION_VERSION),
    ])
    return before, after


def file_header(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> bytes:
    """Preamble, prefix and File Meta Information of one instance, to write before its
    dataset as received.

    Parameters
    ----------
    sop_class_uid, transfer_syntax
        The presentation context's abstract and transfer syntaxes.
    sop_instance_uid
        The instance's UID, already checked (it is encoded without validation).
    """
    before, after = fixed_elements(sop_class_uid, transfer_syntax)
    instance = encode_elements([
        DataElement(MEDIA_STORAGE_SOP_INSTANCE_UID, "UI", sop_instance_uid,
                    validation_mode=config.IGNORE),
    ])
    group = b"".join((before, instance, after))
    length = encode_elements([
        DataElement(GROUP_LENGTH, "UL", len(group), validation_mode=config.IGNORE),
    ])
    return b"".join((PREAMBLE, length, group))
