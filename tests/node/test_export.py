"""Export of a job's DICOM results: Orthanc as the destination PACS (down, then up), folders,
backoff and the dead letter, ``cinestrain retry`` and ``cinestrain echo``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.node.export import Exporter, backoff_seconds
from cinestrain.node.index import Index
from cinestrain.node.states import INDEX_FILE, ExportState
from tests.node.conftest import Orthanc, free_port, results_request, running_job, write_config


@pytest.fixture
def finished_job(make_config, make_study, tmp_path) -> Iterator[tuple]:
    """A done job whose output folder holds 3 DICOM objects and a non-DICOM file, with
    an Orthanc destination (not running yet) and a folder destination."""
    orthanc_port = free_port()
    cfg = make_config(
        destinations=[
            {"kind": "dicom", "name": "pacs", "ae_title": "ORTHANC", "host": "127.0.0.1",
             "port": orthanc_port},
            {"kind": "folder", "name": "archive", "path": str(tmp_path / "archive")},
        ],
        export={"retry_max": 2, "retry_initial_seconds": 0.1, "retry_max_seconds": 0.2},
        node={"timeouts": {"acse_s": 5, "network_s": 5}},
    )
    index = Index(cfg.storage.directory / INDEX_FILE)
    job_id, files = running_job(cfg, index, make_study)
    index.finish_job(job_id, [str(p) for p in files], ["pacs", "archive"])
    yield cfg, index, job_id, orthanc_port
    index.close()


def test_backoff_doubles_up_to_the_cap(make_config):
    rules = make_config(export={"retry_initial_seconds": 30, "retry_max_seconds": 100}).export
    assert [backoff_seconds(n, rules) for n in (1, 2, 3, 4)] == [30, 60, 100, 100]


@pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
def test_destination_down_is_retried_then_delivered(finished_job, tmp_path):
    cfg, index, job_id, port = finished_job
    exporter = Exporter(cfg, index)
    states = {r.destination: exporter.attempt(r) for r in index.due_exports(time.time())}
    assert states == {"pacs": ExportState.RETRY, "archive": ExportState.DONE}
    copied = sorted(p.name for p in (tmp_path / "archive").rglob("*") if p.is_file())
    assert len(copied) == 4 and "report.json" in copied
    [pacs] = [r for r in index.exports(job_id) if r.destination == "pacs"]
    assert pacs.attempts == 1 and "no association" in pacs.last_error
    assert pacs.next_attempt_at > time.time() - 1

    orthanc = Orthanc(tmp_path / "orthanc", port)
    try:
        time.sleep(0.25)  # the backoff
        exporter.poll()
        [pacs] = [r for r in index.exports(job_id) if r.destination == "pacs"]
        assert pacs.state == ExportState.DONE and pacs.sent == 3
        assert len(orthanc.instances()) == 3
        assert main(["echo", "pacs", "--config", str(write_config(cfg, tmp_path))]) == 0
    finally:
        orthanc.stop()


def test_dead_letter_then_cinestrain_retry(finished_job, tmp_path, capsys):
    cfg, index, job_id, _ = finished_job
    exporter = Exporter(cfg, index)
    for _ in range(cfg.export.retry_max + 1):
        for row in index.exports(job_id):
            if row.destination == "pacs":
                exporter.attempt(row)
    [pacs] = [r for r in index.exports(job_id) if r.destination == "pacs"]
    assert pacs.state == ExportState.DEAD and pacs.attempts == 3
    due = index.due_exports(time.time() + 3600)
    assert [r.destination for r in due] == ["archive"]  # the dead one is never due

    config = write_config(cfg, tmp_path)
    assert main(["status", "--config", str(config), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["exports"]["dead"] == 1 and report["dead_exports"][0]["job_id"] == job_id
    assert main(["status", "--config", str(config)]) == 1
    assert f"cinestrain retry {job_id}" in capsys.readouterr().out

    assert main(["retry", str(job_id), "--config", str(config)]) == 0
    states = {r.destination: r.state for r in index.exports(job_id)}
    assert states == {"pacs": ExportState.PENDING, "archive": ExportState.PENDING}
    assert main(["echo", "pacs", "--config", str(config)]) == 1  # still down
    assert main(["echo", "nowhere", "--config", str(config)]) == 2


@pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
@pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")
def test_results_go_back_to_the_calling_ae(make_config, make_study, tmp_path):
    """A caller with a ``return_port`` gets the results by C-STORE, at the address it
    called from (Orthanc stands in for the scanner's own SCP)."""
    from cinestrain.inference.phantom.scanner import write_cine_classic
    from cinestrain.node.worker import Dispatcher
    from tests.node.conftest import Receiver, storescu

    port = free_port()
    cfg = make_config(node={
        "allowed_callers": [{"ae_title": "STORESCU", "return_port": port},
                            {"ae_title": "OTHER"}],
        "timeouts": {"acse_s": 5, "network_s": 5},
    })
    receiver = Receiver(cfg)
    orthanc = Orthanc(tmp_path / "orthanc", port)
    try:
        files = write_cine_classic(make_study(n_slices=1, n_phases=8), tmp_path / "in")
        assert storescu(cfg, *files).returncode == 0
        index = receiver.index
        row = index.instance(dcmread(files[0], stop_before_pixels=True).SOPInstanceUID)
        assert (row.calling_ae, row.calling_host) == ("STORESCU", "127.0.0.1")
        stack_id = index.upsert_stack(row.study_uid, [row.series_uid], "1x8x32x32", 8,
                                      "queued")
        job_id = index.create_job(stack_id, "digest", results_request(cfg), "complete")
        out_dir = index.job(job_id).out_dir
        results = write_cine_classic(make_study(n_slices=1, n_phases=3), out_dir)
        index.claim_job()
        Dispatcher(cfg, index)._done(job_id, {"files": [str(p) for p in results]})
        [export] = index.exports(job_id)
        assert export.destination == f"caller:STORESCU@127.0.0.1:{port}"
        Exporter(cfg, index).poll()
        [export] = index.exports(job_id)
        assert export.state == ExportState.DONE and export.sent == 3
        assert len(orthanc.instances()) == 3
    finally:
        orthanc.stop()
        receiver.stop()


@pytest.mark.requires_tool("Orthanc", "a PACS to send to (Debian package orthanc)")
def test_results_sent_while_written_are_not_sent_again(make_config, make_study, tmp_path,
                                                       monkeypatch):
    """What an early export stored is recorded with the job's export, which sends only
    the rest; a destination that stored everything is done at once; one that is down
    early gets everything from the export."""
    from cinestrain.node import export as export_module

    port = free_port()
    cfg = make_config(
        destinations=[
            {"kind": "dicom", "name": "pacs", "ae_title": "ORTHANC", "host": "127.0.0.1",
             "port": port},
            {"kind": "dicom", "name": "down", "ae_title": "DOWN", "host": "127.0.0.1",
             "port": free_port()},
            {"kind": "folder", "name": "archive", "path": str(tmp_path / "archive")},
        ],
        export={"retry_initial_seconds": 0.1, "retry_max_seconds": 0.2},
        node={"timeouts": {"acse_s": 5, "network_s": 5}},
    )
    index = Index(cfg.storage.directory / INDEX_FILE)
    orthanc = Orthanc(tmp_path / "orthanc", port)
    sent: list[str] = []
    real_send = export_module.send_dicom
    monkeypatch.setattr(export_module, "send_dicom", lambda dest, c, files: (
        sent.extend(f"{dest.name}:{p.name}" for p in files), real_send(dest, c, files))[1])
    try:
        job_id, files = running_job(cfg, index, make_study)
        out_dir = files[0].parent
        exporter = Exporter(cfg, index)
        names = ["pacs", "down", "archive"]
        early = exporter.early(names)
        for path in (*files[:2], out_dir / "report.json"):  # written so far
            early.add(path)
        delivered = early.finish(30)
        assert delivered == {"pacs": sorted(p.name for p in files[:2]), "down": []}
        assert len(orthanc.instances()) == 2

        index.finish_job(job_id, [str(p) for p in files], names, None, delivered)
        rows = {r.destination: r for r in index.exports(job_id)}
        assert rows["pacs"].state == ExportState.PENDING and rows["pacs"].sent == 2
        exporter.poll()
        rows = {r.destination: r for r in index.exports(job_id)}
        assert rows["pacs"].state == ExportState.DONE and rows["pacs"].sent == 3
        assert [s for s in sent if s.startswith("pacs:")] == [f"pacs:{files[2].name}"]
        assert rows["down"].state == ExportState.RETRY  # everything, with retries
        assert rows["archive"].state == ExportState.DONE
        assert len(orthanc.instances()) == 3

        index.finish_job(job_id, [str(p) for p in files], ["pacs"], None,
                         {"pacs": [p.name for p in files]}, complete=["pacs"])
        done = index.exports(job_id)[-1]
        assert done.state == ExportState.DONE and done.sent == 3
        assert done not in index.due_exports(time.time() + 3600)
    finally:
        orthanc.stop()
        index.close()
