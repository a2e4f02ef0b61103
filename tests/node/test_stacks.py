"""Received series become stacks and jobs: complete, stable, late slices, non-cine series."""

from __future__ import annotations

import time

import pytest
from pydicom import dcmread

from cinestrain.node.scheduler import StackTracker
from cinestrain.node.states import JobState, SeriesState, StackState
from cinestrain.node.worker import Dispatcher
from tests.node.conftest import last_received, phantom_files, push_parallel, storescu

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")


def tracker_of(receiver) -> StackTracker:
    return StackTracker(receiver.cfg, receiver.index, receiver.cfg.storage.directory / "results")


def test_parallel_random_push_becomes_one_complete_job(receiver, phantom_dir):
    series = phantom_files(phantom_dir)
    assert len(series) == 3
    files = [p for paths in series.values() for p in paths]
    push_parallel(receiver.cfg, [*files, phantom_dir / "seg" / "seg.dcm"])
    tracker = tracker_of(receiver)
    rules = receiver.cfg.scheduler
    last = last_received(receiver)

    tracker.tick(now=last + rules.complete_grace_seconds / 2)  # too early: nothing decided
    assert receiver.index.jobs() == []
    tracker.tick(now=last + rules.complete_grace_seconds + 0.01)  # complete + grace
    jobs = receiver.index.jobs()
    assert len(jobs) == 1 and jobs[0].state == JobState.PENDING
    assert jobs[0].trigger == "complete"
    request = jobs[0].request()
    assert len(request.inputs) == 24
    assert {dcmread(p, stop_before_pixels=True).SeriesInstanceUID
            for p in request.inputs} == set(series)
    assert request.out_dir.name == f"job-{jobs[0].id}" and request.out_dir == jobs[0].out_dir
    [stack] = receiver.index.stacks()
    assert stack.state == StackState.QUEUED and stack.shape == "3x8x64x64"
    seg_uid = dcmread(phantom_dir / "seg" / "seg.dcm", stop_before_pixels=True).SeriesInstanceUID
    seg = receiver.index.series(seg_uid)
    assert seg.state == SeriesState.SKIPPED and "not MR images" in seg.reason

    tracker.tick(now=last + 3600)  # nothing new: no second job
    assert len(receiver.index.jobs()) == 1


def test_late_slice_makes_a_new_job_that_replaces_the_first(receiver, phantom_dir):
    series = list(phantom_files(phantom_dir).values())
    tracker = tracker_of(receiver)
    assert storescu(receiver.cfg, *series[0], *series[1]).returncode == 0
    tracker.tick(now=last_received(receiver) + 1.0)
    [first] = receiver.index.jobs()
    assert len(first.request().inputs) == 16
    assert receiver.index.claim_job().id == first.id
    receiver.index.finish_job(first.id, [], [])

    assert storescu(receiver.cfg, *series[2]).returncode == 0  # the late slice
    tracker.tick(now=last_received(receiver) + 1.0)
    jobs = receiver.index.jobs()
    assert len(jobs) == 2 and jobs[1].state == JobState.PENDING
    request = jobs[1].request()
    assert len(request.inputs) == 24
    assert len(receiver.index.stacks()) == 1  # the same stack, grown
    # result UIDs still derive from the first job's series: a PACS replaces, not adds
    assert request.uid_series == first.request().uid_series
    assert len(request.uid_series) == 2
    old_results = first.out_dir
    old_results.mkdir(parents=True)
    (old_results / "sr_report.dcm").write_bytes(b"old")
    receiver.index.claim_job()
    Dispatcher(receiver.cfg, receiver.index)._done(jobs[1].id, {"files": []})
    assert receiver.index.job(first.id).state == JobState.SUPERSEDED
    assert not old_results.exists()  # the earlier results are gone from the node


def test_incomplete_series_waits_then_is_stable_or_skipped(receiver, phantom_dir):
    series = list(phantom_files(phantom_dir).values())
    tracker = tracker_of(receiver)
    rules = receiver.cfg.scheduler
    # two whole slices, and three phases of another (an interrupted push)
    assert storescu(receiver.cfg, *series[0], *series[2], *series[1][:3]).returncode == 0
    last = last_received(receiver)
    tracker.tick(now=last + rules.complete_grace_seconds + 0.01)
    assert receiver.index.jobs() == []  # the partial slice keeps the study waiting
    study_uid = dcmread(series[0][0], stop_before_pixels=True).StudyInstanceUID
    study = receiver.index.study(study_uid)
    assert study.next_scan_at == pytest.approx(last + rules.series_stable_seconds)

    tracker.tick(now=last + rules.series_stable_seconds + 0.01)
    [job] = receiver.index.jobs()
    assert job.trigger == "complete"  # the whole slices, by themselves
    assert len(job.request().inputs) == len(series[0]) + len(series[2])
    partial = dcmread(series[1][0], stop_before_pixels=True).SeriesInstanceUID
    row = receiver.index.series(partial)
    assert row.state == SeriesState.SKIPPED and "phase" in row.reason.lower()
    assert receiver.index.study(study_uid).next_scan_at is None


def test_study_is_not_scanned_while_instances_arrive(receiver, phantom_dir):
    series = list(phantom_files(phantom_dir).values())
    assert storescu(receiver.cfg, *series[0]).returncode == 0
    tracker_of(receiver).tick(now=time.time() - 60)
    assert receiver.index.jobs() == [] and receiver.index.stacks() == []


def test_non_cine_series_are_recorded_as_skipped_with_a_reason(receiver, make_study, tmp_path):
    """A transverse (not short-axis) cine and a single localizer image: no job, each
    series skipped with why (``cinestrain status`` lists them)."""
    from cinestrain.inference.phantom.scanner import write_cine_classic

    axial = write_cine_classic(
        make_study(n_slices=2, n_phases=8, orientation=[1.0, 0, 0, 0, 1.0, 0]),
        tmp_path / "axial", per_slice_series=True)
    localizer = write_cine_classic(make_study(n_slices=1, n_phases=1), tmp_path / "loc")
    assert storescu(receiver.cfg, *axial, *localizer).returncode == 0
    rules = receiver.cfg.scheduler
    tracker_of(receiver).tick(now=last_received(receiver) + rules.series_stable_seconds + 1)
    assert receiver.index.jobs() == []
    reasons = {}
    for path in (*axial, *localizer):
        uid = dcmread(path, stop_before_pixels=True).SeriesInstanceUID
        row = receiver.index.series(uid)
        assert row.state == SeriesState.SKIPPED, row
        reasons[uid] = row.reason
    assert any("not a short-axis stack" in r for r in reasons.values()), reasons
    loc = dcmread(localizer[0], stop_before_pixels=True).SeriesInstanceUID
    assert "phase" in reasons[loc].lower(), reasons[loc]
    assert receiver.index.summary().skipped_series
