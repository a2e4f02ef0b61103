"""The spool: received instances written durably, one file each.

An instance is written to a temporary file in its final folder, fsync'ed, and renamed to
its final name before the sender is told Success. The temporary name carries the CRC-32
of the content (``.<sop>.dcm.<crc32>.<random>.part``).

One disk flush per instance: fsync of a newly created file also makes its name durable
on journaling file systems (ext4, XFS, btrfs: the journal commit that the fsync forces
holds the file's creation), so after the fsync the instance is durable under its
temporary name, and the rename becomes durable with the next commit (the next instance's
fsync, or the file system's commit interval). If the power fails in between,
:meth:`Spool.recover_partial` finishes the rename at start-up after checking the CRC; a
temporary file whose CRC does not match was never acknowledged and is removed. So no
half-written instance is ever read, and no acknowledged one is lost.
``storage.fsync_directory = true`` adds the folder fsync after each rename (strict POSIX,
one more flush per instance) for file systems without that guarantee.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cinestrain.node.errors import OutOfSpaceError, SpoolError
from cinestrain.node.states import INSTANCE_SUFFIX, PARTIAL_SUFFIX

log = logging.getLogger(__name__)

#: a UID as it may appear in a path: digits and dots only (no ``..`` tricks)
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
#: a temporary file: ``.<final name>.<crc32 hex>.<random hex>.part``
_TEMP = re.compile(
    r"^\.(?P<name>.+)\.(?P<crc>[0-9a-f]{8})\.[0-9a-f]{8}" + re.escape(PARTIAL_SUFFIX) + "$"
)
_MIB = 1024 * 1024
#: what a file is written from: bytes, or parts (such as a header and a dataset) in order
Content = bytes | Sequence[bytes | memoryview]
#: free space is measured again after this many seconds, not per instance (a statvfs
#: can cost as much as the rest of storing a small instance) ...
SPACE_RECHECK_S = 1.0
#: ... or whenever the estimate comes within this many bytes of the floor
SPACE_RECHECK_MARGIN = 256 * _MIB


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


def as_parts(data: Content) -> list[memoryview]:
    """The content as a list of byte views (one for plain bytes), empty parts dropped."""
    parts = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    return [memoryview(part) for part in parts if len(part)]


def content_size(data: Content) -> int:
    """Bytes in the content."""
    return sum(part.nbytes for part in as_parts(data))


def temp_name(path: Path, data: Content) -> Path:
    """The temporary file that becomes ``path``, named with the CRC-32 of ``data``."""
    crc = 0
    for part in as_parts(data):
        crc = zlib.crc32(part, crc)
    return path.with_name(f".{path.name}.{crc:08x}.{uuid.uuid4().hex[:8]}{PARTIAL_SUFFIX}")


def write_all(fd: int, data: Content) -> None:
    """Write every part to ``fd`` in order, one ``writev`` call when the system takes it all."""
    parts = as_parts(data)
    while parts:
        written = os.writev(fd, parts)
        while parts and written >= parts[0].nbytes:
            written -= parts.pop(0).nbytes
        if written:
            parts[0] = parts[0][written:]


def write_atomic(path: Path, data: Content, *, fsync_directory: bool = True) -> None:
    """Write ``data`` (bytes, or parts written one after the other) to ``path``
    atomically and durably.

    Temp file in the same folder (named by :func:`temp_name`), fsync, rename over
    ``path``, then (``fsync_directory``) fsync the folder. On any error the temp file is
    removed and the exception propagates; ``path`` is then either absent or its earlier
    complete content.
    """
    tmp = temp_name(path, data)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync_directory:
        fsync_dir(path.parent)


def copy_atomic(source: Path, target: Path) -> None:
    """Copy a file atomically and durably (see :func:`write_atomic`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, source.read_bytes())


def finish_partial(tmp: Path) -> Path | None:
    """After a crash: rename a verified temporary file to its final name.

    Returns
    -------
    Path or None
        The final path, or None when the name is not a temporary file's or the content
        does not match its CRC-32 (the file is then removed: it was never acknowledged).
    """
    match = _TEMP.match(tmp.name)
    try:
        crc = None if match is None else zlib.crc32(tmp.read_bytes()) & 0xFFFFFFFF
        if match is not None and f"{crc:08x}" == match["crc"]:
            final = tmp.with_name(match["name"])
            os.replace(tmp, final)
            return final
    except OSError as exc:
        log.error("cannot recover %s: %s", tmp, exc)
    tmp.unlink(missing_ok=True)
    return None


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
    fsync_directory
        Also fsync the folder after each rename (see the module's notes).
    """

    def __init__(self, root: Path, min_free_mb: int, fsync_directory: bool = False) -> None:
        self.root = Path(root)
        self.min_free_bytes = int(min_free_mb) * _MIB
        self.fsync_directory = fsync_directory
        self.root.mkdir(parents=True, exist_ok=True)
        self._space_lock = threading.Lock()
        self._free_estimate = 0
        self._measured_at = float("-inf")

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
        """Raise :class:`OutOfSpaceError` when ``incoming`` bytes would cross the floor.

        Free space is measured at most every :data:`SPACE_RECHECK_S` seconds and counted
        down by what the spool writes meanwhile; near the floor it is measured every time.
        """
        with self._space_lock:
            now = time.monotonic()
            estimate = self._free_estimate - incoming
            if (now - self._measured_at > SPACE_RECHECK_S
                    or estimate < self.min_free_bytes + SPACE_RECHECK_MARGIN):
                self._free_estimate = self.free_bytes()
                self._measured_at = now
                estimate = self._free_estimate - incoming
            if estimate < self.min_free_bytes:
                raise OutOfSpaceError(
                    f"{self._free_estimate // _MIB} MiB free, {incoming} bytes incoming, "
                    f"floor storage.min_free_mb = {self.min_free_bytes // _MIB}"
                )
            self._free_estimate = estimate

    def store(
        self, data: Content, study_uid: str, series_uid: str, sop_instance_uid: str
    ) -> StoredInstance:
        """Write one encoded instance (preamble, file meta and dataset) durably.

        ``data`` may be parts written one after the other (the file header, then the
        dataset as received), so that the instance is never copied into one buffer.

        Raises
        ------
        OutOfSpaceError
            Free space is below the floor; nothing was written.
        SpoolError
            A UID cannot name a file, or the write failed (nothing half-written remains).
        """
        path = self.path_for(study_uid, series_uid, sop_instance_uid)
        size = content_size(data)
        self.check_space(size)
        try:
            self._make_dirs(path.parent)
            duplicate = path.exists()
            write_atomic(path, data, fsync_directory=self.fsync_directory)
        except OSError as exc:
            raise SpoolError(f"cannot write {path}: {exc}") from exc
        return StoredInstance(path, size, duplicate)

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

    def recover_partial(self) -> tuple[int, int]:
        """At start-up: finish renames a power loss interrupted, remove unfinished writes.

        Returns
        -------
        tuple of int
            (instances recovered, partial files removed)
        """
        recovered = removed = 0
        folders = set()
        for tmp in sorted(self.root.rglob(f"*{PARTIAL_SUFFIX}")):
            final = finish_partial(tmp)
            if final is None:
                removed += 1
            else:
                recovered += 1
                folders.add(final.parent)
        for folder in folders:
            fsync_dir(folder)
        if recovered:
            log.warning("finished %d interrupted rename(s) of acknowledged instances", recovered)
        if removed:
            log.warning("removed %d partial file(s) left by an interrupted write", removed)
        return recovered, removed

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
