"""An admin's commands on a node's storage: ``status`` (jobs, results folders, exports,
skipped and failed stacks; read-only), ``jobs show ID``, ``send JOB [DEST...]`` and
``retry JOB``, their output and exit codes (0 done, 1 nothing to do / failed, 2 usage or
configuration error).

A real index and real result files; the commands run through ``cinestrain.cli.main``;
a folder destination shows that what ``send`` queues is delivered by the node's exporter.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cinestrain.cli.main import main
from cinestrain.config import NodeConfig
from cinestrain.node.export import Exporter
from cinestrain.node.index import Index
from cinestrain.node.states import INDEX_FILE, ExportState, JobState, SeriesState, StackState
from tests.node.conftest import results_request

STUDY, SERIES = "1.2.3", "1.2.3.4"
FAILED_STUDY, SKIPPED_STUDY = "1.2.5", "1.2.6"


def write_config(cfg: NodeConfig, path: Path) -> Path:
    """``cfg`` as the TOML file an admin edits."""
    import tomli_w

    from cinestrain.cli.config import _without_none

    path.write_text(tomli_w.dumps(_without_none(cfg.model_dump(mode="json"))))
    return path


@dataclass
class Store:
    """A node's storage after a few jobs (the node is not running)."""

    cfg: NodeConfig
    config: Path
    done: int
    """job id: done, 3 DICOM results and report.json in its folder, no export"""
    failed: int
    """job id: failed"""
    skipped_stack: int
    results: list[Path]

    def index(self) -> Index:
        return Index(self.cfg.storage.directory / INDEX_FILE)

    def with_destinations(self, tmp_path: Path, make_config) -> tuple[NodeConfig, Path]:
        """The configuration after the admin added a DICOM and a folder destination."""
        cfg = make_config(destinations=[
            {"kind": "dicom", "name": "pacs", "ae_title": "PACS", "host": "127.0.0.1",
             "port": 104},
            {"kind": "folder", "name": "archive", "path": str(tmp_path / "archive")},
        ])
        cfg = cfg.model_copy(update={"storage": self.cfg.storage, "node": self.cfg.node})
        return cfg, write_config(cfg, tmp_path / "node-with-destinations.toml")


@pytest.fixture
def store(make_config, make_study, tmp_path) -> Store:
    from cinestrain.inference.phantom.scanner import write_cine_classic

    cfg = make_config()  # no destination, as a node starts out
    index = Index(cfg.storage.directory / INDEX_FILE)
    try:
        stack = index.upsert_stack(STUDY, [SERIES], "1x3x32x32", 3, StackState.QUEUED)
        done = index.create_job(stack, "d1", results_request(cfg), "complete")
        out_dir = index.job(done).out_dir
        results = write_cine_classic(make_study(n_slices=1, n_phases=3), out_dir)
        (out_dir / "report.json").write_text("{}")
        results.append(out_dir / "report.json")
        index.claim_job()
        index.finish_job(done, [str(p) for p in results], [], {"timings_s": {"load": 0.5},
                                                              "peak_rss_mb": 900.0,
                                                              "cpu_s": 3.0})
        stack = index.upsert_stack(FAILED_STUDY, ["1.2.5.1"], "2x8x32x32", 16,
                                   StackState.QUEUED)
        failed = index.create_job(stack, "d2", results_request(cfg), "stable")
        index.claim_job()
        index.fail_job(failed, "RuntimeError: no LV found\nTraceback (most recent call last)")
        skipped = index.upsert_stack(SKIPPED_STUDY, ["1.2.6.1"], "1x8x32x32", 8,
                                     StackState.SKIPPED, "a single slice")
        index.set_series("1.2.6.1", SKIPPED_STUDY, SeriesState.SKIPPED,
                         f"stack {skipped}: a single slice")
        index.set_series("1.2.7.1", SKIPPED_STUDY, SeriesState.SKIPPED, "not MR images (SR)")
    finally:
        index.close()
    return Store(cfg, write_config(cfg, tmp_path / "node.toml"), done, failed, skipped,
                 results)


