"""What every command shares: its exit statuses and how it reports an error.

======  ===================================================================================
status  meaning
======  ===================================================================================
0       done (``serve`` and ``view``: stopped by SIGTERM, a requested stop)
1       not done: nothing analysable, a job failed, a peer refused, a port already in use
2       usage or configuration error (argparse exits 2 for a bad option too)
130     stopped by Ctrl-C (SIGINT), any command
143     a one-shot command (``analyze``, ``train``, ...) stopped by SIGTERM
======  ===================================================================================

A command raises :class:`config.ConfigError` or :class:`UsageError` (or lets
:func:`load_node_config` raise) and :func:`cli.main.main` prints the message and exits 2;
Ctrl-C and SIGTERM end in one "stopped" line, never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cinestrain.config import ConfigError, NodeConfig, load_config

if TYPE_CHECKING:
    from cinestrain.node.index import Index

DONE = 0
FAILED = 1
USAGE = 2
INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
    """The command was asked something it cannot do as asked (exit status 2)."""


class Terminated(BaseException):
    """SIGTERM reached a one-shot command (raised by :func:`cli.main.main`'s handler; a
    BaseException, like KeyboardInterrupt, so that no ``except Exception`` swallows it)."""


def load_node_config(path: Path | None, *, weights: bool = False) -> NodeConfig:
    """The validated configuration (``path``, else ``$CINESTRAIN_CONFIG``, else the
    defaults).

    Parameters
    ----------
    path
        The ``--config`` option.
    weights
        Also require the model file the configuration names (or the shipped one) to exist.

    Raises
    ------
    ConfigError
        Unreadable, invalid, or (``weights``) naming a model file that is missing;
        :func:`cli.main.main` prints it and exits 2.
    """
    cfg = load_config(path)
    if weights:
        from cinestrain.inference.model.shipped_weights import missing_weights

        problem = missing_weights(cfg.model.temporal, cfg.model.weights)
        if problem is not None:
            raise ConfigError(str(path or "(defaults or $CINESTRAIN_CONFIG)"),
                              [f"model: {problem}"])
    return cfg


def fail(command: str, message: object, status: int = FAILED) -> int:
    """Print ``cinestrain COMMAND: message`` on stderr and return ``status``."""
    print(f"cinestrain {command}: {message}", file=sys.stderr)
    return status


@contextmanager
def node_index(cfg: NodeConfig, *, read_only: bool = False) -> Iterator[Index]:
    """The node's index, for an admin command (``status``, ``jobs``, ``send``, ``retry``).

    Raises
    ------
    UsageError
        The node has not run with this storage, or a job id asked for inside the block
        is unknown (exit status 2 through :func:`cli.main.main`).
    """
    from cinestrain.node.errors import UnknownJobError
    from cinestrain.node.index import Index, IndexReadOnlyError
    from cinestrain.node.states import INDEX_FILE

    path = Path(cfg.storage.directory) / INDEX_FILE
    if not path.exists():
        raise UsageError(f"no index at {path}: the node has not run with this storage")
    try:
        index = Index(path, read_only=read_only)
    except IndexReadOnlyError as exc:
        raise UsageError(str(exc)) from None
    try:
        yield index
    except UnknownJobError as exc:
        raise UsageError(f"{exc} (cinestrain status lists the jobs)") from None
    finally:
        index.close()
