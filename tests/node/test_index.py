"""The SQLite index on a real file: instances, studies, series, stacks, jobs, exports,
retention's selections, the status summary, and the typed records it returns."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from pathlib import Path

import pytest

from cinestrain.node.errors import UnknownJobError
from cinestrain.node.index import Index, InstanceRecord
from cinestrain.node.records import (
    ExportRow,
    IndexSummary,
    InstanceRow,
    InstanceTotals,
    JobRow,
    SeriesRow,
    StackRow,
    StudyRow,
)
from cinestrain.node.states import ExportState, JobState, SeriesState, StackState
from cinestrain.pipeline.job import AnalysisRequest
from tests.node.conftest import results_request

STUDY = "1.2.3"
SERIES = "1.2.3.1"


def record(tmp_path: Path, sop: str, *, series: str = SERIES, study: str = STUDY,
           at: float = 100.0, size: int = 10, name: str | None = None,
           calling_ae: str = "STORESCU", calling_host: str = "127.0.0.1") -> InstanceRecord:
    """An instance as the C-STORE handler records it."""
    return InstanceRecord(
        sop_instance_uid=sop, sop_class_uid="1.2.840.10008.5.1.4.1.1.4", study_uid=study,
        series_uid=series, path=tmp_path / (name or f"{sop}.dcm"), size=size,
        transfer_syntax="1.2.840.10008.1.2.1", calling_ae=calling_ae, received_at=at,
        calling_host=calling_host,
    )


@pytest.fixture
def index(tmp_path) -> Iterator[Index]:
    """A fresh index file under tmp_path."""
    idx = Index(tmp_path / "index.sqlite")
    yield idx
    idx.close()


@pytest.fixture
def request_(make_config) -> AnalysisRequest:
    """A job request writing under the test node's results folder."""
    return results_request(make_config())


def queued_job(index: Index, request: AnalysisRequest, study: str = STUDY,
               series: str = SERIES, digest: str = "d1", trigger: str = "complete") -> JobRow:
    """A stack of one series and a pending job of it."""
    stack_id = index.upsert_stack(study, [series], "1x8x32x32", 8, StackState.QUEUED)
    return index.job(index.create_job(stack_id, digest, request, trigger))


def done_job(index: Index, request: AnalysisRequest, destinations: Iterable[str] = (),
             **kwargs: str) -> JobRow:
    """A job claimed and finished, its exports queued to ``destinations``."""
    job = queued_job(index, request, **kwargs)
    assert index.claim_job().id == job.id
    index.finish_job(job.id, [str(job.out_dir / "report.json")], list(destinations))
    return index.job(job.id)


# ------------------------------------------------------------------------ instances
def test_add_instance_counts_duplicate_copies(index, tmp_path):
    assert index.add_instance(record(tmp_path, "1.2.3.4", at=100.0), 5.0)
    again = dataclasses.replace(record(tmp_path, "1.2.3.4", at=200.0, name="b.dcm"),
                                calling_ae="OTHER", calling_host="10.0.0.2")
    assert not index.add_instance(again, 5.0)
    assert not index.add_instance(dataclasses.replace(again, received_at=300.0), 5.0)

    row = index.instance("1.2.3.4")
    assert isinstance(row, InstanceRow)
    assert row.copies == 3
    assert row.path == tmp_path / "b.dcm" and isinstance(row.path, Path)  # the latest copy
    assert (row.received_at, row.calling_ae, row.calling_host) == (300.0, "OTHER", "10.0.0.2")
    assert row.series_uid == SERIES and row.study_uid == STUDY and row.size == 10
    assert index.instance("9.9.9") is None

    study = index.study(STUDY)
    assert isinstance(study, StudyRow)
    assert (study.first_received, study.last_received) == (100.0, 300.0)
    assert study.next_scan_at == 305.0 and study.calling_ae == "OTHER"
    series = index.series(SERIES)
    assert isinstance(series, SeriesRow) and series.state == SeriesState.RECEIVED
    assert series.reason is None and series.stack_id is None


def test_a_new_instance_does_not_reset_a_decided_series(index, tmp_path):
    index.add_instance(record(tmp_path, "1"), 5.0)
    index.set_series(SERIES, STUDY, SeriesState.SKIPPED, "not a cine")
    index.add_instance(record(tmp_path, "2", at=150.0), 5.0)
    assert index.series(SERIES).state == SeriesState.SKIPPED
    assert index.study(STUDY).next_scan_at == 155.0  # but the study is looked at again