# -------------------------------------------------------------------------- status
def test_status_json_lists_jobs_results_and_stacks(store, capsys):
    index_file = store.cfg.storage.directory / INDEX_FILE
    before = index_file.read_bytes()
    assert main(["status", "--config", str(store.config), "--json"]) == 1  # a job failed
    report = json.loads(capsys.readouterr().out)
    assert index_file.read_bytes() == before  # read-only
    # the keys scripts already read, then the lists
    assert list(report)[:12] == [
        "storage", "disk", "instances", "series", "stacks", "jobs", "exports",
        "skipped_series", "failed_jobs", "dead_exports", "recent_jobs", "skipped_stacks"]
    assert report["stacks"] == {"done": 1, "failed": 1, "skipped": 1}
    assert report["jobs"] == {"done": 1, "failed": 1}
    failed, done = report["recent_jobs"]  # newest first
    assert (done["id"], done["state"], done["study_uid"], done["series_uids"]) == (
        store.done, "done", STUDY, [SERIES])
    assert done["stack_state"] == "done" and done["exports"] == []
    assert Path(done["results"]).is_dir() and done["results_exist"]
    assert done["file_count"] == 4
    assert sorted(p.name for p in Path(done["results"]).iterdir()) == sorted(
        p.name for p in store.results)
    assert done["created"] and done["finished"] and done["finished_at"] >= done["created_at"]
    assert (failed["id"], failed["state"], failed["error"]) == (
        store.failed, "failed", "RuntimeError: no LV found")
    assert report["failed_stacks"] == [
        {"id": failed["stack_id"], "study_uid": FAILED_STUDY, "series_uids": ["1.2.5.1"],
         "shape": "2x8x32x32", "reason": "RuntimeError: no LV found", "job_id": store.failed}]
    assert report["skipped_stacks"] == [
        {"id": store.skipped_stack, "study_uid": SKIPPED_STUDY, "series_uids": ["1.2.6.1"],
         "shape": "1x8x32x32", "reason": "a single slice"}]

    assert main(["status", "--config", str(store.config), "--json", "--jobs", "1"]) == 1
    assert [j["id"] for j in json.loads(capsys.readouterr().out)["recent_jobs"]] == [
        store.failed]


def test_status_text_names_the_results_folder_and_what_to_do(store, capsys):
    assert main(["status", "--config", str(store.config)]) == 1
    out = capsys.readouterr().out
    done_dir = store.results[0].parent
    assert f"job {store.done}  done  " in out
    assert f"  study    {STUDY}" in out
    assert f"  results  {done_dir}  (4 files)" in out
    assert f"cinestrain send {store.done}" in out  # no destination then
    assert f"job {store.failed}  failed" in out
    assert f"study {FAILED_STUDY}): RuntimeError: no LV found  (cinestrain retry " \
           f"{store.failed})" in out  # the failed stack, said once with its job
    assert "failed stack" not in out
    assert f"skipped stack {store.skipped_stack} (study {SKIPPED_STUDY}, 1 series): " \
           "a single slice" in out
    assert "skipped series 1.2.7.1: not MR images (SR)" in out
    assert "skipped series 1.2.6.1" not in out  # said once, with its stack
    assert "stacks    done 1, failed 1, skipped 1" in out


