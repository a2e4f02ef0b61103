"""Sending results: C-STORE to DICOM destinations, STOW-RS to DICOMweb ones
(:mod:`node.dicomweb`), copies to folders; retries, dead letter.

Each finished job has one export per configured destination, and one back to each caller
that sent its instances when that caller has a ``return_port`` in ``node.allowed_callers``.
A failed try is retried after ``export.retry_initial_seconds``, doubling up to
``export.retry_max_seconds``; after ``export.retry_max`` retries the export is dead (shown
by ``cinestrain status``) until ``cinestrain retry JOB`` queues it again. Nothing is
ever dropped silently.

While a job runs, :class:`EarlyExport` already sends each DICOM result to the DICOM
destinations as soon as the worker has written it (sending overlaps writing). What it
stored is recorded with the job's exports when the job is done (``delivered``), so that
the export sends only the rest, and is complete at once when nothing is left. After a crash
the job runs again and its exports send everything: the results' UIDs are deterministic, so
a PACS holds each result once. A failed early send is no failure: the export sends that
file with its retries. If the job fails, what was sent early stays sent (each object is
complete; the report, SEG and captures of a failed job may be missing).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.filereader import read_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import (
    ComprehensiveSRStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    ParametricMapStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    Verification,
)

from cinestrain.config.schema import (
    DicomDestination,
    DicomWebDestination,
    ExportSection,
    FolderDestination,
    NodeConfig,
)
from cinestrain.node.dicomweb import send_dicomweb
from cinestrain.node.errors import ExportError, UnknownDestinationError
from cinestrain.node.index import Index
from cinestrain.node.metrics import NodeMetrics
from cinestrain.node.receive.spool import copy_atomic
from cinestrain.node.records import ExportRow, JobRow
from cinestrain.node.states import ExportState, job_dir_name

log = logging.getLogger(__name__)

#: C-STORE statuses that mean the object was stored (success and warnings)
_STORED = {0x0000, 0x0107, 0x0116} | set(range(0xB000, 0xC000))
#: an export back to the caller is named ``caller:<AE title>@<host>:<port>``
CALLER_PREFIX = "caller:"


def return_destinations(cfg: NodeConfig, callers: list[tuple[str, str]]) -> list[str]:
    """Export names that send a stack's results back to its callers.

    Parameters
    ----------
    cfg
        ``node.allowed_callers`` say which callers get results back (``return_port``).
    callers
        (calling AE title, host address) of whoever sent the stack's instances.
    """
    ports = {c.ae_title: c.return_port for c in cfg.node.allowed_callers if c.return_port}
    return [f"{CALLER_PREFIX}{ae}@{host}:{ports[ae]}" for ae, host in callers
            if ae in ports and host]


def destination_names(cfg: NodeConfig, callers: list[tuple[str, str]]) -> list[str]:
    """Export names a job's results go to under ``cfg``: every configured destination (by
    its name, whatever its kind), then the callers that get their results back.

    Parameters
    ----------
    cfg
        The configuration in force (the node's, or the one ``cinestrain send`` reads).
    callers
        (calling AE title, host address) of whoever sent the stack's instances.
    """
    return [d.name for d in cfg.destinations] + return_destinations(cfg, callers)


def caller_destination(name: str) -> DicomDestination:
    """The DICOM destination an export name from :func:`return_destinations` stands for."""
    ae, _, address = name.removeprefix(CALLER_PREFIX).partition("@")
    host, _, port = address.rpartition(":")
    return DicomDestination(name=name[:64], ae_title=ae, host=host, port=int(port))


def is_dicom_file(path: Path) -> bool:
    """Whether a file is in the DICOM file format (``DICM`` after the preamble)."""
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def result_files(out_dir: Path) -> list[Path]:
    """Every file a job wrote, sorted."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def backoff_seconds(attempt: int, rules: ExportSection) -> float:
    """Delay before the try after failed try number ``attempt`` (1-based), seconds."""
    return min(rules.retry_initial_seconds * 2 ** max(attempt - 1, 0), rules.retry_max_seconds)


def client_ssl_context(dest: DicomDestination) -> ssl.SSLContext | None:
    """The TLS context towards a destination, or None when TLS is off."""
    if not dest.tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if dest.tls.ca_certificates is not None:
        context.load_verify_locations(str(dest.tls.ca_certificates))
    if dest.tls.certificate is not None:
        context.load_cert_chain(str(dest.tls.certificate), str(dest.tls.private_key))
    return context


def _associate(dest: DicomDestination, cfg: NodeConfig, contexts: dict[str, set[str]]) -> Any:
    ae = AE(ae_title=dest.calling_ae_title or cfg.node.ae_title)
    ae.acse_timeout = cfg.node.timeouts.acse_s
    ae.dimse_timeout = cfg.node.timeouts.dimse_s
    ae.network_timeout = cfg.node.timeouts.network_s
    for sop_class, syntaxes in contexts.items():
        ae.add_requested_context(sop_class, sorted(syntaxes))
    context = client_ssl_context(dest)
    tls_args = (context, dest.host) if context is not None else None
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title, tls_args=tls_args)
    if not assoc.is_established:
        raise ExportError(
            f"{dest.name}: no association with {dest.ae_title}@{dest.host}:{dest.port}"
            f" ({_why_not(assoc)})"
        )
    return assoc


