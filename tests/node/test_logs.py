"""The node's logs, read as an admin reads them, from a real ``cinestrain serve`` (SCP,
scheduler, worker process, export) and a real push:

- they carry UIDs and AE titles, never patient names;
- with ``logging.format = "json"`` every line of the main process and of the worker parses
  as JSON, on stderr and in ``logging.file`` (both processes append to it);
- a job of the 10 x 25 phantom logs fewer than 20 lines at INFO: no library chatter, and a
  dead destination logs one line per failed association of ours, none of pynetdicom's.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import tomli_w
from pydicom import dcmread

from cinestrain.cli.config import _without_none
from cinestrain.node.index import Index
from cinestrain.node.records import JobRow
from cinestrain.node.states import INDEX_FILE, ExportState, JobState
from tests.node.conftest import (
    TOOL_TIMEOUT_S,
    free_port,
    phantom_files,
    storescu,
    wait_for,
    wait_listening,
)

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")

#: a name no code, path or UID could contain by chance
NAME = "Zyxwvut^Quintessa^Marie"
PATIENT_ID = "PID-8842731"


def test_patient_names_never_reach_the_logs(make_config, phantom_dir, tiny_weights, tmp_path):
    files = []
    for series in phantom_files(phantom_dir).values():
        for path in series:
            ds = dcmread(path)
            ds.PatientName, ds.PatientID = NAME, PATIENT_ID
            files.append(tmp_path / "in" / path.name)
            files[-1].parent.mkdir(exist_ok=True)
            ds.save_as(files[-1])
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[{"kind": "folder", "name": "archive", "path": str(tmp_path / "out")}],
        logging={"level": "DEBUG", "file": str(tmp_path / "node.log")},
    )
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    stderr = tmp_path / "stderr.log"
    exe = Path(sys.executable).parent / "cinestrain"
    proc = subprocess.Popen([str(exe), "serve", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    try:
        wait_listening(cfg)
        assert storescu(cfg, *files).returncode == 0

        def jobs() -> list[JobRow]:
            index = Index(cfg.storage.directory / INDEX_FILE)
            try:
                return index.jobs()
            finally:
                index.close()

        assert wait_for(lambda: [j.state for j in jobs()] == [JobState.DONE], 120), jobs()
        assert wait_for(lambda: (tmp_path / "out").exists(), 30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    logs = (tmp_path / "node.log").read_text() + stderr.read_text()
    assert "C-STORE" in logs and "analysed as job 1" in logs  # the logs are there, at DEBUG
    assert dcmread(files[0]).SOPInstanceUID in logs  # with UIDs
    for needle in (NAME, "Zyxwvut", "Quintessa", PATIENT_ID):
        assert needle not in logs, f"{needle!r} in the logs"


@pytest.fixture(scope="module")
def phantom_10x25(tmp_path_factory) -> Path:
    """The 10 slices x 25 phases phantom an admin pushes first (128 x 128, to be quick)."""
    out = tmp_path_factory.mktemp("phantom10x25")
    exe = Path(sys.executable).parent / "cinestrain"
    done = subprocess.run(
        [str(exe), "phantom", "--out", str(out), "--cases", "1", "--seed", "5", "--slices",
         "10-10", "--phases", "25-25", "--matrix", "128-128"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S * 2)
    assert done.returncode == 0, done.stderr
    return out / "case_000" / "dicom"


@contextmanager
def serving(cfg, tmp_path: Path) -> Iterator[Path]:
    """``cinestrain serve`` on ``cfg`` (written as TOML) until the block ends (SIGTERM);
    yields the file its stderr goes to, once it answers C-ECHO."""
    config = tmp_path / "node.toml"
    config.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    stderr = tmp_path / "stderr.log"
    exe = Path(sys.executable).parent / "cinestrain"
    with stderr.open("w") as err:
        proc = subprocess.Popen([str(exe), "serve", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_listening(cfg)
            yield stderr
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0


def _index(cfg) -> Index:
    return Index(cfg.storage.directory / INDEX_FILE)


def _states(cfg) -> tuple[list[JobState], list[ExportState]]:
    index = _index(cfg)
    try:
        return [j.state for j in index.jobs()], [e.state for e in index.exports()]
    finally:
        index.close()


def _json_lines(text: str) -> list[dict]:
    """Every line of ``text`` as JSON (fails on the first that is not)."""
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"line {n} is not JSON: {line!r}")
    return entries


def test_a_job_of_the_10x25_phantom_logs_few_json_lines(make_config, phantom_10x25,
                                                         tiny_weights, tmp_path):
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        destinations=[{"kind": "folder", "name": "archive", "path": str(tmp_path / "out")}],
        logging={"level": "INFO", "format": "json"},
    )
    with serving(cfg, tmp_path) as stderr:
        before = len(stderr.read_text().splitlines())  # start-up, and the echoes of the wait
        assert storescu(cfg, *sorted(phantom_10x25.iterdir())).returncode == 0
        assert wait_for(lambda: _states(cfg) == ([JobState.DONE], [ExportState.DONE]), 300), \
            _states(cfg)
        job_lines = stderr.read_text().splitlines()[before:]
    entries = _json_lines(stderr.read_text())  # stop included
    # the worker process wrote some of them, in the same format
    assert len({e["pid"] for e in entries}) >= 2, entries
    assert any(e["logger"] == "cinestrain.pipeline.run" for e in entries)
    assert len(job_lines) < 20, "\n".join(job_lines)
    loggers = {e["logger"].split(".")[0] for e in entries}
    assert loggers <= {"cinestrain"}, loggers  # no highdicom, pynetdicom, apscheduler


def test_both_processes_append_json_to_one_file_and_a_dead_export_is_one_line_a_try(
        make_config, phantom_dir, tiny_weights, tmp_path):
    dead_port = free_port()  # nothing listens there
    cfg = make_config(
        model={"weights": str(tiny_weights)},
        worker={"device": "cpu", "torch_threads": 1},
        export={"retry_max": 2, "retry_initial_seconds": 0.2, "retry_max_seconds": 0.2},
        destinations=[{"kind": "dicom", "name": "gone", "ae_title": "GONE",
                       "host": "127.0.0.1", "port": dead_port}],
        logging={"level": "INFO", "format": "json", "file": str(tmp_path / "log" / "node.log")},
    )
    files = [p for series in phantom_files(phantom_dir).values() for p in series]
    with serving(cfg, tmp_path) as stderr:
        assert storescu(cfg, *files).returncode == 0
        assert wait_for(lambda: _states(cfg) == ([JobState.DONE], [ExportState.DEAD]), 180), \
            _states(cfg)
    assert stderr.read_text() == ""  # everything went to the file, from both processes
    entries = _json_lines((tmp_path / "log" / "node.log").read_text())
    assert len({e["pid"] for e in entries}) >= 2
    assert not [e for e in entries if e["logger"].startswith("pynetdicom")]
    failed = [e for e in entries
              if e["logger"] == "cinestrain.node.export" and f":{dead_port}" in e["message"]]
    # tries 1 and 2 failed (one line each), try 3 dead (one line); the early export, which
    # sends while the results are written, gives up at its first failed association on
    # each of its parallel associations (one line each)
    assert [e["level"] for e in failed if "early" not in e["message"]] == \
        ["WARNING", "WARNING", "ERROR"], failed
    assert len([e for e in failed if "early" in e["message"]]) <= cfg.export.associations
