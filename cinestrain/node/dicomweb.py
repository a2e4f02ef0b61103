"""Sending results to a DICOMweb server: STOW-RS with ``dicomweb-client``.

A ``kind = "dicomweb"`` destination (:class:`config.schema.DicomWebDestination`) gets a
job's DICOM results in a few multipart POSTs to ``<url>/studies`` (at most
:data:`BATCH_BYTES` each). The exporter's retries, backoff and dead letter apply as to a
C-STORE destination: each call here is one try, and a failure of any object is an
:class:`node.errors.ExportError` naming it (a resend replaces: the results' UIDs are fixed).
``dicomweb-client``'s own retries are off so that the exporter's rules are the only ones.

Secrets come from files (``password_file``, ``token_file``), read at each try and never
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from cinestrain.config.schema import DicomWebDestination
from cinestrain.node.errors import ExportError

log = logging.getLogger(__name__)

#: largest sum of file sizes in one STOW-RS request (a bigger single file goes alone)
BATCH_BYTES = 32 * 1024 * 1024
#: characters of a failed answer's body quoted in an error
_BODY_CHARS = 200


def _secret(path: Path, what: str, dest: DicomWebDestination) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ExportError(f"{dest.name}: cannot read the {what} file {path}: "
                          f"{exc.strerror or exc}") from exc
    if not value:
        raise ExportError(f"{dest.name}: the {what} file {path} is empty")
    return value


def client(dest: DicomWebDestination) -> Any:
    """A ``dicomweb_client.DICOMwebClient`` for ``dest``: its authentication, CA bundle,
    timeout; no retries of its own.

    Raises
    ------
    ExportError
        A password or token file cannot be read.
    """
    import requests
    from dicomweb_client import DICOMwebClient

    session = requests.Session()
    if dest.username is not None and dest.password_file is not None:
        session.auth = (dest.username, _secret(dest.password_file, "password", dest))
    if dest.token_file is not None:
        session.headers["Authorization"] = f"Bearer {_secret(dest.token_file, 'token', dest)}"
    if dest.ca_certificates is not None:
        session.verify = str(dest.ca_certificates)
    web = DICOMwebClient(dest.url, session=session, timeout=dest.timeout_s)
    web.set_http_retry_params(retry=False)
    return web


def batches(files: list[Path], limit: int = BATCH_BYTES) -> Iterator[list[Path]]:
    """``files`` in order, grouped so that each group's sizes sum to at most ``limit``
    (a larger file forms a group alone)."""
    group: list[Path] = []
    size = 0
    for path in files:
        n = path.stat().st_size
        if group and size + n > limit:
            yield group
            group, size = [], 0
        group.append(path)
        size += n
    if group:
        yield group


def _http_failure(dest: DicomWebDestination, exc: Exception) -> ExportError:
    """An ExportError for a requests exception (the status and the start of the body)."""
    response = getattr(exc, "response", None)
    if response is not None:
        body = " ".join(response.text.split())[:_BODY_CHARS]
        return ExportError(f"{dest.name}: {dest.url} answered HTTP {response.status_code}"
                           f" {response.reason}{': ' + body if body else ''}")
    return ExportError(f"{dest.name}: no answer from {dest.url}: {exc}")


def refused(answer: Dataset) -> list[str]:
    """The objects a STOW-RS answer says were not stored: ``"UID (reason 0xNNNN)"``."""
    failed = []
    for item in answer.get("FailedSOPSequence", []):
        reason = item.get("FailureReason")
        failed.append(f"{item.get('ReferencedSOPInstanceUID', '?')}"
                      f"{'' if reason is None else f' (reason 0x{int(reason):04X})'}")
    return failed


def send_dicomweb(dest: DicomWebDestination, files: list[Path]) -> int:
    """STOW-RS every file; return how many the server stored.

    Raises
    ------
    ExportError
        The server cannot be reached, answers an HTTP error, or refuses an object (each
        refused SOP Instance UID is named).
    """
    import requests

    web = client(dest)
    stored = 0
    for group in batches(files):
        datasets = [dcmread(path) for path in group]
        try:
            answer = web.store_instances(datasets)
        except requests.RequestException as exc:
            raise _http_failure(dest, exc) from exc
        except ValueError as exc:  # an answer dicomweb-client cannot read
            raise ExportError(f"{dest.name}: unreadable STOW-RS answer: {exc}") from exc
        failed = refused(answer)
        if failed:
            raise ExportError(f"{dest.name}: {dest.url} refused {len(failed)} of "
                              f"{len(group)} object(s): {', '.join(failed[:5])}")
        stored += len(group)
        log.debug("%s: STOW-RS stored %d object(s)", dest.name, len(group))
    return stored


def check_dicomweb(dest: DicomWebDestination) -> int:
    """A cheap QIDO-RS query (one study at most) that shows the server answers and
    accepts our credentials; return how many studies it listed (0 or 1).

    Raises
    ------
    ExportError
        No answer, or an HTTP error (401, 403, 404: a wrong ``url``, ...).
    """
    import requests

    try:
        return len(client(dest).search_for_studies(limit=1))
    except requests.RequestException as exc:
        raise _http_failure(dest, exc) from exc
    except ValueError as exc:
        raise ExportError(f"{dest.name}: unreadable QIDO-RS answer: {exc}") from exc
