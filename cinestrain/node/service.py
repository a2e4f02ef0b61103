"""``cinestrain serve``: wire the SCP, spool, index, scheduler, worker and exporter.

Start-up recovers from a crash before the port opens: renames a power loss interrupted are
finished (CRC-checked) and other partial files removed, spooled instances missing from
the index are indexed again, interrupted jobs and exports are
queued again.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pydicom import dcmread

from cinestrain.config.schema import LoggingSection, NodeConfig
from cinestrain.node.export import Exporter
from cinestrain.node.index import Index, InstanceRecord
from cinestrain.node.receive.handlers import StoreContext
from cinestrain.node.receive.scp import start_scp
from cinestrain.node.receive.spool import Spool
from cinestrain.node.scheduler import NodeScheduler, StackTracker
from cinestrain.node.states import INDEX_FILE, RESULTS_DIR, SPOOL_DIR
from cinestrain.node.worker import Dispatcher

log = logging.getLogger(__name__)


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(section: LoggingSection, verbosity: int = 0) -> None:
    """Root logging from the configuration (``-v`` on the command line lowers the level)."""
    level = logging.DEBUG if verbosity >= 2 else getattr(logging, section.level)
    handler: logging.Handler
    if section.file is not None:
        Path(section.file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(section.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if section.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # pynetdicom logs every PDU at INFO; keep its chatter for debugging
    logging.getLogger("pynetdicom").setLevel(max(level, logging.WARNING))
    # APScheduler logs every tick (every few seconds) at INFO: only its warnings.
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


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
        self.dispatcher = Dispatcher(cfg, self.index)
        self.exporter = Exporter(cfg, self.index)
        self.scheduler = NodeScheduler(
            cfg, StackTracker(cfg, self.index, self.results), self.dispatcher,
            self.exporter, self.index, self.spool,
        )
        self.server = None
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        """The port the SCP listens on."""
        return int(self.server.server_address[1]) if self.server else self.cfg.node.port

    def start(self) -> None:
        """Recover from any crash, open the port, start the scheduler."""
        self.spool.recover_partial()
        reconcile(self.spool, self.index, self.scan_delay_s)
        jobs, exports = self.index.recover()
        if jobs or exports:
            log.warning("recovered %d interrupted job(s) and %d export(s)", jobs, exports)
        self.server = start_scp(
            self.cfg.node, StoreContext(self.spool, self.index, self.scan_delay_s)
        )
        self.scheduler.start()
        self.dispatcher.keep_warm()

    def stop(self) -> None:
        """Close the port, stop the scheduler and running jobs, close the index."""
        if self.server is not None:
            self.server.shutdown()
            self.server = None
        self.scheduler.stop()
        self.dispatcher.stop()
        self.index.close()
        log.info("node stopped")

    def serve_forever(self) -> None:
        """Run until SIGTERM or SIGINT."""

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
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
