"""One logging set-up for every process of cinestrain: the commands, the node's main
process and its worker processes.

:func:`configure_logging` takes the ``[logging]`` section (level, ``"text"`` or ``"json"``,
file) and the command line's ``-v`` count. The node's main process calls it at start-up
and hands the same section and count to each worker process, which calls it again first
thing (:func:`node.worker._job_process`): format, level and file hold in both.

With ``logging.file`` both processes append to the same file themselves
(:class:`AppendingFileHandler`): each record is one ``write`` of whole lines on a
descriptor opened with ``O_APPEND``, which the kernel places whole at the end of the file,
so the processes' lines never mix. The worker's records are not sent to the main process
through a multiprocessing queue instead: the node stops a running job by terminating its
process, and a process terminated while it writes to a queue can leave the queue corrupt
(Python's documentation), and with it the main process's logging.

Libraries are quieted (:data:`QUIET_LIBRARIES`): highdicom logs an INFO line per module
copied into each object it builds, pynetdicom two ERROR lines per failed connection (our
exporter logs one line per failed association itself), APScheduler a warning per skipped
tick. With ``-v`` or ``logging.level = "DEBUG"`` their INFO and warnings come back (their
DEBUG never: pynetdicom's dumps every PDU). pydicom's warnings about non-conformant values
(pydicom logs each one and warns it again through :mod:`warnings`) are logged only, and
counted where files are read and written (one line per series, see
:func:`dicom_io.read.scan.reading_quirks` and
:func:`dicom_io.write.results.one_warning_for_source_uids`); other warnings become log
records, in the log's format.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from datetime import datetime
from pathlib import Path

from cinestrain.config.schema import LoggingSection

#: library logger -> its level unless -v or logging.level DEBUG (then INFO)
QUIET_LIBRARIES = {
    "highdicom": logging.WARNING,  # "copy attributes of module ..." for every object built
    "pydicom": logging.WARNING,
    "pynetdicom": logging.WARNING,  # and only exception reports: _PynetdicomExceptionsOnly
    "apscheduler": logging.ERROR,  # "skipped: maximum number of running instances": by design
}
#: libraries whose DEBUG chatter (font cache, PNG chunks) is never wanted
SILENT_LIBRARIES = {"matplotlib": logging.WARNING, "PIL": logging.WARNING}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_active_verbosity = 0


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: time, level, logger, message, process id."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class AppendingFileHandler(logging.Handler):
    """Appends each record to ``path`` in one ``write`` (whole lines, ``O_APPEND``).

    Several processes may hold one each on the same file. A file renamed or removed by
    log rotation is noticed at the next record and created again.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        self._fd = -1
        self._inode: tuple[int, int] | None = None
        self._open()

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                           0o640)
        stat = os.fstat(self._fd)
        self._inode = (stat.st_dev, stat.st_ino)

    def _reopen_if_rotated(self) -> None:
        try:
            stat = os.stat(self.path)
            current: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            current = None
        if current != self._inode:
            os.close(self._fd)
            self._open()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            with self.lock:  # type: ignore[union-attr]
                self._reopen_if_rotated()
                view = memoryview(data)
                while view:  # a regular file takes it whole; loop only after a signal
                    view = view[os.write(self._fd, view):]
        except Exception:  # logging must never take the node down
            self.handleError(record)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        super().close()


class _PynetdicomExceptionsOnly(logging.Filter):
    """Of pynetdicom's records, those that carry an exception (a handler of ours failed, a
    TLS handshake failed); its connection chatter (two ERROR lines per refused connection,
    every association's steps) is left out: the node logs each association itself. On
    the handler: pynetdicom logs on its modules' loggers, below ``pynetdicom``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is not None or not (
            record.name == "pynetdicom" or record.name.startswith("pynetdicom."))


def _level(section: LoggingSection, verbosity: int) -> int:
    level = int(getattr(logging, section.level))
    if verbosity >= 2:
        return logging.DEBUG
    if verbosity == 1:
        return min(level, logging.INFO)
    return level


def _log_thread_exception(args: threading.ExceptHookArgs) -> None:
    logging.getLogger("cinestrain").error(
        "uncaught exception in thread %s", getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]


def configure_logging(section: LoggingSection, verbosity: int = 0) -> None:
    """Root logging from the ``[logging]`` section; ``-v`` lowers the level to INFO,
    ``-vv`` to DEBUG. Safe to call again (the handler it installed before is replaced;
    handlers of others, such as pytest's, are kept).

    Parameters
    ----------
    section
        Level, format (``"text"`` or ``"json"``) and file (stderr when unset).
    verbosity
        The command line's ``-v`` count.
    """
    global _active_verbosity
    _active_verbosity = verbosity
    level = _level(section, verbosity)
    handler: logging.Handler
    if section.file is not None:
        handler = AppendingFileHandler(Path(section.file))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if section.format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    handler._cinestrain = True  # type: ignore[attr-defined]
    verbose = verbosity >= 1 or level <= logging.DEBUG
    if not verbose:
        handler.addFilter(_PynetdicomExceptionsOnly())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_cinestrain", False):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)

    for name, quiet in QUIET_LIBRARIES.items():
        logging.getLogger(name).setLevel(logging.INFO if verbose else quiet)
    for name, quiet in SILENT_LIBRARIES.items():
        logging.getLogger(name).setLevel(quiet)

    # pydicom sends each of its warnings to its logger and to `warnings` too: the log
    # copy is the one kept (and counted per series where files are read and written)
    warnings.filterwarnings("ignore", category=UserWarning, module="pydicom")
    # highdicom quotes the patient's name when it has one component: logs carry no names
    warnings.filterwarnings("ignore", message=r"The string .* is unlikely to represent the "
                            r"intended person name", category=UserWarning)
    # other warnings (torch, highdicom) become records in the log's format
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def active_verbosity() -> int:
    """The ``-v`` count of the last :func:`configure_logging` of this process (handed on to
    the worker processes)."""
    return _active_verbosity