def test_study_and_series_instances_known_paths_and_callers(index, tmp_path):
    index.add_instance(record(tmp_path, "1", series="s1"), 5.0)
    index.add_instance(record(tmp_path, "2", series="s2", calling_ae="B", calling_host="h"), 5.0)
    index.add_instance(record(tmp_path, "3", series="s3", study="other"), 5.0)
    assert sorted(r.sop_instance_uid for r in index.study_instances(STUDY)) == ["1", "2"]
    assert [r.sop_instance_uid for r in index.series_instances("s2")] == ["2"]
    assert index.known_paths() == {str(tmp_path / f"{n}.dcm") for n in "123"}
    stack_id = index.upsert_stack(STUDY, ["s1", "s2"], "2x1x8x8", 2, StackState.WAITING)
    assert index.stack_callers(stack_id) == [("B", "h"), ("STORESCU", "127.0.0.1")]
    assert index.stack_callers(999) == []


def test_due_studies_and_set_next_scan(index, tmp_path):
    index.add_instance(record(tmp_path, "1", at=100.0), 5.0)
    index.add_instance(record(tmp_path, "2", study="4.5.6", at=90.0), 5.0)
    assert index.due_studies(94.0) == []
    assert [s.study_uid for s in index.due_studies(105.0)] == ["4.5.6", STUDY]  # soonest first

    index.set_next_scan(STUDY, 100.0, None)  # decided: not due any more
    assert [s.study_uid for s in index.due_studies(1e9)] == ["4.5.6"]
    index.set_next_scan(STUDY, 100.0, 130.0)
    assert index.study(STUDY).next_scan_at == 130.0
    # an instance arrived while the study was looked at: the stale decision is dropped
    index.add_instance(record(tmp_path, "3", at=120.0), 5.0)
    index.set_next_scan(STUDY, 100.0, None)
    assert index.study(STUDY).next_scan_at == 125.0
    assert index.study("nope") is None


# ------------------------------------------------------------------- series, stacks
def test_set_series_upserts(index):
    index.set_series(SERIES, STUDY, SeriesState.SKIPPED, "not MR images (SEG)")
    row = index.series(SERIES)
    assert (row.state, row.reason, row.stack_id) == (SeriesState.SKIPPED, "not MR images (SEG)",
                                                     None)
    assert isinstance(row.state, SeriesState)
    before = row.updated_at
    index.set_series(SERIES, STUDY, SeriesState.STACKED, stack_id=7)
    row = index.series(SERIES)
    assert (row.state, row.reason, row.stack_id) == (SeriesState.STACKED, None, 7)
    assert row.updated_at >= before
    assert index.series("unknown") is None


def test_upsert_stack_updates_the_stack_sharing_a_series(index):
    first = index.upsert_stack(STUDY, ["b", "a"], "2x8x32x32", 16, StackState.WAITING)
    stack = index.stack(first)
    assert isinstance(stack, StackRow)
    assert stack.series_uids == ("a", "b") and stack.n_instances == 16
    assert stack.state == StackState.WAITING and stack.reason is None

    grown = index.upsert_stack(STUDY, ["a", "b", "c"], "3x8x32x32", 24, StackState.QUEUED)
    assert grown == first
    stack = index.stack(first)
    assert (stack.series_uids, stack.shape, stack.n_instances, stack.state) == (
        ("a", "b", "c"), "3x8x32x32", 24, StackState.QUEUED)
    assert stack.created_at <= stack.updated_at

    other = index.upsert_stack(STUDY, ["d"], "1x8x32x32", 8, StackState.SKIPPED, "not SAX")
    elsewhere = index.upsert_stack("4.5.6", ["a"], "1x8x32x32", 8, StackState.WAITING)
    assert len({first, other, elsewhere}) == 3  # no shared series, or another study
    assert index.stack(other).reason == "not SAX"
    assert [s.id for s in index.stacks(STUDY)] == [first, other]
    assert [s.id for s in index.stacks()] == [first, other, elsewhere]
    assert index.stack(999) is None


# ---------------------------------------------------------------------------- jobs
def test_create_job_names_its_folder_after_its_id(index, request_):
    job = queued_job(index, request_, trigger="stable")
    assert isinstance(job, JobRow)
    assert job.state == JobState.PENDING and job.trigger == "stable"
    assert job.inputs_digest == "d1" and job.attempts == 0
    assert job.out_dir == request_.out_dir / f"job-{job.id}"
    assert job.request().out_dir == job.out_dir  # the stored request writes there too
    assert job.request().inputs == request_.inputs
    assert job.files is None and job.metrics is None and job.error is None
    assert job.started_at is None and job.finished_at is None


