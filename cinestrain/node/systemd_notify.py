"""Tell systemd how the node is doing (``sd_notify``), without libsystemd.

Under ``Type=notify`` systemd passes the path of a unix datagram socket in
``$NOTIFY_SOCKET``; the service writes ``KEY=VALUE`` lines to it: ``READY=1`` once the SCP
listens (``systemctl start`` returns then, and units ordered after the node start),
``WATCHDOG=1`` from each scheduler tick (with ``WatchdogSec=`` systemd restarts a node
whose ticks stopped), ``STOPPING=1`` when it stops, ``STATUS=...`` for ``systemctl
status``. Without ``$NOTIFY_SOCKET`` (a terminal, a test, another supervisor) every call
does nothing. A name starting with ``@`` is a socket in the abstract namespace.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

#: the environment variable systemd sets under ``Type=notify``
NOTIFY_SOCKET = "NOTIFY_SOCKET"


def notify(*states: str) -> bool:
    """Send state lines (``"READY=1"``, ``"WATCHDOG=1"``, ``"STATUS=..."``) to systemd.

    Parameters
    ----------
    *states
        ``KEY=VALUE`` lines, sent together in one datagram.

    Returns
    -------
    bool
        True when they were sent; False without ``$NOTIFY_SOCKET`` or when the socket
        cannot be written (logged at DEBUG: the node runs on regardless).
    """
    address = os.environ.get(NOTIFY_SOCKET)
    if not address or not states:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        log.debug("systemd notification %s not sent to %s: %s", states, address, exc)
        return False
    return True
