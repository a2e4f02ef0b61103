"""The file header written before each received dataset: the same bytes as pynetdicom's."""

from __future__ import annotations

import copy

import pytest
from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    SegmentationStorage,
)
from pynetdicom import AE
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.index import Index
from cinestrain.node.receive import handlers, scp
from cinestrain.node.receive.filemeta import PREAMBLE, file_header
from cinestrain.node.receive.handlers import StoreContext, handle_store
from cinestrain.node.receive.spool import Spool
from cinestrain.speed import FAST, PLAIN


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


@pytest.mark.parametrize("speed", [FAST, PLAIN], ids=["fast", "plain"])
def test_spooled_file_is_pynetdicoms_encoding_of_the_received_instance(
    speed, make_config, make_study, tmp_path, monkeypatch
):
    """Real instances received over one association, through the node's SCP: one SOP class
    in two presentation contexts (explicit and implicit VR little endian), SOP Instance
    UIDs of odd and even length. The spooled file is byte for byte pynetdicom's
    ``Event.encoded_dataset(include_meta=True)`` of the same event, whether the header
    comes from :mod:`node.receive.filemeta` (``FAST``) or from pynetdicom (``PLAIN``)."""
    cfg = make_config()
    source = dcmread(write_cine_classic(make_study(n_slices=1, n_phases=1, rows=16, columns=16),
                                        tmp_path / "cine")[0])
    cases = [  # (transfer syntax, SOP Instance UID): an odd and an even length in each
        (ExplicitVRLittleEndian, "1.2.826.0.1.3680043.8.498.1"),
        (ExplicitVRLittleEndian, "1.2.826.0.1.3680043.8.498.10"),
        (ImplicitVRLittleEndian, "1.2.826.0.1.3680043.8.498.12"),
        (ImplicitVRLittleEndian, "1.2.826.0.1.3680043.8.498.123"),
    ]
    sent = []
    for transfer_syntax, uid in cases:
        ds = copy.deepcopy(source)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.set_original_encoding(transfer_syntax.is_implicit_VR, True, None)
        sent.append(ds)

    pynetdicoms: dict[str, bytes] = {}
    headers = []

    def recording_store(event, ctx):
        pynetdicoms[str(event.request.AffectedSOPInstanceUID)] = event.encoded_dataset(
            include_meta=True)
        return handle_store(event, ctx)

    def counted_header(*args):
        headers.append(args)
        return file_header(*args)

    monkeypatch.setattr(scp, "handle_store", recording_store)
    monkeypatch.setattr(handlers, "file_header", counted_header)
    spool, index = Spool(tmp_path / "spool", 1), Index(tmp_path / "index.sqlite")
    server = scp.start_scp(cfg.node, StoreContext(spool, index, 60.0, speed=speed))
    try:
        ae = AE(ae_title="STORESCU")
        for transfer_syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            ae.add_requested_context(MRImageStorage, transfer_syntax)
        assoc = ae.associate("127.0.0.1", cfg.node.port, ae_title=cfg.node.ae_title)
        assert assoc.is_established
        try:
            assert sorted(str(c.transfer_syntax[0]) for c in assoc.accepted_contexts) == sorted(
                [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
            for ds in sent:
                assert assoc.send_c_store(ds).Status == 0x0000
        finally:
            assoc.release()
    finally:
        server.shutdown()
        index.close()
    assert len(headers) == (len(sent) if speed.file_header else 0)
    assert sorted(pynetdicoms) == sorted(str(ds.SOPInstanceUID) for ds in sent)
    for ds in sent:
        path = spool.path_for(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        written = path.read_bytes()
        assert written == pynetdicoms[str(ds.SOPInstanceUID)], ds.SOPInstanceUID
        assert dcmread(path).file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