def _why_not(assoc: Any) -> str:
    if assoc.is_rejected and assoc.acceptor.primitive is not None:
        rj = assoc.acceptor.primitive
        return f"rejected: result {rj.result}, source {rj.result_source}, reason {rj.diagnostic}"
    if assoc.is_aborted:
        return "connection refused, aborted or timed out"
    return "no answer"


def echo(dest: DicomDestination, cfg: NodeConfig) -> int:
    """C-ECHO a destination; return the status (0 = success).

    Raises
    ------
    ExportError
        No association.
    """
    assoc = _associate(dest, cfg, {Verification: {"1.2.840.10008.1.2"}})
    try:
        status = assoc.send_c_echo()
        if not status or "Status" not in status:
            raise ExportError(f"{dest.name}: no C-ECHO response")
        return int(status.Status)
    finally:
        assoc.release()


def send_dicom(dest: DicomDestination, cfg: NodeConfig, files: list[Path]) -> int:
    """C-STORE every file over ``export.associations`` parallel associations; return how
    many were stored.

    Raises
    ------
    ExportError
        An association failed or a file was refused (every failure is named); the whole
        export is tried again later (the results' UIDs are fixed: a resend replaces).
    """
    n = max(1, min(cfg.export.associations, len(files)))
    if n == 1:
        return send_over_one_association(dest, cfg, files)
    with ThreadPoolExecutor(n, thread_name_prefix=f"export-{dest.name}") as pool:
        futures = [pool.submit(send_over_one_association, dest, cfg, files[i::n])
                   for i in range(n)]
    sent, errors = 0, []
    for future in futures:
        try:
            sent += future.result()
        except (ExportError, OSError) as exc:
            errors.append(str(exc))
    if errors:
        raise ExportError(f"{sent} of {len(files)} stored; " + "; ".join(errors))
    return sent


def send_over_one_association(dest: DicomDestination, cfg: NodeConfig, files: list[Path]
                              ) -> int:
    """C-STORE every file over one association; return how many were stored.

    Raises
    ------
    ExportError
        No association, or a file refused (the message names the SOP Instance UID).
    """
    metas = {path: read_file_meta_info(path) for path in files}
    contexts: dict[str, set[str]] = defaultdict(set)
    for meta in metas.values():
        contexts[str(meta.MediaStorageSOPClassUID)].add(str(meta.TransferSyntaxUID))
    if len(contexts) > 128:
        raise ExportError(f"{dest.name}: more than 128 SOP classes in one export")
    assoc = _associate(dest, cfg, contexts)
    stored = 0
    try:
        for path, meta in metas.items():
            uid = str(meta.MediaStorageSOPInstanceUID)
            status = assoc.send_c_store(dcmread(path))
            code = int(status.Status) if status and "Status" in status else None
            if code not in _STORED:
                raise ExportError(
                    f"{dest.name}: {dest.ae_title} answered "
                    f"{'no status' if code is None else f'0x{code:04X}'} to {uid}"
                )
            stored += 1
    finally:
        if assoc.is_established:
            assoc.release()
    return stored