def test_status_exit_codes(store, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[node]\nport = 70000\n")
    assert main(["status", "--config", str(bad)]) == 2
    assert main(["status", "--config", str(store.config), "--jobs", "-1"]) == 2
    index = store.index()
    index.requeue_job(store.failed)  # nothing failed any more
    index.close()
    assert main(["status", "--config", str(store.config)]) == 0
    capsys.readouterr()


# ---------------------------------------------------------------------- jobs show
def test_jobs_show(store, capsys):
    assert main(["jobs", "show", str(store.done), "--config", str(store.config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"job {store.done}  done")
    assert f"study     {STUDY}" in out and f"series    {SERIES}" in out
    assert "request   1 input file(s)" in out and "model     pairing " in out
    assert "timings   load 0.5 s" in out and "worker    peak 900 MB" in out
    assert f"results   {store.results[0].parent}  (4 file(s))" in out
    assert "\n  report.json\n" in out
    assert f"exports   none (no destination then: cinestrain send {store.done})" in out

    assert main(["jobs", "show", str(store.done), "--config", str(store.config),
                 "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["request"]["inputs"] == 1 and job["request"]["model"]["pairing"] == "anchored"
    assert job["metrics"]["cpu_s"] == 3.0 and len(job["files"]) == 4


def test_jobs_show_failed_unknown_and_usage(store, capsys):
    assert main(["jobs", "show", str(store.failed), "--config", str(store.config)]) == 1
    out = capsys.readouterr().out
    assert "error\n  RuntimeError: no LV found\n  Traceback" in out
    assert main(["jobs", "show", "99", "--config", str(store.config)]) == 2
    assert "no job 99" in capsys.readouterr().err
    assert main(["jobs"]) == 2
    assert "cinestrain jobs show ID" in capsys.readouterr().err


# ------------------------------------------------------------------- send, retry
def test_send_without_a_destination_says_what_to_do(store, capsys):
    assert main(["send", str(store.done), "--config", str(store.config)]) == 2
    assert "no destination configured: add a [[destinations]]" in capsys.readouterr().err


def test_send_queues_destinations_added_after_the_job(store, make_config, tmp_path, capsys):
    cfg, config = store.with_destinations(tmp_path, make_config)
    assert main(["send", str(store.done), "nowhere", "--config", str(config)]) == 2
    assert "no destination 'nowhere' in the configuration (configured: pacs, archive)" in (
        capsys.readouterr().err)

    assert main(["send", str(store.done), "archive", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"job {store.done}: 1 export(s) queued: archive\n")
    index = store.index()
    try:
        [row] = index.exports(store.done)
        assert (row.destination, row.state) == ("archive", ExportState.PENDING)
        # the node's exporter (which reads the index) delivers it
        Exporter(cfg, index).poll()
        assert index.exports(store.done)[0].state == ExportState.DONE
        copied = sorted(p.name for p in (tmp_path / "archive").rglob("*") if p.is_file())
        assert copied == sorted(p.name for p in store.results)

        assert main(["send", str(store.done), "--config", str(config)]) == 0  # every one
        assert "2 export(s) queued: pacs, archive" in capsys.readouterr().out
        rows = {e.destination: e.state for e in index.exports(store.done)}
        assert rows == {"archive": ExportState.PENDING, "pacs": ExportState.PENDING}
    finally:
        index.close()


def test_send_refuses_what_has_no_results(store, make_config, tmp_path, capsys):
    _, config = store.with_destinations(tmp_path, make_config)
    assert main(["send", str(store.failed), "--config", str(config)]) == 1
    assert f"cinestrain retry {store.failed} runs it again" in capsys.readouterr().err
    assert main(["send", "99", "--config", str(config)]) == 2
    assert "no job 99" in capsys.readouterr().err
    shutil.rmtree(store.results[0].parent)  # retention removed the results
    assert main(["send", str(store.done), "--config", str(config)]) == 1
    assert "removed by storage.retention_days" in capsys.readouterr().err
    empty = tmp_path / "empty.toml"
    write_config(make_config(storage={"directory": str(tmp_path / "none")}), empty)
    assert main(["send", "1", "--config", str(empty)]) == 2
    assert "no index at" in capsys.readouterr().err


def test_retry_covers_destinations_added_later_and_reruns_a_failed_job(
        store, make_config, tmp_path, capsys):
    _, config = store.with_destinations(tmp_path, make_config)
    assert main(["retry", str(store.done), "--config", str(config)]) == 0
    assert f"job {store.done}: 2 export(s) queued: pacs, archive" in capsys.readouterr().out
    assert main(["retry", str(store.failed), "--config", str(config)]) == 0
    assert f"job {store.failed} queued to run again" in capsys.readouterr().out
    index = store.index()
    try:
        assert index.job(store.failed).state == JobState.PENDING
        assert index.stack(index.job(store.failed).stack_id).state == StackState.QUEUED
        assert len(index.exports(store.done)) == 2
    finally:
        index.close()
    assert main(["retry", str(store.failed), "--config", str(config)]) == 1  # pending now
    assert "is pending" in capsys.readouterr().err
