"""The scheduler's decisions, driven tick by tick: when a received stack waits, when it
becomes a job (and by which rule), a grown stack replacing its earlier job, stacks and
series skipped with their reason, no second job for the same instances.

Real DICOM files (the synthetic scanner) are recorded in a real index as the C-STORE
handler records them, with the arrival times the test chooses; :meth:`StackTracker.tick`
is called with ``now`` (no APScheduler thread, no sleeping).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread

from cinestrain.config import NodeConfig
from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.index import Index, InstanceRecord
from cinestrain.node.readiness import StackCandidate, assess_study, inputs_digest, readiness
from cinestrain.node.scheduler import StackTracker
from cinestrain.node.states import JobState, SeriesState, StackState

#: scheduler rules of these tests (seconds)
GRACE = 10.0
STABLE = 60.0
#: when the instances of a test arrive
T0 = 1_000_000.0
#: the axes of a transverse (not short-axis) stack
AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@dataclass
class Node:
    """The parts of a node the scheduler's decisions involve."""

    cfg: NodeConfig
    index: Index
    tracker: StackTracker
    results: Path

    @property
    def scan_delay_s(self) -> float:
        """As the node's C-STORE handler is configured (``service.Node``)."""
        rules = self.cfg.scheduler
        return min(rules.complete_grace_seconds, rules.series_stable_seconds)

    def receive(self, paths: Iterable[Path], at: float) -> None:
        """Record instances as the C-STORE handler does, all arriving at ``at``."""
        for path in paths:
            ds = dcmread(path, stop_before_pixels=True)
            self.index.add_instance(InstanceRecord(
                sop_instance_uid=str(ds.SOPInstanceUID), sop_class_uid=str(ds.SOPClassUID),
                study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID),
                path=path, size=path.stat().st_size,
                transfer_syntax=str(ds.file_meta.TransferSyntaxUID), calling_ae="STORESCU",
                received_at=at,
            ), self.scan_delay_s)


@pytest.fixture
def node(make_config, tmp_path) -> Iterator[Node]:
    cfg = make_config(scheduler={"complete_grace_seconds": GRACE,
                                 "series_stable_seconds": STABLE})
    index = Index(tmp_path / "index.sqlite")
    results = tmp_path / "results"
    yield Node(cfg, index, StackTracker(cfg, index, results), results)
    index.close()


def series_of(paths: Iterable[Path]) -> list[str]:
    """The series UIDs of files, sorted."""
    return sorted({str(dcmread(p, stop_before_pixels=True).SeriesInstanceUID) for p in paths})


def study_of(paths: list[Path]) -> str:
    return str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)


def without_cardiac_number_of_images(paths: list[Path]) -> list[Path]:
    """Files of a scanner that does not say how many phases a slice has."""
    for path in paths:
        ds = dcmread(path)
        del ds.CardiacNumberOfImages
        ds.save_as(path)
    return paths


# --------------------------------------------------------------------- the rules
def candidate(complete: bool) -> StackCandidate:
    return StackCandidate(series_uids=("1.2",), paths=(Path("a.dcm"),),
                          sop_instance_uids=("1.2.1",), shape="1x8x32x32", complete=complete,
                          problem=None)


def test_readiness_complete_after_the_grace_stable_after_the_quiet_period(node):
    rules = node.cfg.scheduler
    assert readiness(candidate(True), GRACE - 0.01, rules) is None
    assert readiness(candidate(True), GRACE, rules) == "complete"
    assert readiness(candidate(True), STABLE + 1, rules) == "complete"
    assert readiness(candidate(False), GRACE, rules) is None
    assert readiness(candidate(False), STABLE - 0.01, rules) is None
    assert readiness(candidate(False), STABLE, rules) == "stable"


def test_the_inputs_digest_names_a_set_of_instances():
    assert inputs_digest(["b", "a"]) == inputs_digest(("a", "b"))  # the order does not count
    assert inputs_digest(["a", "b", "c"]) != inputs_digest(["a", "b"])
    assert candidate(True).digest == inputs_digest(["1.2.1"])