def test_a_new_job_supersedes_the_pending_one_of_its_stack(index, request_):
    first = queued_job(index, request_)
    other_stack = queued_job(index, request_, series="9.9")
    second = queued_job(index, request_, digest="d2")  # the same stack (it shares SERIES)
    assert second.stack_id == first.stack_id and second.id > first.id
    assert second.out_dir.name == f"job-{second.id}" != first.out_dir.name

    old = index.job(first.id)
    assert old.state == JobState.SUPERSEDED and old.finished_at is not None
    assert index.job(second.id).state == JobState.PENDING
    assert index.job(other_stack.id).state == JobState.PENDING  # another stack: untouched
    assert index.latest_job(first.stack_id).id == second.id
    assert [j.id for j in index.jobs(first.stack_id)] == [first.id, second.id]
    assert [j.id for j in index.jobs()] == [first.id, other_stack.id, second.id]
    assert index.latest_job(999) is None


def test_a_running_job_is_not_superseded_by_a_new_one(index, request_):
    first = queued_job(index, request_)
    index.claim_job()
    queued_job(index, request_, digest="d2")
    assert index.job(first.id).state == JobState.RUNNING


def test_unknown_jobs_raise(index):
    with pytest.raises(UnknownJobError):
        index.job(42)
    with pytest.raises(UnknownJobError):
        index.requeue_job(42)
    with pytest.raises(UnknownJobError):
        index.retry_exports(42)


def test_claim_takes_the_oldest_pending_job(index, request_):
    first = queued_job(index, request_)
    second = queued_job(index, request_, series="other")
    claimed = index.claim_job()
    assert claimed.id == first.id
    assert claimed.state == JobState.PENDING and claimed.attempts == 0  # as it was claimed
    running = index.job(first.id)
    assert running.state == JobState.RUNNING and running.attempts == 1
    assert running.started_at is not None
    assert index.claim_job().id == second.id
    assert index.claim_job() is None


def test_finish_job_records_files_metrics_and_queues_exports(index, request_):
    job = queued_job(index, request_)
    index.claim_job()
    files = [str(job.out_dir / "report.json"), str(job.out_dir / "sr.dcm")]
    assert index.finish_job(job.id, files, ["pacs", "archive"], {"peak_rss_mb": 12.5}) == []
    done = index.job(job.id)
    assert done.state == JobState.DONE and done.error is None
    assert done.files == tuple(Path(f) for f in files)
    assert all(isinstance(f, Path) for f in done.files)
    assert done.metrics == {"peak_rss_mb": 12.5} and done.finished_at is not None
    exports = index.exports(job.id)
    assert [e.destination for e in exports] == ["pacs", "archive"]
    for export in exports:
        assert isinstance(export, ExportRow)
        assert export.state == ExportState.PENDING and export.job_id == job.id
        assert (export.attempts, export.sent, export.delivered, export.last_error) == (
            0, 0, (), None)
    assert [e.id for e in index.due_exports(time.time() + 1)] == [e.id for e in exports]


def test_finish_job_with_an_early_export(index, request_):
    job = queued_job(index, request_)
    index.claim_job()
    index.finish_job(job.id, ["a.dcm", "b.dcm"], ["pacs", "other", "archive"], None,
                     {"pacs": ["a.dcm"], "other": ["a.dcm", "b.dcm"]}, complete=["other"])
    rows = {e.destination: e for e in index.exports(job.id)}
    assert (rows["pacs"].state, rows["pacs"].sent, rows["pacs"].delivered) == (
        ExportState.PENDING, 1, ("a.dcm",))
    assert (rows["other"].state, rows["other"].attempts, rows["other"].sent) == (
        ExportState.DONE, 1, 2)
    assert (rows["archive"].state, rows["archive"].delivered) == (ExportState.PENDING, ())
    assert index.job(job.id).metrics == {}
    assert [e.destination for e in index.due_exports(time.time() + 1)] == ["pacs", "archive"]


