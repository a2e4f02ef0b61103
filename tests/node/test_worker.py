"""The worker's handling of a job it cannot start."""

from __future__ import annotations

import time

from cinestrain.node.index import Index
from cinestrain.node.states import INDEX_FILE, JobState
from cinestrain.node.worker import Dispatcher
from tests.node.conftest import results_request


def test_an_unreadable_stored_request_fails_its_job_with_the_reason(make_config) -> None:
    """A request this release cannot read (e.g. written by a newer one) fails that job
    with the reason; the job is not left 'running' and no worker process is started."""
    cfg = make_config(worker={"keep_warm": False})
    index = Index(cfg.storage.directory / INDEX_FILE)
    stack_id = index.upsert_stack("1.2.3", ["1.2.3.4"], "1x8x32x32", 8, "queued")
    job_id = index.create_job(stack_id, "digest", results_request(cfg), "complete")
    with index._tx() as db:
        db.execute("UPDATE jobs SET request = ? WHERE id = ?", ('{"inputs": 3}', job_id))
    dispatcher = Dispatcher(cfg, index)
    dispatcher.poll()
    deadline = time.monotonic() + 30
    while index.job(job_id).state != JobState.FAILED and time.monotonic() < deadline:
        time.sleep(0.05)
    job = index.job(job_id)
    assert job.state == JobState.FAILED
    assert job.error is not None and job.error.startswith("unreadable job request")
    assert dispatcher.busy == 0
    index.close()
