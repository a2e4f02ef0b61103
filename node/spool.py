"""The spool: received instances written durably, one file each.

An instance is written to a temporary file in its final folder, flushed and fsync'ed,
renamed to its final name and the folder fsync'ed, before the sender is told Success. A
crash leaves either the whole file under its final name or a ``*.part`` file, which
:meth:`Spool.sweep_partial` removes at start-up; no half-written instance is ever read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from node.errors import OutOfSpaceError, SpoolError
from node.states import INSTANCE_SUFFIX, PARTIAL_SUFFIX

log = logging.getLogger(__name__)

#: a UID as it may appear in a path: digits and dots only (no ``..`` tricks)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_MIB = 1024 * 1024


def is_safe_uid(uid: str) -> bool:
    """Whether ``uid`` is a DICOM UID that can name a folder or file (1-64 digits/dots)."""
    return 0 < len(uid) <= 64 and bool(_UID.match(uid))


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (created or renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably.

    Temp file in the same folder, fsync, rename over ``path``, fsync the folder. On any
    error the temp file is removed and the exception propagates; ``path`` is then either
    absent or its earlier complete content.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file atomically and durably (see :func:`write_atomic`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, source.read_bytes())


@dataclass(frozen=True)
class StoredInstance:
    """Where an instance was written, and whether it replaced an earlier copy."""

    path: Path
    size: int
    duplicate: bool


class Spool:
    """Received instances under ``root/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm``.

    Parameters
    ----------
    root
        The spool folder (created).
    min_free_mb
        Refuse to write when less than this many MiB would remain free.
    """

    def __init__(self, root: Path, min_free_mb: int) -> None:
        self.root = Path(root)
        self.min_free_bytes = int(min_free_mb) * _MIB
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, study_uid: str, series_uid: str, sop_instance_uid: str) -> Path:
        """The final path of an instance (UIDs must satisfy :func:`is_safe_uid`)."""
        for uid in (study_uid, series_uid, sop_instance_uid):
            if not is_safe_uid(uid):
                raise SpoolError(f"UID {uid!r} cannot name a spool file")
        return self.root / study_uid / series_uid / f"{sop_instance_uid}{INSTANCE_SUFFIX}"

    def free_bytes(self) -> int:
        """Free space on the spool's file system, bytes."""
        return shutil.disk_usage(self.root).free

    def check_space(self, incoming: int = 0) -> None:
        """Raise :class:`OutOfSpaceError` when ``incoming`` bytes would cross the floor."""
        free = self.free_bytes()
        if free - incoming < self.min_free_bytes:
            raise OutOfSpaceError(
                f"{free // _MIB} MiB free, {incoming} bytes incoming, "
                f"floor storage.min_free_mb = {self.min_free_bytes // _MIB}"
            )

    def store(
        self, data: bytes, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> StoredInstance:
        """Write one encoded instance (preamble, file meta and dataset) durably.

        Raises
        ------
        OutOfSpaceError
            Free space is below the floor; nothing was written.
        SpoolError
            A UID cannot name a file, or the write failed (nothing half-written remains).
        """
        path = self.path_for(study_uid, series_uid, sop_instance_uid)
        self.check_space(len(data))
        try:
            self._make_dirs(path.parent)
            duplicate = path.exists()
            write_atomic(path, data)
        except OSError as exc:
            raise SpoolError(f"cannot write {path}: {exc}") from exc
        return StoredInstance(path, len(data), duplicate)

    def _make_dirs(self, folder: Path) -> None:
        """Create the study and series folders durably (their entries fsync'ed)."""
        if folder.is_dir():
            return
        missing = []
        walk = folder
        while not walk.is_dir():
            missing.append(walk)
            walk = walk.parent
        for created in reversed(missing):
            created.mkdir(exist_ok=True)
            fsync_dir(created.parent)

    def sweep_partial(self) -> int:
        """Remove ``*.part`` files a crash left behind; return how many."""
        removed = 0
        for tmp in self.root.rglob(f"*{PARTIAL_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed += 1
        if removed:
            log.warning("removed %d partial file(s) left by an interrupted write", removed)
        return removed

    def iter_instances(self) -> Iterator[Path]:
        """Every complete spooled instance file."""
        yield from self.root.glob(f"*/*/*{INSTANCE_SUFFIX}")

    def remove(self, path: Path) -> None:
        """Delete one instance and its folders once empty (retention)."""
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):
            if folder != self.root:
                try:
                    folder.rmdir()
                except OSError:
                    break
