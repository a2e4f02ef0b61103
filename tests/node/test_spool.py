"""The spool on a real disk: atomic durable writes, free-space floor, recovery after a crash."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.errors import OutOfSpaceError
from cinestrain.node.index import Index
from cinestrain.node.receive.spool import Spool, temp_name, write_all
from cinestrain.node.service import reconcile
from cinestrain.node.states import PARTIAL_SUFFIX


@pytest.fixture
def instance(make_study, tmp_path):
    """(bytes, study, series, sop) of one real MR instance."""
    [path] = write_cine_classic(make_study(n_slices=1, n_phases=1), tmp_path / "src")
    ds = dcmread(path, stop_before_pixels=True)
    return path.read_bytes(), ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID


@pytest.mark.parametrize("fsync_directory", [False, True])
def test_store_leaves_only_the_final_file(tmp_path, instance, fsync_directory):
    spool = Spool(tmp_path / "spool", 1, fsync_directory=fsync_directory)
    stored = spool.store(*instance)
    assert stored.path.read_bytes() == instance[0] and not stored.duplicate
    assert spool.store(*instance).duplicate
    assert list(spool.iter_instances()) == [stored.path]
    assert not list(spool.root.rglob(f"*{PARTIAL_SUFFIX}"))


def test_parts_are_written_in_order_and_named_by_the_whole_crc(tmp_path, instance):
    """A header and a dataset written as two parts: the same file, the same CRC-32 in the
    temporary name (what recovery checks) as the joined bytes."""
    data, study, series, sop = instance
    parts = (data[:388], memoryview(data)[388:])
    stored = Spool(tmp_path / "spool", 1).store(parts, study, series, sop)
    assert stored.path.read_bytes() == data and stored.size == len(data)
    assert temp_name(stored.path, parts).name.split(".")[-3] == (
        temp_name(stored.path, data).name.split(".")[-3]
    )


def test_short_writes_continue_where_they_stopped(tmp_path, monkeypatch):
    """``writev`` may write less than asked (signals, a full quota): the rest follows."""
    import os

    real_writev = os.writev

    def at_most_5_bytes(fd, buffers):
        first = bytes(buffers[0])[:5]
        return real_writev(fd, [first])

    monkeypatch.setattr(os, "writev", at_most_5_bytes)
    target = tmp_path / "out"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT)
    try:
        write_all(fd, [b"0123456789abc", b"", memoryview(b"defgh"), b"ij"])
    finally:
        os.close(fd)
    assert target.read_bytes() == b"0123456789abcdefghij"


def test_power_loss_between_fsync_and_rename_is_recovered(tmp_path, instance):
    """An fsync'ed temporary file whose rename was lost becomes the instance again; a
    temporary file whose content does not match its CRC (never acknowledged) is removed."""
    data, study, series, sop = instance
    spool = Spool(tmp_path / "spool", 1)
    final = spool.path_for(study, series, sop)
    final.parent.mkdir(parents=True)
    durable = temp_name(final, data)
    durable.write_bytes(data)  # what the fsync made durable; the rename never happened
    other = spool.path_for(study, series, "1.2.3.4")
    torn = temp_name(other, data)
    torn.write_bytes(data[: len(data) // 2])  # cut short: was never acknowledged
    (final.parent / f".old.dcm.1234{PARTIAL_SUFFIX}").write_bytes(data)  # no CRC in name

    assert spool.recover_partial() == (1, 2)
    assert final.read_bytes() == data
    assert not other.exists()
    assert not list(spool.root.rglob(f"*{PARTIAL_SUFFIX}"))
    index = Index(tmp_path / "index.sqlite")
    try:
        assert reconcile(spool, index, 1.0) == 1  # the index learns it at start-up
        assert index.instance(sop).path == final
    finally:
        index.close()


def test_free_space_is_measured_again_when_stale_or_near_the_floor(tmp_path, monkeypatch):
    import cinestrain.node.receive.spool

    spool = Spool(tmp_path / "spool", 100)
    free = {"bytes": 10 * 2**30, "measured": 0}

    def measure() -> int:
        free["measured"] += 1
        return free["bytes"]

    monkeypatch.setattr(spool, "free_bytes", measure)
    monkeypatch.setattr(cinestrain.node.receive.spool, "SPACE_RECHECK_S", 3600.0)
    spool.check_space(2**20)
    spool.check_space(2**20)
    assert free["measured"] == 1  # far from the floor: counted down, not measured
    spool.check_space(10 * 2**30 - 300 * 2**20)  # would come within the margin: measured
    assert free["measured"] == 2
    free["bytes"] = 100 * 2**20 + 500  # another process filled the disk
    monkeypatch.setattr(cinestrain.node.receive.spool, "SPACE_RECHECK_S", 0.0)
    with pytest.raises(OutOfSpaceError):
        spool.check_space(1000)
