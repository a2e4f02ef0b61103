"""The ``dicomweb`` destination: STOW-RS to a real Orthanc with its DICOMweb plugin, basic
authentication from a password file, retries like C-STORE, ``cinestrain echo`` by QIDO-RS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from cinestrain.cli.main import main
from cinestrain.config import ConfigError
from cinestrain.config.load import parse_config
from cinestrain.node.dicomweb import batches, check_dicomweb, send_dicomweb
from cinestrain.node.errors import ExportError
from cinestrain.node.export import Exporter
from cinestrain.node.index import Index
from cinestrain.node.metrics import NodeMetrics
from cinestrain.node.service import Node
from cinestrain.node.states import INDEX_FILE, ExportState, JobState
from cinestrain.node.viewer import DICOMWEB_PLUGIN
from tests.node.conftest import (
    Orthanc,
    free_port,
    push_parallel,
    running_job,
    wait_for,
    write_config,
)

#: the tests that start Orthanc with its DICOMweb plugin
needs_orthanc = [
    pytest.mark.requires_tool("Orthanc", "a DICOMweb server (Debian package orthanc)"),
    pytest.mark.requires_file(DICOMWEB_PLUGIN, "Orthanc's DICOMweb plugin (Debian package "
                              "orthanc-dicomweb)"),
]


def with_orthanc(test):
    """Mark ``test`` as starting Orthanc with its DICOMweb plugin."""
    for mark in needs_orthanc:
        test = mark(test)
    return test

USER, PASSWORD = "cinestrain", "s3cret-Pass"


def web_destination(orthanc: Orthanc, password_file: Path, **extra) -> dict:
    """The ``[[destinations]]`` table of Orthanc's DICOMweb root, basic authentication."""
    return {"kind": "dicomweb", "name": "web", "url": orthanc.dicomweb_url, "username": USER,
            "password_file": str(password_file), "timeout_s": 30, **extra}


