"""The Storage SCP against DCMTK's echoscu/storescu over loopback: policy, statuses, spool."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, MRImageStorage

from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.receive.handlers import set_dul_run_loop_delay
from cinestrain.node.states import PARTIAL_SUFFIX
from tests.node.conftest import Receiver, run_tool, storescu

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")


@pytest.fixture
def cine_files(make_study, tmp_path) -> list[Path]:
    return write_cine_classic(
        make_study(n_slices=2, n_phases=8, rows=32, columns=32),
        tmp_path / "cine", per_slice_series=True, file_names="random", seed=3,
    )


def test_echo(receiver):
    result = run_tool("echoscu", "-aet", "ECHOSCU", "-aec", "CINESTRAIN",
                      "127.0.0.1", str(receiver.cfg.node.port))
    assert result.returncode == 0, result.stderr


def test_store_spools_and_indexes_every_instance(receiver, cine_files):
    result = storescu(receiver.cfg, *cine_files)
    assert result.returncode == 0, result.stderr
    spooled = receiver.spooled()
    assert len(spooled) == len(cine_files) == 16
    for source in cine_files:
        ds = dcmread(source, stop_before_pixels=True)
        row = receiver.index.instance(ds.SOPInstanceUID)
        assert row is not None and row.calling_ae == "STORESCU"
        assert row.series_uid == ds.SeriesInstanceUID
        stored = dcmread(row.path)
        assert stored.PixelData == dcmread(source).PixelData
    assert not list(receiver.spool.root.rglob(f"*{PARTIAL_SUFFIX}"))


def test_duplicates_are_harmless(receiver, cine_files):
    assert storescu(receiver.cfg, *cine_files[:4]).returncode == 0
    assert storescu(receiver.cfg, *cine_files[:4]).returncode == 0
    assert len(receiver.spooled()) == 4
    uid = dcmread(cine_files[0], stop_before_pixels=True).SOPInstanceUID
    assert receiver.index.instance(uid).copies == 2


def test_compressed_transfer_syntax_is_stored_as_sent(receiver, make_study, tmp_path):
    files = write_cine_classic(make_study(n_slices=1, n_phases=8), tmp_path / "rle",
                               transfer_syntax=RLELossless)
    result = storescu(receiver.cfg, *files, extra=("-xr",))
    assert result.returncode == 0, result.stderr
    row = receiver.index.instance(dcmread(files[0]).SOPInstanceUID)
    assert row.transfer_syntax == RLELossless
    assert dcmread(row.path).file_meta.TransferSyntaxUID == RLELossless


def test_deflated_dataset_is_parsed_and_stored_as_sent(receiver, cine_files):
    result = storescu(receiver.cfg, cine_files[0], extra=("-xd",))
    assert result.returncode == 0, result.stderr
    source = dcmread(cine_files[0])
    row = receiver.index.instance(source.SOPInstanceUID)
    assert row.transfer_syntax == DeflatedExplicitVRLittleEndian
    stored = dcmread(row.path)
    assert stored.file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    assert stored.PixelData == source.PixelData


def _associate(cfg, calling: str = "STORESCU", called: str = "CINESTRAIN",
               contexts=(MRImageStorage,)):
    """An association request to the node proposing ``contexts`` (established or not)."""
    ae = AE(ae_title=calling)
    for context in contexts:
        ae.add_requested_context(context)
    return ae.associate("127.0.0.1", cfg.node.port, ae_title=called)


def _association_result(cfg, calling: str, called: str):
    assoc = _associate(cfg, calling, called)
    try:
        return assoc.is_established, assoc.acceptor.primitive
    finally:
        if assoc.is_established:
            assoc.release()


def test_unknown_calling_ae_is_rejected_with_reason(receiver, cine_files):
    established, rj = _association_result(receiver.cfg, "INTRUDER", "CINESTRAIN")
    assert not established
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x03)
    result = storescu(receiver.cfg, cine_files[0], calling="INTRUDER")
    assert result.returncode != 0
    assert "Calling AE Title Not Recognized" in result.stderr + result.stdout
    assert receiver.spooled() == []


def test_wrong_called_ae_is_rejected_with_reason(receiver, cine_files):
    established, rj = _association_result(receiver.cfg, "STORESCU", "NOTUS")
    assert not established
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x01, 0x01, 0x07)


def test_host_binding(make_config):
    cfg = make_config(node={"allowed_callers": [
        {"ae_title": "STORESCU", "hosts": ["10.1.2.0/24"]},
        {"ae_title": "LOCAL", "hosts": ["127.0.0.1"]},
    ]})
    node = Receiver(cfg)
    try:
        established, rj = _association_result(cfg, "STORESCU", "CINESTRAIN")
        assert not established and rj.diagnostic == 0x03
        established, _ = _association_result(cfg, "LOCAL", "CINESTRAIN")
        assert established
    finally:
        node.stop()


def test_unsupported_sop_class_is_refused(receiver):
    assoc = _associate(receiver.cfg, contexts=(CTImageStorage, MRImageStorage))
    try:
        assert assoc.is_established
        accepted = {cx.abstract_syntax for cx in assoc.accepted_contexts}
        assert CTImageStorage not in accepted and MRImageStorage in accepted
        assert CTImageStorage in {cx.abstract_syntax for cx in assoc.rejected_contexts}
    finally:
        assoc.release()


def _send_raw(cfg, path: Path) -> int:
    """C-STORE the bytes of ``path`` as they are (chunked send: no decode, no re-encode)."""
    assoc = _associate(cfg)
    try:
        status = assoc.send_c_store(path)
        return int(status.Status)
    finally:
        assoc.release()


def test_corrupt_dataset_is_cannot_understand(receiver, cine_files, tmp_path, monkeypatch):
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    data = cine_files[0].read_bytes()
    ds = dcmread(cine_files[0], stop_before_pixels=True)
    meta_end = 132 + 12 + int.from_bytes(data[140:144], "little")
    corrupt = tmp_path / "corrupt.dcm"
    # keep the meta and the first elements, then a bogus length that runs off the end
    corrupt.write_bytes(data[: meta_end + 200] + b"\x10\x00\x10\x00PN\xff\x7fgarbage")
    assert _send_raw(receiver.cfg, corrupt) == 0xC210
    assert receiver.index.instance(ds.SOPInstanceUID) is None
    assert receiver.spooled() == []
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(data[:-100])  # pixel data cut short
    assert _send_raw(receiver.cfg, truncated) == 0xC210
    assert receiver.spooled() == []


def test_low_disk_is_out_of_resources(make_config, cine_files):
    cfg = make_config(storage={"min_free_mb": 1 << 40})
    node = Receiver(cfg)
    try:
        assert _send_raw(cfg, cine_files[0]) == 0xA700
        result = storescu(cfg, cine_files[0])
        assert "Out of Resources" in result.stdout + result.stderr or result.returncode != 0
        assert node.spooled() == []
        assert not list(node.spool.root.rglob(f"*{PARTIAL_SUFFIX}"))
    finally:
        node.stop()


def test_associations_above_the_limit_are_rejected_transiently(make_config):
    cfg = make_config(node={"max_associations": 1})
    node = Receiver(cfg)
    try:
        first = _associate(cfg)
        assert first.is_established
        try:
            established, rj = _association_result(cfg, "STORESCU", "CINESTRAIN")
            assert not established
            # rejected-transient, service provider (presentation), local limit exceeded
            assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)
        finally:
            first.release()
    finally:
        node.stop()


def test_poll_interval_is_applied_to_each_association(make_config):
    cfg = make_config(node={"poll_interval_ms": 0.5})
    node = Receiver(cfg)
    try:
        assoc = _associate(cfg)
        assert assoc.is_established
        try:
            [ours] = node.server.active_associations
            assert ours.dul._run_loop_delay == pytest.approx(0.0005)
        finally:
            assoc.release()
    finally:
        node.stop()


def test_poll_delay_is_left_alone_where_pynetdicom_has_no_such_attribute():
    """The private attribute is written in one place, and only where it exists."""
    reader = types.SimpleNamespace()
    assert not set_dul_run_loop_delay(reader, 0.0001)
    assert not hasattr(reader, "_run_loop_delay")
    reader._run_loop_delay = 0.001
    assert set_dul_run_loop_delay(reader, 0.0001) and reader._run_loop_delay == 0.0001