def test_finish_job_supersedes_older_done_and_failed_jobs(index, request_):
    first = done_job(index, request_, ["pacs", "archive"])
    pacs, archive = index.exports(first.id)
    index.update_export(pacs.id, ExportState.DEAD, error="down")
    index.update_export(archive.id, ExportState.DONE, sent=4)
    second = queued_job(index, request_, digest="d2")
    index.claim_job()
    index.fail_job(second.id, "boom")
    third = queued_job(index, request_, digest="d3")
    index.claim_job()

    superseded = index.finish_job(third.id, [], ["pacs"])
    assert [(j.id, j.state) for j in superseded] == [
        (first.id, JobState.DONE), (second.id, JobState.FAILED)]  # as they were
    assert all(isinstance(j, JobRow) for j in superseded)
    assert superseded[0].out_dir == first.out_dir
    assert index.job(first.id).state == index.job(second.id).state == JobState.SUPERSEDED
    states = {e.destination: e.state for e in index.exports(first.id)}
    assert states == {"pacs": ExportState.CANCELLED, "archive": ExportState.DONE}
    assert index.job(third.id).state == JobState.DONE


def test_fail_and_requeue(index, request_):
    job = queued_job(index, request_)
    index.requeue_job(job.id)  # not failed: nothing happens
    assert index.job(job.id).state == JobState.PENDING
    index.claim_job()
    index.fail_job(job.id, "RuntimeError: boom")
    failed = index.job(job.id)
    assert failed.state == JobState.FAILED and failed.error == "RuntimeError: boom"
    assert failed.finished_at is not None and failed.attempts == 1

    index.requeue_job(job.id)
    again = index.job(job.id)
    assert again.state == JobState.PENDING and again.error is None
    index.claim_job()
    assert index.job(job.id).attempts == 2


def test_recover_after_a_crash(index, request_):
    done = done_job(index, request_, ["pacs", "archive"])
    pacs, archive = index.exports(done.id)
    index.update_export(pacs.id, ExportState.SENDING, attempts=1)
    index.update_export(archive.id, ExportState.DONE, sent=1)
    running = queued_job(index, request_, series="other")
    index.claim_job()
    pending = queued_job(index, request_, series="third")

    before = time.time()
    assert index.recover() == (1, 1)
    assert index.job(running.id).state == JobState.PENDING  # runs again
    assert index.job(running.id).attempts == 1
    assert index.job(pending.id).state == JobState.PENDING
    assert index.job(done.id).state == JobState.DONE
    pacs = index.exports(done.id)[0]
    assert pacs.state == ExportState.RETRY and pacs.next_attempt_at >= before
    assert index.exports(done.id)[1].state == ExportState.DONE
    assert index.recover() == (0, 0)
    assert index.claim_job().id == running.id  # the oldest pending


# ------------------------------------------------------------------------- exports
def test_export_retries_then_dead_letter_then_retry(index, request_):
    job = done_job(index, request_, ["pacs", "archive"])
    pacs, archive = index.exports(job.id)
    now = time.time()

    index.update_export(pacs.id, ExportState.SENDING, attempts=1)
    assert [e.id for e in index.due_exports(now + 1)] == [archive.id]  # sending: not due
    index.update_export(pacs.id, ExportState.RETRY, next_attempt_at=now + 100, error="refused")
    row = index.exports(job.id)[0]
    assert (row.state, row.attempts, row.last_error) == (ExportState.RETRY, 1, "refused")
    assert row.next_attempt_at == now + 100
    assert [e.id for e in index.due_exports(now + 99)] == [archive.id]
    assert [e.id for e in index.due_exports(now + 100)] == [pacs.id, archive.id]

    index.update_export(pacs.id, ExportState.SENDING, attempts=2)
    index.update_export(pacs.id, ExportState.DEAD, error="still refused")
    row = index.exports(job.id)[0]
    assert (row.state, row.attempts, row.last_error) == (ExportState.DEAD, 2, "still refused")
    assert row.next_attempt_at == now + 100  # kept (COALESCE)
    assert pacs.id not in [e.id for e in index.due_exports(now + 1e6)]  # dead: never due

    index.update_export(archive.id, ExportState.SENDING, attempts=1)
    assert index.retry_exports(job.id) == 1  # the sending one is left alone
    row = index.exports(job.id)[0]
    assert (row.state, row.attempts, row.delivered) == (ExportState.PENDING, 0, ())
    assert row.next_attempt_at <= time.time()
    assert index.exports(job.id)[1].state == ExportState.SENDING
    index.update_export(archive.id, ExportState.DONE, sent=3)
    row = index.exports(job.id)[1]
    assert (row.state, row.sent, row.last_error) == (ExportState.DONE, 3, None)
    assert index.retry_exports(job.id) == 2  # done ones are sent again too
    assert [e.id for e in index.exports()] == [pacs.id, archive.id]


