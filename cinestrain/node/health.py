"""The node's read-only HTTP endpoint: ``/healthz`` and ``/metrics`` (section ``[http]``).

``GET /healthz`` answers 200 and ``{"status": "ok", "checks": {...}}`` while the DICOM port
listens, the scheduler ticks and the index reads; otherwise 503 and
``{"status": "unavailable", "checks": {...}}`` with the reason of each failed check.
``GET /metrics`` is :class:`node.metrics.NodeMetrics` in the Prometheus text format.
Nothing else is served (404) and nothing can be changed (only GET and HEAD).

One thread serves one request at a time (a scrape takes milliseconds) and a client gets
:data:`CLIENT_TIMEOUT_S` to send its request, so the endpoint holds a bounded number of
threads (one) and sockets whatever its clients do.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import TYPE_CHECKING

from cinestrain.config.schema import HttpSection
from cinestrain.node.metrics import CONTENT_TYPE, NodeMetrics

if TYPE_CHECKING:
    from cinestrain.node.service import Node

log = logging.getLogger(__name__)

#: seconds a client has to send its request and read the answer
CLIENT_TIMEOUT_S = 5.0
#: the scheduler counts as stalled when its last tick is older than this many ticks ...
STALL_TICKS = 10
#: ... and at least this many seconds
STALL_FLOOR_S = 60.0


@dataclass(frozen=True)
class Health:
    """The outcome of the health checks: each check's name and "ok" or its problem."""

    checks: dict[str, str]

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(v == "ok" for v in self.checks.values())

    def as_dict(self) -> dict[str, object]:
        """The JSON body of ``/healthz``."""
        return {"status": "ok" if self.ok else "unavailable", "checks": dict(self.checks)}


def node_health(node: Node) -> Health:
    """Check that the node's DICOM port listens, its scheduler ticks and its index reads."""
    checks: dict[str, str] = {}
    server = node.server
    listening = server is not None and server.socket.fileno() != -1
    checks["scp"] = "ok" if listening else "the DICOM port is not listening"
    scheduler = node.scheduler
    stall_s = max(STALL_TICKS * node.cfg.scheduler.tick_seconds, STALL_FLOOR_S)
    age = scheduler.tick_age_s()
    if not scheduler.running:
        checks["scheduler"] = "the scheduler is not running"
    elif age is not None and age > stall_s:
        checks["scheduler"] = f"no scheduler tick for {age:.0f} s"
    else:  # running, and ticked lately (or not yet: its first tick is due)
        checks["scheduler"] = "ok"
    try:
        node.index.summary()
        checks["index"] = "ok"
    except sqlite3.Error as exc:
        checks["index"] = f"the index cannot be read: {exc}"
    return Health(checks)


class _Handler(BaseHTTPRequestHandler):
    """GET/HEAD of ``/healthz`` and ``/metrics``; everything else 404 (or 501)."""

    server: _Server
    timeout = CLIENT_TIMEOUT_S

    def version_string(self) -> str:
        return "cinestrain"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(send_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            health = self.server.health()
            status = HTTPStatus.OK if health.ok else HTTPStatus.SERVICE_UNAVAILABLE
            body = (json.dumps(health.as_dict()) + "\n").encode()
            content_type = "application/json"
        elif path == "/metrics":
            status, body, content_type = HTTPStatus.OK, self.server.metrics.exposition(), \
                CONTENT_TYPE
        else:
            status, body, content_type = HTTPStatus.NOT_FOUND, b"not found\n", "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if send_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("http %s: " + format, self.client_address[0], *args)


class _Server(HTTPServer):
    """One request at a time; IPv4 or IPv6 after the bind address."""

    def __init__(self, address: tuple[str, int], health: Callable[[], Health],
                 metrics: NodeMetrics) -> None:
        if ipaddress.ip_address(address[0]).version == 6:
            self.address_family = socket.AF_INET6
        self.health = health
        self.metrics = metrics
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        log.warning("http: request from %s failed", client_address[0], exc_info=True)


class HealthServer:
    """``/healthz`` and ``/metrics`` on ``http.bind_address:http.port``, in one thread.

    Parameters
    ----------
    section
        Where to listen.
    metrics
        What ``/metrics`` shows.
    health
        Runs the checks of ``/healthz`` (:func:`node_health`).
    """

    def __init__(self, section: HttpSection, metrics: NodeMetrics,
                 health: Callable[[], Health]) -> None:
        self.section = section
        self.metrics = metrics
        self.health = health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port listened on (the configured one, or the bound one when running)."""
        return int(self._server.server_address[1]) if self._server else self.section.port

    def start(self) -> None:
        """Listen and serve in a thread.

        Raises
        ------
        OSError
            The address cannot be bound (the message names it).
        """
        address = (self.section.bind_address, self.section.port)
        try:
            server = _Server(address, self.health, self.metrics)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for HTTP (section [http]) on "
                          f"{address[0]}:{address[1]}: {exc.strerror or exc}") from exc
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="http-health", daemon=True)
        self._thread.start()
        log.info("health and metrics on http://%s:%d/healthz and /metrics",
                 address[0], self.port)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, close the socket and end the thread."""
        server, self._server = self._server, None
        if server is None:
            return
        deadline = time.monotonic() + timeout_s
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            self._thread = None
