"""``cinestrain serve``: wire the SCP, spool, index, scheduler, worker and exporter.

Start-up recovers from a crash before the port opens: renames a power loss interrupted are
finished (CRC-checked) and other partial files removed, spooled instances missing from
the index are indexed again, interrupted jobs and exports are
queued again.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pydicom import dcmread

from cinestrain.config.schema import NodeConfig
from cinestrain.logs import JsonFormatter, configure_logging
from cinestrain.node.export import Exporter
from cinestrain.node.health import HealthServer, node_health
from cinestrain.node.index import Index, InstanceRecord
from cinestrain.node.metrics import NodeMetrics
from cinestrain.node.receive.handlers import StoreContext
from cinestrain.node.receive.scp import start_scp
from cinestrain.node.receive.spool import Spool
from cinestrain.node.scheduler import NodeScheduler, StackTracker
from cinestrain.node.states import INDEX_FILE, RESULTS_DIR, SPOOL_DIR
from cinestrain.node.systemd_notify import notify
from cinestrain.node.worker import Dispatcher

__all__ = ["JsonFormatter", "Node", "configure_logging", "reconcile"]

log = logging.getLogger(__name__)


def reconcile(spool: Spool, index: Index, scan_delay_s: float) -> int:
    """Index spooled instances the index does not know (after a power loss).

    Returns
    -------
    int
        Instances added.
    """
    known = index.known_paths()
    added = 0
    for path in spool.iter_instances():
        if str(path) in known:
            continue
        try:
            ds = dcmread(path, stop_before_pixels=True)
            record = InstanceRecord(
                sop_instance_uid=str(ds.SOPInstanceUID),
                sop_class_uid=str(ds.SOPClassUID),
                study_uid=str(ds.StudyInstanceUID),
                series_uid=str(ds.SeriesInstanceUID),
                path=path,
                size=path.stat().st_size,
                transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
                calling_ae=str(ds.file_meta.get("SourceApplicationEntityTitle", "") or ""),
                received_at=path.stat().st_mtime,
            )
        except Exception as exc:  # a spooled file was verified at receipt; report and keep
            log.error("spooled file %s cannot be re-indexed: %s", path, exc)
            continue
        index.add_instance(record, scan_delay_s)
        added += 1
    if added:
        log.warning("re-indexed %d spooled instance(s) missing from the index", added)
    return added


class Node:
    """A running node: call :meth:`start`, then :meth:`stop` (or :meth:`serve_forever`).

    Parameters
    ----------
    cfg
        The validated configuration.
    """

    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        root = Path(cfg.storage.directory)
        root.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(
            root / SPOOL_DIR, cfg.storage.min_free_mb, cfg.storage.fsync_directory
        )
        self.results = root / RESULTS_DIR
        self.results.mkdir(exist_ok=True)
        self.index = Index(root / INDEX_FILE)
        rules = cfg.scheduler
        self.scan_delay_s = min(rules.complete_grace_seconds, rules.series_stable_seconds)
        self.metrics = NodeMetrics()
        self.metrics.watch(self.index, root)
        self.dispatcher = Dispatcher(cfg, self.index, self.metrics)
        self.exporter = Exporter(cfg, self.index, self.metrics)
        self.scheduler = NodeScheduler(
            cfg, StackTracker(cfg, self.index, self.results), self.dispatcher,
            self.exporter, self.index, self.spool,
        )
        self.server = None
        #: /healthz and /metrics (section [http]); None when disabled
        self.http = (HealthServer(cfg.http, self.metrics, lambda: node_health(self))
                     if cfg.http.enabled else None)
        self._stop = threading.Event()
        #: the signal that stopped :meth:`serve_forever` (None: not stopped by one)
        self.stop_signal: int | None = None

    @property
    def port(self) -> int:
        """The port the SCP listens on."""
        return int(self.server.server_address[1]) if self.server else self.cfg.node.port

    def start(self) -> None:
        """Serve /healthz (503 until the rest is up), recover from any crash, open the
        port, start the scheduler."""
        if self.http is not None:
            self.http.start()
        try:
            self.spool.recover_partial()
            reconcile(self.spool, self.index, self.scan_delay_s)
            jobs, exports = self.index.recover()
            if jobs or exports:
                log.warning("recovered %d interrupted job(s) and %d export(s)", jobs, exports)
            self.server = start_scp(
                self.cfg.node,
                StoreContext(self.spool, self.index, self.scan_delay_s, metrics=self.metrics),
            )
        except BaseException:
            if self.http is not None:  # the node did not start: neither does its endpoint
                self.http.stop()
            raise
        self.scheduler.start()
        self.dispatcher.keep_warm()
        # under systemd (Type=notify): started once the port is open
        notify("READY=1", f"STATUS=listening on {self.cfg.node.bind_address}:{self.port} "
               f"as {self.cfg.node.ae_title}")

    def stop(self) -> None:
        """Close the ports, stop the scheduler and running jobs, close the index."""
        notify("STOPPING=1")
        if self.http is not None:
            self.http.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.scheduler.stop()
        self.dispatcher.stop()
        self.index.close()
        log.info("node stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT (which one: :attr:`stop_signal`)."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("%s: stopping", signal.Signals(signum).name)
            self.stop_signal = signum
            self._stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()

    def wait_until(
        self, predicate: Callable[[], bool], timeout_s: float, poll_s: float = 0.1
    ) -> bool:
        """Poll ``predicate()`` until true or ``timeout_s`` passed (for tests and tools)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(poll_s)
        return bool(predicate())