def test_retry_exports_forgets_what_was_delivered_early(index, request_):
    job = queued_job(index, request_)
    index.claim_job()
    index.finish_job(job.id, ["a.dcm"], ["pacs"], None, {"pacs": ["a.dcm"]})
    assert index.exports(job.id)[0].delivered == ("a.dcm",)
    index.retry_exports(job.id)
    assert index.exports(job.id)[0].delivered == ()


# ----------------------------------------------------------------------- retention
def test_purgeable_jobs_by_cutoff(index, request_):
    sent = done_job(index, request_, ["pacs"], series="s1")
    index.update_export(index.exports(sent.id)[0].id, ExportState.DONE, sent=1)
    done_job(index, request_, ["pacs"], series="s2")  # its export is pending
    dead = done_job(index, request_, ["pacs"], series="s3")
    index.update_export(index.exports(dead.id)[0].id, ExportState.DEAD, error="x")
    no_exports = done_job(index, request_, series="s4")
    failed = queued_job(index, request_, series="s5")
    index.claim_job()
    index.fail_job(failed.id, "boom")
    superseded = queued_job(index, request_, series="s6")
    queued_job(index, request_, series="s6", digest="d2")  # pending: never purgeable

    later = time.time() + 10
    ids = {j.id for j in index.purgeable_jobs(later)}
    assert ids == {sent.id, no_exports.id, superseded.id}
    assert all(isinstance(j, JobRow) for j in index.purgeable_jobs(later))
    assert index.purgeable_jobs(sent.finished_at - 1) == []  # finished after the cutoff

    index.forget_job_files(sent.id)
    assert index.job(sent.id).files == ()
    assert index.job(superseded.id).files is None  # never ran


def test_purgeable_series_by_cutoff(index, request_, tmp_path):
    index.add_instance(record(tmp_path, "1", series="skipped"), 5.0)
    index.set_series("skipped", STUDY, SeriesState.SKIPPED, "not a cine")
    index.add_instance(record(tmp_path, "2", series="analysed"), 5.0)
    job = done_job(index, request_, series="analysed")
    index.set_series("analysed", STUDY, SeriesState.STACKED, stack_id=job.stack_id)
    index.add_instance(record(tmp_path, "3", series="queued"), 5.0)
    queued = queued_job(index, request_, series="queued")
    index.set_series("queued", STUDY, SeriesState.STACKED, stack_id=queued.stack_id)
    index.add_instance(record(tmp_path, "4", series="undecided"), 5.0)
    later = time.time() + 10
    index.add_instance(record(tmp_path, "5", series="late", at=later + 1), 5.0)
    index.set_series("late", STUDY, SeriesState.SKIPPED, "not a cine")  # but received since

    purgeable = index.purgeable_series(later)
    assert {s.series_uid for s in purgeable} == {"skipped", "analysed"}
    assert all(isinstance(s, SeriesRow) for s in purgeable)
    assert index.purgeable_series(time.time() - 3600) == []  # decided after the cutoff

    index.forget_instances(["1"], "skipped")
    assert index.series_instances("skipped") == [] and index.instance("1") is None
    assert index.series("skipped").state == SeriesState.PURGED
    assert {s.series_uid for s in index.purgeable_series(later)} == {"analysed"}


# -------------------------------------------------------------------------- status
def test_summary_of_an_empty_index(index):
    summary = index.summary()
    assert isinstance(summary, IndexSummary)
    assert summary.instances == InstanceTotals(0, 0, 0, 0, None)
    assert summary.jobs == {} and summary.failed_jobs == ()
    assert summary.as_dict()["instances"] == {
        "instances": 0, "bytes": 0, "studies": 0, "series": 0, "last_received": None}