def test_assessment_of_complete_and_incomplete_stacks(make_study, tmp_path):
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "a")
    [stack] = assess_study(paths).candidates
    assert stack.complete and stack.problem is None and stack.shape == "2x8x32x32"
    assert stack.paths == tuple(sorted(paths)) and len(stack.sop_instance_uids) == 16
    [stack] = assess_study(without_cardiac_number_of_images(paths)).candidates
    assert not stack.complete and stack.problem is None


# ------------------------------------------------------------------ ticks: waiting
def test_a_study_is_not_looked_at_while_instances_arrive(node, make_study, tmp_path):
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "in")
    node.receive(paths[:8], T0)
    node.tracker.tick(now=T0 + GRACE - 1)
    assert node.index.stacks() == [] and node.index.jobs() == []
    node.receive(paths[8:], T0 + 5)  # the next slice: the quiet period starts again
    node.tracker.tick(now=T0 + GRACE + 1)
    assert node.index.stacks() == [] and node.index.jobs() == []
    assert node.index.study(study_of(paths)).next_scan_at == T0 + 5 + GRACE


def test_a_complete_stack_becomes_a_job_after_the_grace_period(node, make_study, tmp_path):
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "in")
    node.receive(paths, T0)
    node.tracker.tick(now=T0 + GRACE)
    [job] = node.index.jobs()
    assert job.state == JobState.PENDING and job.trigger == "complete"
    [stack] = node.index.stacks()
    assert (stack.state, stack.shape, stack.n_instances) == (StackState.QUEUED, "2x8x32x32", 16)
    assert job.stack_id == stack.id
    [series] = stack.series_uids
    assert node.index.series(series).state == SeriesState.STACKED
    assert node.index.series(series).stack_id == stack.id
    request = job.request()
    assert request.inputs == tuple(sorted(paths))
    assert request.series_instance_uid == series and request.uid_series == (series,)
    assert job.out_dir == node.results / f"job-{job.id}" == request.out_dir
    assert node.index.study(study_of(paths)).next_scan_at is None  # nothing left to decide
    assert node.index.due_studies(T0 + 3600) == []


def test_an_incomplete_stack_waits_for_the_quiet_period(node, make_study, tmp_path):
    """A stack whose series do not say how many phases they have is never complete: it
    waits until no instance arrived for ``series_stable_seconds``."""
    paths = without_cardiac_number_of_images(
        write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "in"))
    node.receive(paths, T0)
    node.tracker.tick(now=T0 + GRACE)
    assert node.index.jobs() == []
    [stack] = node.index.stacks()
    assert stack.state == StackState.WAITING and stack.n_instances == 16
    assert node.index.series(stack.series_uids[0]).state == SeriesState.RECEIVED
    study = node.index.study(study_of(paths))
    assert study.next_scan_at == T0 + STABLE  # looked at again when stable

    node.tracker.tick(now=T0 + STABLE - 1)  # not due yet
    assert node.index.jobs() == []
    node.tracker.tick(now=T0 + STABLE)
    [job] = node.index.jobs()
    assert job.trigger == "stable" and job.stack_id == stack.id
    assert node.index.stack(stack.id).state == StackState.QUEUED
    assert node.index.study(study.study_uid).next_scan_at is None


def test_a_partial_series_holds_the_study_then_is_skipped(node, make_study, tmp_path):
    """Two whole slices and three phases of another (an interrupted push): while the study
    is not stable the partial series may still grow into the stack, so nothing is queued;
    once stable it is skipped and the whole slices are a job by themselves."""
    paths = write_cine_classic(make_study(n_slices=3, n_phases=8), tmp_path / "in",
                               per_slice_series=True)
    whole, partial = series_of(paths[:16]), series_of(paths[16:])
    node.receive(paths[:16] + paths[16:19], T0)
    node.tracker.tick(now=T0 + GRACE)
    assert node.index.jobs() == []
    [stack] = node.index.stacks()
    assert stack.state == StackState.WAITING and list(stack.series_uids) == whole
    assert node.index.series(partial[0]).state == SeriesState.RECEIVED
    assert node.index.study(study_of(paths)).next_scan_at == T0 + STABLE

    node.tracker.tick(now=T0 + STABLE)
    [job] = node.index.jobs()
    assert job.trigger == "complete" and len(job.request().inputs) == 16
    row = node.index.series(partial[0])
    assert row.state == SeriesState.SKIPPED and "3 phase(s) per slice" in row.reason
    assert node.index.series(whole[0]).state == SeriesState.STACKED


