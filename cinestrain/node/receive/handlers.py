"""DIMSE service handlers of the SCP: one plain function per event.

What a handler needs is bound with pynetdicom's 3-tuple ``(event, handler, [args])``,
never through globals. The C-STORE handler parses the dataset as it came off the wire
once (raw elements, no pixel decoding; every declared length checked), writes the file
header (:mod:`node.receive.filemeta`; pynetdicom's own with ``StoreContext.speed``'s
``file_header`` off) and that same dataset durably to the spool, records it in the index
and only then answers Success; every failure gets its own status and one log line naming
the caller and the SOP Instance UID (never patient data).
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
import time
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from io import BytesIO

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID
from pydicom.values import convert_UI
from pynetdicom.events import Event

from cinestrain.config.schema import NodeSection
from cinestrain.node.errors import InvalidInstanceError, OutOfSpaceError, SpoolError
from cinestrain.node.index import Index, InstanceRecord
from cinestrain.node.metrics import REJECTED_BY_PYNETDICOM, NodeMetrics
from cinestrain.node.receive.filemeta import file_header
from cinestrain.node.receive.spool import Spool, is_safe_uid
from cinestrain.speed import FAST, Speed

log = logging.getLogger(__name__)

#: the length of a sequence or item whose end is marked by a delimiter
UNDEFINED_LENGTH = 0xFFFFFFFF
#: the dataset's UIDs the C-STORE handler reads, by keyword
DATASET_UIDS = {
    "StudyInstanceUID": 0x0020000D,
    "SeriesInstanceUID": 0x0020000E,
    "SOPInstanceUID": 0x00080018,
    "SOPClassUID": 0x00080016,
}


class StoreStatus(IntEnum):
    """The C-STORE statuses the node answers (DICOM PS3.4 Annex B.2.3)."""

    SUCCESS = 0x0000
    OUT_OF_RESOURCES = 0xA700
    """free space below ``storage.min_free_mb``"""
    CANNOT_STORE = 0xA701
    """the spool or the index could not be written"""
    DATASET_MISMATCH = 0xA900
    """the dataset's SOP class or instance differs from the request's"""
    CANNOT_UNDERSTAND = 0xC210
    """the dataset cannot be parsed"""
    MISSING_UIDS = 0xC211
    """study, series or instance UID missing or unusable"""


class RejectReason(IntEnum):
    """A-ASSOCIATE-RJ diagnostics used (result permanent, source service user)."""

    CALLING_AE_NOT_RECOGNISED = 0x03
    CALLED_AE_NOT_RECOGNISED = 0x07


@dataclass(frozen=True)
class StoreContext:
    """What the C-STORE handler needs: the spool, the index, and when to look again.

    Attributes
    ----------
    scan_delay_s
        A study is looked at this many seconds after its latest instance.
    speed
        Its ``file_header`` switch: the file header encoded by :mod:`node.receive.filemeta`
        (the default) or by pynetdicom (``Event.encoded_dataset(include_meta=True)``);
        the same bytes either way.
    metrics
        Where instances received and associations are counted.
    """

    spool: Spool
    index: Index
    scan_delay_s: float
    speed: Speed = FAST
    metrics: NodeMetrics = field(default_factory=NodeMetrics)


def peer_of(event: Event) -> str:
    """``"AE@host:port"`` of the association's requestor, for log lines."""
    requestor = event.assoc.requestor
    return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"


def handle_echo(event: Event) -> int:
    """C-ECHO: always Success."""
    log.info("C-ECHO from %s", peer_of(event))
    return 0x0000


def association_refusal(
    calling_ae: str, called_ae: str, host: str, node: NodeSection
) -> tuple[RejectReason, str] | None:
    """Why an association request must be rejected, or None to accept it.

    Parameters
    ----------
    calling_ae, called_ae
        AE titles from the A-ASSOCIATE-RQ (stripped).
    host
        The caller's IP address.
    node
        The node's section of the configuration.
    """
    if called_ae != node.ae_title:
        return RejectReason.CALLED_AE_NOT_RECOGNISED, f"called AE {called_ae!r} is not ours"
    if node.allow_any_caller:
        return None
    caller = next((c for c in node.allowed_callers if c.ae_title == calling_ae), None)
    if caller is None:
        return RejectReason.CALLING_AE_NOT_RECOGNISED, "calling AE not in node.allowed_callers"
    if caller.hosts:
        address = ipaddress.ip_address(host)
        if not any(address in ipaddress.ip_network(h, strict=False) for h in caller.hosts):
            return (
                RejectReason.CALLING_AE_NOT_RECOGNISED,
                f"calling AE allowed only from {', '.join(caller.hosts)}",
            )
    return None