def test_summary_counts_and_problems(index, request_, tmp_path):
    index.add_instance(record(tmp_path, "1", size=100, at=10.0), 5.0)
    index.add_instance(record(tmp_path, "1", size=120, at=20.0), 5.0)  # a duplicate
    index.add_instance(record(tmp_path, "2", series="seg", size=30, at=15.0), 5.0)
    index.add_instance(record(tmp_path, "3", study="4.5.6", series="x", size=1, at=5.0), 5.0)
    index.set_series("seg", STUDY, SeriesState.SKIPPED, "not MR images (SEG)")
    done = done_job(index, request_, ["pacs", "archive"])
    index.update_export(index.exports(done.id)[0].id, ExportState.DEAD, error="refused")
    failed = queued_job(index, request_, series="x", study="4.5.6")
    index.claim_job()
    index.fail_job(failed.id, "boom\ntraceback")

    summary = index.summary()
    assert summary.instances == InstanceTotals(
        instances=3, bytes=151, studies=2, series=3, last_received=20.0)
    assert summary.series == {"received": 2, "skipped": 1}
    assert summary.stacks == {"done": 1, "failed": 1}  # each stack says how its job went
    assert summary.jobs == {"done": 1, "failed": 1}
    assert summary.exports == {"dead": 1, "pending": 1}
    [skipped] = summary.skipped_series
    assert isinstance(skipped, SeriesRow) and skipped.reason == "not MR images (SEG)"
    [job] = summary.failed_jobs
    assert isinstance(job, JobRow) and (job.id, job.error) == (failed.id, "boom\ntraceback")
    [dead] = summary.dead_exports
    assert isinstance(dead, ExportRow) and dead.destination == "pacs"

    report = json.loads(json.dumps(summary.as_dict()))  # what `cinestrain status --json` prints
    assert list(report) == ["instances", "series", "stacks", "jobs", "exports",
                            "skipped_series", "failed_jobs", "dead_exports"]
    assert report["skipped_series"] == [
        {"series_uid": "seg", "study_uid": STUDY, "reason": "not MR images (SEG)"}]
    assert report["failed_jobs"] == [{"id": failed.id, "stack_id": failed.stack_id,
                                      "error": "boom\ntraceback",
                                      "finished_at": index.job(failed.id).finished_at}]
    assert report["dead_exports"] == [{"id": dead.id, "job_id": done.id, "destination": "pacs",
                                       "attempts": 0, "last_error": "refused"}]


# ------------------------------------------------------------------------- records
def test_records_are_frozen_and_typed(index, request_, tmp_path):
    index.add_instance(record(tmp_path, "1"), 5.0)
    job = done_job(index, request_, ["pacs"])
    rows = [index.instance("1"), index.study(STUDY), index.series(SERIES),
            index.stack(job.stack_id), job, index.exports(job.id)[0]]
    for row in rows:
        assert dataclasses.is_dataclass(row)
        with pytest.raises(dataclasses.FrozenInstanceError):
            row.updated_at = 0.0
    stack, export = rows[3], rows[5]
    assert isinstance(stack.state, StackState) and isinstance(stack.series_uids, tuple)
    assert isinstance(job.state, JobState) and isinstance(job.out_dir, Path)
    assert isinstance(job.request(), AnalysisRequest)
    assert isinstance(export.state, ExportState) and isinstance(export.delivered, tuple)
    # states compare (and print) as the names the index stores
    assert job.state == "done" and f"{export.state}" == "pending"


def test_the_stored_format_is_unchanged(tmp_path, request_):
    """What the index writes is still JSON text and state names (older releases read it)."""
    path = tmp_path / "index.sqlite"
    index = Index(path)
    try:
        job = queued_job(index, request_)
        index.claim_job()
        index.finish_job(job.id, ["a.dcm"], ["pacs"], {"cpu_s": 1.0}, {"pacs": ["a.dcm"]})
    finally:
        index.close()
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        raw_job = db.execute("SELECT * FROM jobs").fetchone()
        raw_stack = db.execute("SELECT * FROM stacks").fetchone()
        raw_export = db.execute("SELECT * FROM exports").fetchone()
    assert raw_job["state"] == "done" and raw_job["out_dir"] == str(job.out_dir)
    assert AnalysisRequest.from_json(raw_job["request"]).out_dir == job.out_dir
    assert json.loads(raw_job["files"]) == ["a.dcm"]
    assert json.loads(raw_job["metrics"]) == {"cpu_s": 1.0}
    assert json.loads(raw_stack["series_uids"]) == [SERIES] and raw_stack["state"] == "done"
    assert json.loads(raw_export["delivered"]) == ["a.dcm"] and raw_export["state"] == "pending"
    reopened = Index(path)
    try:
        assert reopened.job(job.id).files == (Path("a.dcm"),)
    finally:
        reopened.close()