# ------------------------------------------------------------- ticks: grown stacks
def test_a_late_slice_supersedes_the_pending_job_keeping_its_uid_series(node, make_study,
                                                                       tmp_path):
    paths = write_cine_classic(make_study(n_slices=3, n_phases=8), tmp_path / "in",
                               per_slice_series=True)
    node.receive(paths[:16], T0)
    node.tracker.tick(now=T0 + GRACE)
    [first] = node.index.jobs()
    assert first.request().uid_series == tuple(series_of(paths[:16]))

    node.receive(paths[16:], T0 + 30)  # the late slice, before the job ran
    node.tracker.tick(now=T0 + 30 + GRACE)
    old, new = node.index.jobs()
    assert old.id == first.id and old.state == JobState.SUPERSEDED
    assert new.state == JobState.PENDING and new.stack_id == first.stack_id
    assert len(new.request().inputs) == 24 and new.inputs_digest != first.inputs_digest
    # result UIDs still derive from the first job's series: a PACS replaces, not adds
    assert new.request().uid_series == first.request().uid_series
    [stack] = node.index.stacks()
    assert stack.n_instances == 24 and list(stack.series_uids) == series_of(paths)
    assert all(node.index.series(uid).stack_id == stack.id for uid in series_of(paths))
    assert node.index.claim_job().id == new.id  # the superseded job never runs


def test_a_late_slice_after_a_done_job_replaces_it_when_the_new_job_is_done(
        node, make_study, tmp_path):
    paths = write_cine_classic(make_study(n_slices=3, n_phases=8), tmp_path / "in",
                               per_slice_series=True)
    node.receive(paths[:16], T0)
    node.tracker.tick(now=T0 + GRACE)
    first = node.index.claim_job()
    node.index.finish_job(first.id, [], [])

    node.receive(paths[16:], T0 + 600)
    node.tracker.tick(now=T0 + 600 + GRACE)
    old, new = node.index.jobs()
    assert old.state == JobState.DONE  # its results stay until the new ones exist
    assert new.request().uid_series == first.request().uid_series
    assert node.index.latest_job(first.stack_id).id == new.id
    node.index.claim_job()
    superseded = node.index.finish_job(new.id, [], [])
    assert [j.id for j in superseded] == [first.id]
    assert node.index.job(first.id).state == JobState.SUPERSEDED


def test_the_same_instances_make_no_second_job(node, make_study, tmp_path):
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "in")
    node.receive(paths, T0)
    node.tracker.tick(now=T0 + GRACE)
    [job] = node.index.jobs()

    node.receive(paths, T0 + 100)  # the sender retries: duplicates, the study is due again
    assert node.index.due_studies(T0 + 100 + GRACE)
    node.tracker.tick(now=T0 + 100 + GRACE)
    assert node.index.jobs() == [job]
    assert node.index.study(study_of(paths)).next_scan_at is None

    node.index.claim_job()
    node.index.finish_job(job.id, [], [])
    node.receive(paths[:3], T0 + 200)
    node.tracker.tick(now=T0 + 200 + STABLE)
    assert [j.id for j in node.index.jobs()] == [job.id]  # a done job is not redone either
    assert node.index.instance(str(dcmread(paths[0]).SOPInstanceUID)).copies == 3