@pytest.fixture
def orthanc(tmp_path) -> Iterator[Orthanc]:
    server = Orthanc(tmp_path / "orthanc", free_port(), dicomweb=True, users={USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "dicomweb.password"
    path.write_text(PASSWORD + "\n")  # as an editor saves it
    path.chmod(0o600)
    return path


@with_orthanc
@pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")
def test_node_delivers_every_result_once_by_stow_rs(make_config, phantom_dir, tiny_weights,
                                                    orthanc, password_file):
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[web_destination(orthanc, password_file)],
    )
    node = Node(cfg)
    node.start()
    try:
        push_parallel(cfg, sorted((phantom_dir / "dicom").iterdir()), seed=5)
        assert wait_for(lambda: [j.state for j in node.index.jobs()] == [JobState.DONE], 180), (
            node.index.jobs())
        assert wait_for(lambda: [e.state for e in node.index.exports()] == ["done"], 60), (
            node.index.exports())
        [job] = node.index.jobs()
        written = [p for p in job.files if p.suffix == ".dcm"]
        uids = sorted(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in written)
        [export] = node.index.exports()
        assert export.sent == len(written)

        def held() -> list[str]:
            return sorted(orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
                          for i in orthanc.instances())

        assert held() == uids  # every result, each once
        assert len(set(uids)) == len(uids) > 5
        # sent again (a retry, ``cinestrain send``): the same UIDs replace, nothing is added
        assert node.exporter.deliver("web", job) == len(written)
        assert held() == uids
        assert b"cinestrain_export_failures_total{" not in node.metrics.exposition()
    finally:
        node.stop()


@with_orthanc
def test_failed_tries_are_retried_with_the_password_read_again(make_config, make_study,
                                                                orthanc, password_file):
    password_file.write_text("wrong\n")
    cfg = make_config(
        destinations=[web_destination(orthanc, password_file)],
        export={"retry_max": 2, "retry_initial_seconds": 0.1, "retry_max_seconds": 0.2},
    )
    index = Index(cfg.storage.directory / INDEX_FILE)
    try:
        job_id, files = running_job(cfg, index, make_study)
        index.finish_job(job_id, [str(p) for p in files], ["web"])
        metrics = NodeMetrics()
        exporter = Exporter(cfg, index, metrics)
        [row] = index.due_exports(time.time())
        assert exporter.attempt(row) == ExportState.RETRY
        [row] = index.exports(job_id)
        assert "HTTP 401" in row.last_error and "wrong" not in row.last_error
        assert row.attempts == 1 and row.next_attempt_at > time.time() - 1
        assert b'cinestrain_export_failures_total{destination="web"} 1.0' in (
            metrics.exposition())
        assert orthanc.instances() == []

        password_file.write_text(PASSWORD)  # the admin fixes the file: no restart
        time.sleep(0.25)  # the backoff
        exporter.poll()
        [row] = index.exports(job_id)
        assert row.state == ExportState.DONE and row.sent == 3
        assert len(orthanc.instances()) == 3
    finally:
        index.close()


@with_orthanc
def test_stow_rs_failures_name_their_cause(make_config, make_study, orthanc, password_file,
                                           tmp_path):
    from cinestrain.inference.phantom.scanner import write_cine_classic

    files = write_cine_classic(make_study(n_slices=1, n_phases=2), tmp_path / "cine")
    ok = parse_config({"destinations": [web_destination(orthanc, password_file)]})
    [dest] = ok.destinations
    assert send_dicomweb(dest, files) == 2
    assert len(orthanc.instances()) == 2
    assert check_dicomweb(dest) == 1  # one study, listed by QIDO-RS

    def failure(**changes) -> str:
        with pytest.raises(ExportError) as info:
            send_dicomweb(dest.model_copy(update=changes), files)
        return str(info.value)

    assert "cannot read the password file" in failure(password_file=tmp_path / "missing")
    assert "HTTP 401" in failure(username="intruder")
    assert "HTTP 404" in failure(url=orthanc.dicomweb_url.replace("dicom-web", "nothing"))
    closed = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert f"no answer from {closed}" in failure(url=closed)
    token = tmp_path / "token"
    token.write_text("not-a-token")
    assert "HTTP 401" in failure(username=None, password_file=None, token_file=token)


@with_orthanc
def test_echo_queries_a_dicomweb_destination(make_config, orthanc, password_file, tmp_path,
                                             capsys):
    good = make_config(destinations=[web_destination(orthanc, password_file)])
    assert main(["echo", "web", "--config", str(write_config(good, tmp_path))]) == 0
    assert "web: QIDO-RS query to http://127.0.0.1:" in capsys.readouterr().out
    password_file.write_text("wrong")
    assert main(["echo", "web", "--config", str(write_config(good, tmp_path))]) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_batches_keep_order_under_the_size_limit(tmp_path):
    sizes = [5, 5, 20, 3, 3, 3]
    files = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(b"x" * size)
        files.append(path)
    groups = [[int(p.stem) for p in group] for group in batches(files, limit=10)]
    assert groups == [[0, 1], [2], [3, 4, 5]]


@pytest.mark.parametrize(("table", "expected"), [
    ({"url": "ftp://pacs/dicom-web"}, "must be an http:// or https:// URL"),
    ({"url": "http:///dicom-web"}, "must be an http:// or https:// URL"),
    ({"url": "http://pacs/dicom-web?x=1"}, "without ?query"),
    ({"username": "u"}, "'username' and 'password_file' go together"),
    ({"username": "u", "password_file": "/p", "token_file": "/t"}, "not both"),
    ({"password": "inline"}, "password: unknown key"),
    ({"timeout_s": 0}, "timeout_s = 0"),
])
def test_dicomweb_destination_is_validated(table, expected):
    entry = {"kind": "dicomweb", "name": "web", "url": "http://pacs:8042/dicom-web", **table}
    with pytest.raises(ConfigError) as info:
        parse_config({"destinations": [entry]})
    assert expected in str(info.value)
