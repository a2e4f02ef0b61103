"""Retention: processed inputs and results go after ``storage.retention_days``; nothing
unprocessed (undecided series, failed jobs, unsent results) ever does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread

from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.records import JobRow
from cinestrain.node.scheduler import StackTracker, purge_expired
from cinestrain.node.states import JobState, SeriesState
from tests.node.conftest import last_received, storescu

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")

DAY = 86400.0


def _finish(receiver, job: JobRow, destinations: list[str]) -> Path:
    """Run a job's bookkeeping as the worker would, with one result file written."""
    out = job.request().out_dir
    out.mkdir(parents=True)
    (out / "report.json").write_text("{}")
    receiver.index.claim_job()
    receiver.index.finish_job(job.id, [str(out / "report.json")], destinations)
    return out


def test_only_processed_inputs_and_sent_results_are_purged(receiver, phantom_dir, make_study,
                                                           tmp_path):
    cfg = receiver.cfg
    days = cfg.storage.retention_days
    tracker = StackTracker(cfg, receiver.index, cfg.storage.directory / "results")
    # study A: a cine (analysed) and its SEG (a non-cine series: skipped)
    assert storescu(cfg, *sorted((phantom_dir / "dicom").iterdir()),
                    phantom_dir / "seg" / "seg.dcm", extra=("-R",)).returncode == 0
    tracker.tick(now=last_received(receiver) + cfg.scheduler.series_stable_seconds + 1)
    [job] = receiver.index.jobs()
    results = _finish(receiver, job, [])
    seg_series = dcmread(phantom_dir / "seg" / "seg.dcm").SeriesInstanceUID
    assert receiver.index.series(seg_series).state == SeriesState.SKIPPED
    # study B: received, never decided (its quiet period has not passed)
    other = write_cine_classic(make_study(n_slices=1, n_phases=8), tmp_path / "b")
    assert storescu(cfg, *other).returncode == 0
    a_files = set(job.request().inputs)
    b_files = set(receiver.spooled()) - a_files - {
        r.path for r in receiver.index.series_instances(seg_series)}

    assert purge_expired(cfg, receiver.index, receiver.spool, now=time.time()) == 0  # too soon
    removed = purge_expired(cfg, receiver.index, receiver.spool,
                            now=time.time() + (days + 1) * DAY)
    assert removed == 1 + len(a_files) + 1  # the results folder, the cine, the SEG
    assert not results.exists()
    assert set(receiver.spooled()) == b_files and len(b_files) == 8  # B untouched
    assert receiver.index.series(seg_series).state == SeriesState.PURGED
    assert receiver.index.job(job.id).files == ()


def test_failed_jobs_and_unsent_results_are_kept(receiver, phantom_dir):
    cfg = receiver.cfg
    tracker = StackTracker(cfg, receiver.index, cfg.storage.directory / "results")
    assert storescu(cfg, *sorted((phantom_dir / "dicom").iterdir())).returncode == 0
    tracker.tick(now=last_received(receiver) + cfg.scheduler.series_stable_seconds + 1)
    [job] = receiver.index.jobs()
    spooled = receiver.spooled()
    later = time.time() + (cfg.storage.retention_days + 1) * DAY

    receiver.index.claim_job()
    receiver.index.fail_job(job.id, "boom")
    assert purge_expired(cfg, receiver.index, receiver.spool, now=later) == 0
    assert receiver.spooled() == spooled  # a failed job keeps its inputs

    receiver.index.requeue_job(job.id)
    results = _finish(receiver, receiver.index.job(job.id), ["pacs"])  # export pending
    purge_expired(cfg, receiver.index, receiver.spool, now=later)
    assert results.exists() and receiver.index.job(job.id).state == JobState.DONE
