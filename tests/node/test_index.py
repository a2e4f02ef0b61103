"""The SQLite index on a real file: recording received instances."""

from __future__ import annotations

from cinestrain.node.index import Index, InstanceRecord


def test_add_instance_says_whether_the_instance_is_new(tmp_path):
    index = Index(tmp_path / "index.sqlite")
    try:
        record = InstanceRecord(
            sop_instance_uid="1.2.3.4", sop_class_uid="1.2.840.10008.5.1.4.1.1.4",
            study_uid="1.2.3", series_uid="1.2.3.1", path=tmp_path / "a.dcm", size=10,
            transfer_syntax="1.2.840.10008.1.2.1", calling_ae="STORESCU", received_at=100.0,
        )
        assert index.add_instance(record, 5.0)
        again = InstanceRecord(**{**record.__dict__, "path": tmp_path / "b.dcm",
                                  "received_at": 200.0})
        assert not index.add_instance(again, 5.0)
        row = index.instance("1.2.3.4")
        assert row["copies"] == 2 and row["path"] == str(tmp_path / "b.dcm")
        [study] = index.due_studies(1e9)
        assert study["last_received"] == 200.0 and study["next_scan_at"] == 205.0
        assert index.series("1.2.3.1")["study_uid"] == "1.2.3"
    finally:
        index.close()