# ----------------------------------------------------------------- ticks: skipped
def test_a_stack_with_a_problem_is_skipped_with_its_reason_once_stable(node, make_study,
                                                                       tmp_path):
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8, orientation=AXIAL),
                               tmp_path / "axial", per_slice_series=True)
    node.receive(paths, T0)
    node.tracker.tick(now=T0 + GRACE)  # complete, but a problem: wait, it may be resolved
    assert node.index.stacks() == [] and node.index.jobs() == []
    assert node.index.study(study_of(paths)).next_scan_at == T0 + STABLE

    node.tracker.tick(now=T0 + STABLE)
    assert node.index.jobs() == []
    [stack] = node.index.stacks()
    assert stack.state == StackState.SKIPPED
    assert stack.reason.startswith("not a short-axis stack")
    for uid in series_of(paths):
        row = node.index.series(uid)
        assert row.state == SeriesState.SKIPPED
        assert row.reason == f"stack {stack.id}: {stack.reason}"
    assert node.index.study(study_of(paths)).next_scan_at is None
    assert {s.series_uid for s in node.index.summary().skipped_series} == set(series_of(paths))

    before = {uid: node.index.series(uid).updated_at for uid in series_of(paths)}
    node.receive(paths[:1], T0 + 100)  # looked at again: the same reason is not rewritten
    node.tracker.tick(now=T0 + 100 + STABLE)
    assert {uid: node.index.series(uid).updated_at for uid in series_of(paths)} == before
    assert node.index.jobs() == []


def test_a_series_that_is_not_a_cine_is_skipped_once_stable(node, make_study, tmp_path):
    localizer = write_cine_classic(make_study(n_slices=1, n_phases=1), tmp_path / "loc")
    [uid] = series_of(localizer)
    node.receive(localizer, T0)
    node.tracker.tick(now=T0 + GRACE)
    assert node.index.series(uid).state == SeriesState.RECEIVED  # it may still grow
    node.tracker.tick(now=T0 + STABLE)
    row = node.index.series(uid)
    assert row.state == SeriesState.SKIPPED and "1 phase(s) per slice" in row.reason
    assert node.index.stacks() == [] and node.index.jobs() == []


def test_a_study_that_cannot_be_assessed_does_not_stop_the_others(node, make_study,
                                                                  tmp_path):
    good = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "good")
    bad = write_cine_classic(make_study(n_slices=1, n_phases=8), tmp_path / "bad")
    node.receive(good, T0)
    node.receive(bad, T0)
    bad[0].unlink()  # a spooled file removed behind the node's back
    node.tracker.tick(now=T0 + GRACE)
    [job] = node.index.jobs()
    assert job.request().inputs == tuple(sorted(good))
    # the other study is looked at again after the stable period, not at every tick
    assert node.index.study(study_of(good)).next_scan_at is None
    bad_study = node.index.study(str(dcmread(bad[1], stop_before_pixels=True).StudyInstanceUID))
    assert bad_study.next_scan_at == T0 + GRACE + STABLE
    assert node.index.stacks(bad_study.study_uid) == []


def test_the_same_instances_again_say_already_analysed_and_the_stack_stays_done(
        node, make_study, tmp_path, caplog):
    """An admin pushes a study again: no second job, one INFO line that names the job."""
    paths = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "in")
    study = study_of(paths)
    node.receive(paths, T0)
    node.tracker.tick(now=T0 + GRACE)
    job = node.index.claim_job()
    node.index.finish_job(job.id, [], [])
    assert node.index.stack(job.stack_id).state == StackState.DONE

    caplog.clear()
    with caplog.at_level("INFO", logger="cinestrain.node.scheduler"):
        node.receive(paths, T0 + 100)
        node.tracker.tick(now=T0 + 100 + GRACE)
    lines = [r.getMessage() for r in caplog.records if r.name == "cinestrain.node.scheduler"]
    assert lines == [f"study {study}: already analysed as job {job.id}, nothing to do "
                     f"(results in {job.out_dir})"]
    assert [j.id for j in node.index.jobs()] == [job.id]
    assert node.index.stack(job.stack_id).state == StackState.DONE
    node.tracker.tick(now=T0 + 3600)  # decided: nothing more is said
    assert len([r for r in caplog.records if r.name == "cinestrain.node.scheduler"]) == 1

    node.index.claim_job()  # (none pending)
    node.index.fail_job(job.id, "boom")
    caplog.clear()
    with caplog.at_level("INFO", logger="cinestrain.node.scheduler"):
        node.receive(paths, T0 + 200)
        node.tracker.tick(now=T0 + 200 + GRACE)
    assert f"cinestrain retry {job.id}" in caplog.text
    assert node.index.stack(job.stack_id).state == StackState.FAILED
