"""Stacks the node refuses (``pipeline.guards``, applied by ``node.readiness``): a single
slice in an oblique plane, pushed by storescu with a short-axis stack beside it, is
recorded as a skipped stack with the reason and makes no job; the short-axis stack still
becomes a job."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from cinestrain.dicom_io.geometry import classify_orientation
from cinestrain.inference.phantom.scanner import write_cine_classic
from cinestrain.node.readiness import assess_study
from cinestrain.node.scheduler import StackTracker
from cinestrain.node.states import SeriesState, StackState
from tests.helpers.planes import phantom_cine, rotated, single_slice
from tests.node.conftest import last_received, storescu

pytestmark = pytest.mark.requires_tool("storescu", "pushing to the node (Debian package dcmtk)")

SINGLE_SLICE = "a single slice (oblique, short axis unknown)"


def test_a_single_oblique_slice_is_assessed_as_refused(tmp_path):
    study = single_slice(rotated(phantom_cine()))
    assert classify_orientation(study.orientation).describe() == "oblique, short axis unknown"
    [stack] = assess_study(write_cine_classic(study, tmp_path)).candidates
    assert stack.complete and stack.shape == "1x8x128x128"
    assert stack.problem.startswith(SINGLE_SLICE)


def test_a_single_oblique_slice_is_skipped_with_its_reason(receiver, make_study, tmp_path):
    one = write_cine_classic(single_slice(rotated(phantom_cine())), tmp_path / "one")
    stack = write_cine_classic(make_study(n_slices=2, n_phases=8), tmp_path / "sax")
    assert storescu(receiver.cfg, *one, *stack).returncode == 0
    tracker = StackTracker(receiver.cfg, receiver.index,
                           receiver.cfg.storage.directory / "results")
    rules = receiver.cfg.scheduler
    received = last_received(receiver)

    tracker.tick(now=received + rules.complete_grace_seconds)
    [job] = receiver.index.jobs()  # the short-axis stack: complete, a job at once
    assert set(job.request().inputs) == {
        p for p in receiver.spooled()
        if dcmread(p, stop_before_pixels=True).StudyInstanceUID
        == dcmread(stack[0], stop_before_pixels=True).StudyInstanceUID}
    one_series = str(dcmread(one[0], stop_before_pixels=True).SeriesInstanceUID)
    # the single slice may still grow into a stack: it waits for the stable period
    assert receiver.index.series(one_series).state == SeriesState.RECEIVED

    tracker.tick(now=received + rules.series_stable_seconds + 1)
    assert len(receiver.index.jobs()) == 1  # no job for the single slice
    [skipped] = [s for s in receiver.index.stacks() if s.state == StackState.SKIPPED]
    assert skipped.reason.startswith(SINGLE_SLICE), skipped.reason
    row = receiver.index.series(one_series)
    assert row.state == SeriesState.SKIPPED
    assert row.reason == f"stack {skipped.id}: {skipped.reason}"
    assert one_series in {s.series_uid for s in receiver.index.summary().skipped_series}