def test_an_index_of_an_older_version_opens(tmp_path, request_):
    """An index created before ``metrics``, ``calling_host`` and ``delivered`` existed."""
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as db:
        db.executescript("""
            CREATE TABLE instances (sop_instance_uid TEXT PRIMARY KEY, sop_class_uid TEXT
              NOT NULL, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL, path TEXT NOT NULL,
              size INTEGER NOT NULL, transfer_syntax TEXT, calling_ae TEXT,
              received_at REAL NOT NULL, copies INTEGER NOT NULL DEFAULT 1);
            CREATE TABLE jobs (id INTEGER PRIMARY KEY, stack_id INTEGER NOT NULL,
              state TEXT NOT NULL, trigger TEXT, inputs_digest TEXT NOT NULL,
              request TEXT NOT NULL, out_dir TEXT NOT NULL, attempts INTEGER NOT NULL
              DEFAULT 0, error TEXT, files TEXT, created_at REAL NOT NULL, started_at REAL,
              finished_at REAL);
            CREATE TABLE exports (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL,
              destination TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL
              DEFAULT 0, next_attempt_at REAL NOT NULL, last_error TEXT, sent INTEGER NOT NULL
              DEFAULT 0, created_at REAL NOT NULL, updated_at REAL NOT NULL);
        """)
        db.execute("INSERT INTO instances VALUES ('1', '1.2', ?, ?, '/spool/1.dcm', 5, NULL,"
                   " 'SCANNER', 50.0, 1)", (STUDY, SERIES))
        db.execute("INSERT INTO jobs VALUES (1, 1, 'done', 'stable', 'd', ?, '/r/job-1', 1,"
                   " NULL, '[\"/r/job-1/a.dcm\"]', 1.0, 2.0, 3.0)",
                   (request_.in_folder(Path("/r/job-1")).to_json(),))
        db.execute("INSERT INTO exports VALUES (1, 1, 'pacs', 'dead', 4, 9.0, 'down', 0, 1.0,"
                   " 9.0)")
        db.commit()
    index = Index(path)
    try:
        row = index.instance("1")
        assert row.calling_host is None and row.transfer_syntax is None
        assert row.path == Path("/spool/1.dcm")
        job = index.job(1)
        assert job.metrics is None and job.files == (Path("/r/job-1/a.dcm"),)
        assert job.out_dir == Path("/r/job-1") == job.request().out_dir
        [export] = index.exports(1)
        assert export.delivered == () and export.state == ExportState.DEAD
        assert index.summary().dead_exports == (export,)
    finally:
        index.close()


# -------------------------------------------------------------- stacks follow jobs
def test_a_stack_says_how_its_newest_job_went(index, request_):
    job = queued_job(index, request_)
    assert index.stack(job.stack_id).state == StackState.QUEUED
    index.claim_job()
    assert index.stack(job.stack_id).state == StackState.QUEUED  # running
    index.fail_job(job.id, "ValueError: no LV found\ntraceback")
    stack = index.stack(job.stack_id)
    assert (stack.state, stack.reason) == (StackState.FAILED, "ValueError: no LV found")
    index.requeue_job(job.id)
    assert (index.stack(job.stack_id).state, index.stack(job.stack_id).reason) == (
        StackState.QUEUED, None)
    index.claim_job()
    index.finish_job(job.id, ["report.json"], [])
    assert index.stack(job.stack_id).state == StackState.DONE


def test_a_stack_with_a_newer_job_stays_queued_when_the_older_one_finishes(index, request_):
    first = queued_job(index, request_)
    index.claim_job()  # running: a late slice makes a newer job meanwhile
    newer = index.create_job(first.stack_id, "d2", request_, "complete")
    index.finish_job(first.id, [], [])
    assert index.stack(first.stack_id).state == StackState.QUEUED
    index.claim_job()
    index.finish_job(newer, [], [])
    assert index.stack(first.stack_id).state == StackState.DONE


def test_a_waiting_or_skipped_stack_keeps_its_state(index, request_):
    job = done_job(index, request_)
    index.upsert_stack(STUDY, [SERIES], "2x8x32x32", 16, StackState.WAITING)  # it grows
    assert index.settle_stack(job.stack_id) == StackState.WAITING
    index.upsert_stack(STUDY, [SERIES], "2x8x32x32", 16, StackState.SKIPPED, "why")
    assert index.settle_stack(job.stack_id) == StackState.SKIPPED
    index.upsert_stack(STUDY, [SERIES], "2x8x32x32", 16, StackState.QUEUED)  # same inputs
    assert index.settle_stack(job.stack_id) == StackState.DONE


def test_start_up_settles_stacks_an_earlier_release_left_queued(tmp_path, request_):
    path = tmp_path / "index.sqlite"
    index = Index(path)
    job = done_job(index, request_)
    with index._tx() as db:  # as an earlier release left it
        db.execute("UPDATE stacks SET state = 'queued'")
    index.recover()
    assert index.stack(job.stack_id).state == StackState.DONE
    index.close()