def handle_requested(event: Event, node: NodeSection, metrics: NodeMetrics | None = None
                     ) -> None:
    """A-ASSOCIATE-RQ received: reject callers the configuration does not allow.

    Sends A-ASSOCIATE-RJ (rejected-permanent, service user) with reason "calling AE title
    not recognised" (unknown caller, or a known one from a host it is not bound to) or
    "called AE title not recognised"; ``metrics`` counts it under that reason.
    """
    assoc = event.assoc
    rq = assoc.requestor.primitive
    calling, called = rq.calling_ae_title.strip(), rq.called_ae_title.strip()
    host = assoc.requestor.address
    refusal = association_refusal(calling, called, host, node)
    if refusal is None:
        return
    reason, why = refusal
    log.warning(
        "rejecting association from %s@%s (called %s): %s", calling, host, called, why
    )
    if metrics is not None:
        metrics.association_rejected(reason.name.lower())
    assoc.acse.send_reject(0x01, 0x01, int(reason))
    assoc.kill()


def handle_rejected(event: Event, metrics: NodeMetrics) -> None:
    """pynetdicom rejected an association itself (association limit reached, unsupported
    protocol version or application context): count it."""
    metrics.association_rejected(REJECTED_BY_PYNETDICOM)


def set_dul_run_loop_delay(dul: object, seconds: float) -> bool:
    """Set how long an association's reader sleeps when it finds nothing to do.

    pynetdicom's reader (``DULServiceProvider``, one thread per association) polls its
    socket and, when a poll finds no event, sleeps ``_run_loop_delay`` seconds (1 ms),
    so a request or an answer may wait up to that long. The attribute is **private**: in
    pynetdicom 3.0 no argument, method or ``pynetdicom._config`` setting reaches it (its
    source notes the polling as meant to become event based). Upstream discusses
    it as the trade-off between idle CPU and latency in
    https://github.com/pydicom/pynetdicom/issues/650 (whose proposed change, no sleep
    while events are queued, the installed reader has). This function is the only place
    cinestrain writes it; a pynetdicom whose reader lacks it keeps its own delay.

    Returns
    -------
    bool
        Whether it was set; False (and pynetdicom's own delay kept) when this
        pynetdicom's reader has no such attribute.
    """
    if not hasattr(dul, "_run_loop_delay"):
        return False
    dul._run_loop_delay = seconds  # type: ignore[attr-defined]
    return True


def handle_connection_open(event: Event, node: NodeSection) -> None:
    """A caller connected: its association's reader polls the socket every
    ``node.poll_interval_ms`` (:func:`set_dul_run_loop_delay`)."""
    if not set_dul_run_loop_delay(event.assoc.dul, node.poll_interval_ms / 1000):
        log.warning("this pynetdicom has no DUL run-loop delay; node.poll_interval_ms ignored")


def handle_established(event: Event, metrics: NodeMetrics | None = None) -> None:
    """Log (and count) each accepted association."""
    log.info("association from %s accepted", peer_of(event))
    if metrics is not None:
        metrics.association_accepted()


def handle_released(event: Event) -> None:
    """Log each released or aborted association."""
    log.info("association from %s ended", peer_of(event))


def _is_sequence(raw: RawDataElement | DataElement) -> bool:
    """Whether an element (raw or converted) is a sequence."""
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary says
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            vr = None
    return vr == "SQ" or isinstance(raw.value, Sequence)


def check_lengths(ds: Dataset) -> None:
    """Compare every raw value with its declared length, into sequences, converting nothing.

    pydicom reads a value cut short by the end of the data without complaint, and reads
    values lazily: this walk is what finds a truncated or malformed encoding.

    Raises
    ------
    InvalidInstanceError
        A value holds fewer bytes than its element declares.
    """
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        value = raw.value
        if isinstance(value, bytes):
            length = getattr(raw, "length", UNDEFINED_LENGTH)  # a DataElement has none
            if length != UNDEFINED_LENGTH and len(value) != length:
                raise InvalidInstanceError(
                    f"element {tag} declares {length} bytes, the data holds {len(value)}"
                )
        if _is_sequence(raw):
            for item in ds[tag].value:  # converts this sequence only: parses its items
                check_lengths(item)


def read_header(dataset: bytes, transfer_syntax: UID) -> Dataset:
    """Parse a received dataset (no file meta) without converting its values.

    Parameters
    ----------
    dataset
        The dataset as sent, encoded in ``transfer_syntax`` (deflated ones are inflated).
    transfer_syntax
        The presentation context's transfer syntax.

    Raises
    ------
    InvalidInstanceError
        The bytes do not parse as a dataset.
    """
    try:
        if transfer_syntax.is_deflated:
            dataset = zlib.decompress(dataset, -zlib.MAX_WBITS)
        ds = read_dataset(
            BytesIO(dataset), transfer_syntax.is_implicit_VR, transfer_syntax.is_little_endian
        )
        check_lengths(ds)
    except InvalidInstanceError:
        raise
    except Exception as exc:  # untrusted input: any parse failure is "cannot understand"
        raise InvalidInstanceError(f"{type(exc).__name__}: {exc}") from exc
    return ds


