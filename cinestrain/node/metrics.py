"""The node's Prometheus metrics: one object that the receiver, worker and exporter report to.

Each :class:`NodeMetrics` keeps its own registry (two nodes in one process, as in the
tests, never mix their counts). Counters are incremented where the events happen, through
the methods here; the job and export states and the free disk space are read when
``/metrics`` is scraped (:meth:`NodeMetrics.watch`), so they are never stale. No label
carries patient data: SOP Class UIDs, states, reasons and destination names only.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from cinestrain.node.states import ExportState, JobState

if TYPE_CHECKING:
    from cinestrain.node.index import Index

log = logging.getLogger(__name__)

#: the ``Content-Type`` of :meth:`NodeMetrics.exposition`
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: job durations, seconds: a small stack on a GPU takes seconds, a large one on a CPU minutes
JOB_DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600, float("inf"))
#: ``reason`` of an association pynetdicom itself rejected (association limit reached,
#: unsupported protocol version or application context)
REJECTED_BY_PYNETDICOM = "limit_or_protocol"


class IndexCollector:
    """Jobs and exports by state, counted in the index at each scrape."""

    def __init__(self, index: Index) -> None:
        self.index = index

    def collect(self) -> Iterator[Metric]:
        """The two gauge families (nothing when the index cannot be read: /healthz says)."""
        try:
            summary = self.index.summary()
        except sqlite3.Error as exc:
            log.warning("metrics: the index cannot be read: %s", exc)
            return
        for name, doc, states, counts in (
            ("cinestrain_jobs", "Analysis jobs in the index, by state", JobState,
             summary.jobs),
            ("cinestrain_exports", "Exports (one job's results to one destination), by state",
             ExportState, summary.exports),
        ):
            family = GaugeMetricFamily(name, doc, labels=["state"])
            for state in states:
                family.add_metric([str(state)], counts.get(str(state), 0))
            yield family


class NodeMetrics:
    """The metrics of one node, in a registry of their own (:attr:`registry`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._instances = Counter(
            "cinestrain_instances_received",
            "C-STORE requests answered, by SOP Class UID and result (stored or refused)",
            ["sop_class", "result"], registry=self.registry,
        )
        self._accepted = Counter(
            "cinestrain_associations_accepted", "Associations accepted",
            registry=self.registry,
        )
        self._rejected = Counter(
            "cinestrain_associations_rejected", "Associations rejected, by reason",
            ["reason"], registry=self.registry,
        )
        self._job_duration = Histogram(
            "cinestrain_job_duration_seconds",
            "Wall time of each analysis job that ended, by outcome (done or failed)",
            ["outcome"], buckets=JOB_DURATION_BUCKETS, registry=self.registry,
        )
        self._export_failures = Counter(
            "cinestrain_export_failures",
            "Failed export tries (each retry that fails counts), by destination",
            ["destination"], registry=self.registry,
        )
        self._watched = False

    def watch(self, index: Index, storage: Path) -> None:
        """Also report jobs and exports by state (from ``index``) and the free space of
        ``storage``, read at each scrape. Call once."""
        if self._watched:
            raise RuntimeError("NodeMetrics.watch is called once")
        self._watched = True
        self.registry.register(IndexCollector(index))
        free = Gauge("cinestrain_storage_free_bytes",
                     "Free bytes on the file system of storage.directory",
                     registry=self.registry)
        free.set_function(lambda: _free_bytes(storage))

    def instance_received(self, sop_class_uid: str, stored: bool) -> None:
        """A C-STORE request was answered: Success (``stored``) or a failure status."""
        self._instances.labels(str(sop_class_uid), "stored" if stored else "refused").inc()

    def association_accepted(self) -> None:
        """An association was established."""
        self._accepted.inc()

    def association_rejected(self, reason: str) -> None:
        """An association request was rejected (``reason``: a short fixed name)."""
        self._rejected.labels(reason).inc()

    def job_ended(self, outcome: str, seconds: float) -> None:
        """A job ended as ``outcome`` (a :class:`JobState` value) after ``seconds``."""
        self._job_duration.labels(str(outcome)).observe(seconds)

    def export_failed(self, destination: str) -> None:
        """One try of an export to ``destination`` failed."""
        self._export_failures.labels(destination).inc()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format (:data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)


def _free_bytes(path: Path) -> float:
    try:
        return float(shutil.disk_usage(path).free)
    except OSError:
        return float("nan")