# ---------------------------------------------------------- queueing exports again
def test_queue_exports_adds_destinations_added_later(index, request_):
    job = done_job(index, request_, ["pacs"], series="s1")
    [pacs] = index.exports(job.id)
    index.update_export(pacs.id, ExportState.DEAD, attempts=9, error="refused")
    queued, busy = index.queue_exports(job.id, ["pacs", "orthanc", "pacs"])
    assert (queued, busy) == (["pacs", "orthanc"], [])
    rows = {e.destination: e for e in index.exports(job.id)}
    assert set(rows) == {"pacs", "orthanc"}  # one row per destination, no duplicate
    assert rows["pacs"].id == pacs.id
    for row in rows.values():
        assert (row.state, row.attempts, row.last_error, row.delivered) == (
            ExportState.PENDING, 0, None, ())
        assert row.next_attempt_at <= time.time()
    assert {e.destination for e in index.due_exports(time.time())} == {"pacs", "orthanc"}

    index.update_export(rows["orthanc"].id, ExportState.SENDING, attempts=1)
    assert index.queue_exports(job.id, ["orthanc", "pacs"]) == (["pacs"], ["orthanc"])
    assert index.exports(job.id)[1].state == ExportState.SENDING  # left alone
    other = done_job(index, request_, ["pacs"], series="s2")
    assert [e.destination for e in index.exports(other.id)] == ["pacs"]  # not touched
    with pytest.raises(UnknownJobError):
        index.queue_exports(999, ["pacs"])


# -------------------------------------------------------------------- read-only
def test_a_read_only_index_reads_and_writes_nothing(tmp_path, request_):
    path = tmp_path / "index.sqlite"
    writer = Index(path)
    job = done_job(writer, request_, ["pacs"])
    writer.close()
    before = path.read_bytes()
    reader = Index(path, read_only=True)
    try:
        assert reader.job(job.id) == job
        assert reader.summary().jobs == {"done": 1}
        [detail] = reader.recent_jobs()
        assert detail.job == job and [e.destination for e in detail.exports] == ["pacs"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader.fail_job(job.id, "no")
    finally:
        reader.close()
    assert path.read_bytes() == before


def test_a_read_only_index_needs_the_file_and_this_release_s_columns(tmp_path):
    from cinestrain.node.index import IndexReadOnlyError

    with pytest.raises(IndexReadOnlyError, match="no index at"):
        Index(tmp_path / "none.sqlite", read_only=True)
    assert not (tmp_path / "none.sqlite").exists()
    old = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(old)) as db:  # a release before exports.delivered
        db.execute("CREATE TABLE exports (id INTEGER PRIMARY KEY, job_id INTEGER)")
    with pytest.raises(IndexReadOnlyError, match="exports.delivered"):
        Index(old, read_only=True)


def test_job_detail_as_dict(index, request_, tmp_path):
    job = done_job(index, request_, ["pacs"])
    job.out_dir.mkdir(parents=True)
    index.update_export(index.exports(job.id)[0].id, ExportState.DONE, attempts=1, sent=3)
    short = index.job_detail(job.id).as_dict()
    assert (short["id"], short["state"], short["stack_state"]) == (job.id, "done", "done")
    assert (short["study_uid"], short["series_uids"]) == (STUDY, [SERIES])
    assert short["results"] == str(job.out_dir) and short["results_exist"]
    assert short["file_count"] == 1 and "request" not in short
    assert short["finished"].startswith(time.strftime("%Y-")) and "T" in short["finished"]
    assert short["finished"][-6] in "+-"  # local time with its UTC offset
    [export] = short["exports"]
    assert {k: export[k] for k in ("destination", "state", "attempts", "sent")} == {
        "destination": "pacs", "state": "done", "attempts": 1, "sent": 3}
    full = json.loads(json.dumps(index.job_detail(job.id).as_dict(full=True)))
    assert full["request"]["inputs"] == len(request_.inputs)
    assert full["request"]["model"]["temporal"] == request_.model.temporal
    assert full["files"] == [str(job.out_dir / "report.json")]
    with pytest.raises(UnknownJobError):
        index.job_detail(999)


def test_a_stack_the_analysis_refuses_is_recorded_as_skipped_with_the_reason(index, request_):
    """The worker ran the job but the stack could not be analysed (its report.json says
    why, with no numbers): the job is done, the stack skipped with the reason."""
    job = queued_job(index, request_)
    index.claim_job()
    index.finish_job(job.id, ["report.json"], [], refused="nothing analysable: one slice")
    stack = index.stack(job.stack_id)
    assert (stack.state, stack.reason) == (StackState.SKIPPED, "nothing analysable: one slice")
    assert index.job(job.id).state == JobState.DONE