def uid_value(ds: Dataset, tag: int) -> str:
    """A UID element's value read from its raw bytes, without the Dataset's conversion
    and validation (the caller checks it); "" when absent or not encoded as a value."""
    raw = ds.get_item(tag)
    if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes):
        return ""
    return str(convert_UI(raw.value, raw.is_little_endian)).strip()


def handle_store(event: Event, ctx: StoreContext) -> int:
    """C-STORE: spool the instance durably, index it, then answer (and count the answer
    in ``ctx.metrics``).

    Returns
    -------
    int
        A :class:`StoreStatus`.
    """
    status = store_instance(event, ctx)
    ctx.metrics.instance_received(event.request.AffectedSOPClassUID,
                                  status == StoreStatus.SUCCESS)
    return status


def store_instance(event: Event, ctx: StoreContext) -> int:
    """What :func:`handle_store` answers: check, spool and index the instance."""
    start = time.perf_counter()
    peer = peer_of(event)
    request = event.request
    sop_uid = str(request.AffectedSOPInstanceUID)
    transfer_syntax = event.context.transfer_syntax
    dataset = event.encoded_dataset(include_meta=False)
    try:
        ds = read_header(dataset, transfer_syntax)
    except InvalidInstanceError as exc:
        log.warning("C-STORE %s from %s: cannot parse dataset (%s)", sop_uid, peer, exc)
        return StoreStatus.CANNOT_UNDERSTAND
    uids = {key: uid_value(ds, tag) for key, tag in DATASET_UIDS.items()}
    bad = [k for k in ("StudyInstanceUID", "SeriesInstanceUID") if not is_safe_uid(uids[k])]
    if bad:
        log.warning("C-STORE %s from %s: missing or unusable %s", sop_uid, peer, ", ".join(bad))
        return StoreStatus.MISSING_UIDS
    if uids["SOPInstanceUID"] != sop_uid or uids["SOPClassUID"] != request.AffectedSOPClassUID:
        log.warning(
            "C-STORE %s from %s: dataset has SOP instance %s, class %s; request class %s",
            sop_uid, peer, uids["SOPInstanceUID"], uids["SOPClassUID"],
            request.AffectedSOPClassUID,
        )
        return StoreStatus.DATASET_MISMATCH
    if not is_safe_uid(sop_uid):
        log.warning("C-STORE from %s: unusable SOP Instance UID %r", peer, sop_uid)
        return StoreStatus.MISSING_UIDS
    study, series = uids["StudyInstanceUID"], uids["SeriesInstanceUID"]
    if ctx.speed.file_header:  # the dataset is written as received, after the header
        content: bytes | tuple[bytes, bytes] = (
            file_header(uids["SOPClassUID"], sop_uid, transfer_syntax), dataset)
    else:
        content = event.encoded_dataset(include_meta=True)
    try:
        stored = ctx.spool.store(content, study, series, sop_uid)
    except OutOfSpaceError as exc:
        log.error("C-STORE %s from %s refused, out of resources: %s", sop_uid, peer, exc)
        return StoreStatus.OUT_OF_RESOURCES
    except SpoolError as exc:
        log.error("C-STORE %s from %s: %s", sop_uid, peer, exc)
        return StoreStatus.CANNOT_STORE
    record = InstanceRecord(
        sop_instance_uid=sop_uid,
        sop_class_uid=uids["SOPClassUID"],
        study_uid=study,
        series_uid=series,
        path=stored.path,
        size=stored.size,
        transfer_syntax=str(transfer_syntax),
        calling_ae=event.assoc.requestor.ae_title.strip(),
        received_at=time.time(),
        calling_host=event.assoc.requestor.address,
    )
    try:
        ctx.index.add_instance(record, ctx.scan_delay_s)
    except sqlite3.Error as exc:
        # the file is durable and start-up reconciliation would index it, but the index
        # is the node's view: ask the sender to try again rather than answer Success
        log.error("C-STORE %s from %s: index write failed: %s", sop_uid, peer, exc)
        return StoreStatus.CANNOT_STORE
    log.debug(
        "C-STORE %s (series %s) from %s: %d bytes%s in %.1f ms",
        sop_uid, series, peer, stored.size, " (duplicate, replaced)" if stored.duplicate else "",
        1000 * (time.perf_counter() - start),
    )
    return StoreStatus.SUCCESS