#: the SOP classes of the results (each in Explicit VR Little Endian): an early export
#: proposes them before it knows which files will come
RESULT_CONTEXTS = {
    str(uid): {str(ExplicitVRLittleEndian)}
    for uid in (ParametricMapStorage, ComprehensiveSRStorage, SegmentationStorage,
                MultiFrameTrueColorSecondaryCaptureImageStorage, SecondaryCaptureImageStorage)
}
#: ends an early export's sending thread
_DONE = object()


class EarlyExport:
    """Sends a running job's DICOM results to DICOM destinations as they are written.

    Each destination gets ``export.associations`` threads, each with its own association
    (opened at its first file, proposing :data:`RESULT_CONTEXTS`) taking files from the
    destination's queue. A thread whose association fails, or whose peer refuses a file,
    stops: what it did not store is left to the job's export.

    Parameters
    ----------
    cfg
        Timeouts, our AE title, ``export.associations``.
    destinations
        The DICOM destinations (export name -> destination).
    """

    def __init__(self, cfg: NodeConfig, destinations: dict[str, DicomDestination]) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._stored: dict[str, set[str]] = {}
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._started = time.perf_counter()
        for name, dest in destinations.items():
            self._queues[name] = queue.Queue()
            self._stored[name] = set()
            for i in range(max(1, cfg.export.associations)):
                thread = threading.Thread(target=self._send, args=(name, dest),
                                          name=f"early-export-{dest.name}-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def add(self, path: Path) -> None:
        """A result file is complete on disk: send it (non-DICOM files are skipped)."""
        if self._stop.is_set() or not is_dicom_file(path):
            return
        for q in self._queues.values():
            q.put(Path(path))

    def _send(self, name: str, dest: DicomDestination) -> None:
        files: queue.Queue[Any] = self._queues[name]
        assoc = None
        try:
            while not self._stop.is_set():
                path = files.get()
                if path is _DONE:
                    return
                if assoc is None:
                    contexts = {k: set(v) for k, v in RESULT_CONTEXTS.items()}
                    meta = read_file_meta_info(path)
                    contexts.setdefault(str(meta.MediaStorageSOPClassUID), set()).add(
                        str(meta.TransferSyntaxUID))
                    assoc = _associate(dest, self.cfg, contexts)
                status = assoc.send_c_store(dcmread(path))
                code = int(status.Status) if status and "Status" in status else None
                if code not in _STORED:
                    raise ExportError(f"{dest.name}: {dest.ae_title} answered "
                                      f"{'no status' if code is None else f'0x{code:04X}'}"
                                      f" to {path.name}")
                with self._lock:
                    self._stored[name].add(path.name)
        except (ExportError, OSError, ValueError, RuntimeError) as exc:
            # ValueError: no accepted presentation context for a file; RuntimeError: the
            # association went away
            log.info("early export to %s stopped (the export sends the rest): %s",
                     dest.name, exc)
        finally:
            if assoc is not None and assoc.is_established:
                assoc.release()

    def finish(self, timeout_s: float | None = None) -> dict[str, list[str]]:
        """Send what is queued, then stop; return the file names each destination stored.

        Parameters
        ----------
        timeout_s
            Give up waiting after this long (what is unsent is left to the export).
        """
        for q in self._queues.values():
            for _ in range(max(1, self.cfg.export.associations)):
                q.put(_DONE)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(None if deadline is None else max(deadline - time.monotonic(), 0.0))
        self._stop.set()
        with self._lock:
            return {name: sorted(stored) for name, stored in self._stored.items()}

    def abort(self) -> None:
        """Stop sending (the job failed or the node stops); sent files stay sent."""
        self._stop.set()
        for q in self._queues.values():
            for _ in range(max(1, self.cfg.export.associations)):
                q.put(_DONE)


def copy_to_folder(dest: FolderDestination, files: list[Path], out_dir: Path, folder: str) -> int:
    """Copy every file under ``dest.path/folder`` (atomically); return how many."""
    target = Path(dest.path) / folder
    try:
        for path in files:
            copy_atomic(path, target / path.relative_to(out_dir))
    except OSError as exc:
        raise ExportError(f"{dest.name}: cannot copy to {target}: {exc}") from exc
    return len(files)


class Exporter:
    """Tries due exports of the index (called from the scheduler).

    Parameters
    ----------
    cfg
        Destinations, retry rules and our AE title.
    index
        Where exports and jobs are recorded.
    metrics
        Where failed tries are counted, by destination.
    """

    def __init__(self, cfg: NodeConfig, index: Index, metrics: NodeMetrics | None = None
                 ) -> None:
        self.cfg = cfg
        self.index = index
        #: counts failed tries by destination
        self.metrics = metrics if metrics is not None else NodeMetrics()
        self.destinations = {d.name: d for d in cfg.destinations}

    def poll(self) -> None:
        """Try every export that is due."""
        for row in self.index.due_exports(time.time()):
            self.attempt(row)

    def destination(self, name: str
                    ) -> DicomDestination | FolderDestination | DicomWebDestination | None:
        """The destination an export name stands for (None: no longer configured)."""
        dest = self.destinations.get(name)
        if dest is None and name.startswith(CALLER_PREFIX):
            dest = caller_destination(name)
        return dest

    def early(self, names: Iterable[str]) -> EarlyExport | None:
        """An :class:`EarlyExport` to the DICOM destinations among ``names`` (None when
        there are none)."""
        dicom = {n: d for n in names
                 if isinstance(d := self.destination(n), DicomDestination)}
        return EarlyExport(self.cfg, dicom) if dicom else None

    def deliver(self, destination: str, job: JobRow,
                skip: Iterable[str] = ()) -> int:
        """Send one job's results to one destination; return how many objects went.

        ``skip``: names of files the destination already stored (sent early).

        Raises
        ------
        UnknownDestinationError
            The destination is no longer configured.
        ExportError
            The delivery failed.
        """
        dest = self.destination(destination)
        if dest is None:
            raise UnknownDestinationError(
                f"destination {destination!r} is not configured (one added to the"
                " configuration is known to the node after a restart)")
        out_dir = job.out_dir
        files = result_files(out_dir) or [p for p in job.files or () if p.is_file()]
        if isinstance(dest, FolderDestination):
            stack = self.index.stack(job.stack_id)
            study = "unknown-study" if stack is None else stack.study_uid
            folder = f"{study}/{job_dir_name(job.id)}"
            return copy_to_folder(dest, files, out_dir, folder)
        skipped = set(skip)
        dicom = [p for p in files if p.name not in skipped and is_dicom_file(p)]
        if not dicom:
            log.info("job %d: no DICOM objects to send to %s", job.id, dest.name)
            return 0
        if isinstance(dest, DicomWebDestination):
            return send_dicomweb(dest, dicom)
        return send_dicom(dest, self.cfg, dicom)

    def attempt(self, row: ExportRow) -> ExportState:
        """One try of one export; record the outcome and return the new state."""
        export_id, job_id, name = row.id, row.job_id, row.destination
        attempts = row.attempts + 1
        self.index.update_export(export_id, ExportState.SENDING, attempts=attempts)
        delivered = list(row.delivered)
        try:
            sent = len(delivered) + self.deliver(name, self.index.job(job_id), delivered)
        except (ExportError, UnknownDestinationError, OSError) as exc:
            self.metrics.export_failed(name)
            rules = self.cfg.export
            if attempts > rules.retry_max or isinstance(exc, UnknownDestinationError):
                log.error(
                    "export %d (job %d -> %s) dead after %d tries: %s",
                    export_id, job_id, name, attempts, exc,
                )
                self.index.update_export(export_id, ExportState.DEAD, error=str(exc))
                return ExportState.DEAD
            delay = backoff_seconds(attempts, rules)
            log.warning(
                "export %d (job %d -> %s) try %d failed, next in %.1f s: %s",
                export_id, job_id, name, attempts, delay, exc,
            )
            self.index.update_export(
                export_id, ExportState.RETRY, next_attempt_at=time.time() + delay, error=str(exc)
            )
            return ExportState.RETRY
        log.info("export %d (job %d -> %s): %d object(s) sent", export_id, job_id, name, sent)
        self.index.update_export(export_id, ExportState.DONE, sent=sent)
        return ExportState.DONE
