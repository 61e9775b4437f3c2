"""Files that must survive a crash or a power cut, whoever writes them (the crash journal, the
database-outage spool, the recordings' directories): a directory entry made durable, a file
root creates handed to the service's user, and the append-only JSON-lines file the journal and
the spool both keep (``JsonLinesFile``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def give_to_directory_owner(fd: int, directory: Path) -> None:
    """Make a file just created by root belong to the owner of ``directory`` (the service's
    user): an offline ``recorderctl`` run as root must not leave a file in the data directory
    that recorderd, running as its own user, cannot open. Nothing to do for anyone else, or
    when the owners already match; where chown is refused (a sandbox), the file stays as it is.
    """
    if os.geteuid() != 0:
        return
    owner, current = directory.stat(), os.fstat(fd)
    if (owner.st_uid, owner.st_gid) == (current.st_uid, current.st_gid):
        return
    try:
        os.fchown(fd, owner.st_uid, owner.st_gid)
    except PermissionError as exc:
        logger.warning("cannot give %s's new file to its owner: %s", directory, exc)


def fsync_directory(directory: Path) -> None:
    """Make a file's name in ``directory`` (just created, renamed or removed) survive a power
    cut: the file's own fsync does not cover its directory entry."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredLine:
    """One non-blank line of a ``JsonLinesFile`` as read back."""

    number: int  # from 1, as an editor counts
    text: bytes
    last: bool  # the file's final line: nothing but its own line end, if any, follows it
    ended: bool  # its line end reached the file: the write that made it was whole


class JsonLinesFile:
    """An append-only file of JSON lines that survives a crash: the crash journal's, the
    database-outage spool's.

    ``open()`` creates the file (for the data directory's owner, its name made durable) and
    opens it for appending. ``append`` writes one line with one ``write``, so a crash cuts at
    most the last line short, and ``sync()`` puts what was appended on the disk; what the
    lines mean, and which of them a reader may skip, is the owner's. ``truncate`` and
    ``replace`` shrink the file durably, ``replace`` atomically (a crash leaves the old file or
    the new one). Not thread-safe: its owner serialises the calls.
    """

    def __init__(self, path: Path, *, ascii_only: bool = True) -> None:
        self.path = path
        self.size = 0  # bytes in the file, as far as this object wrote or cut them
        self._ascii_only = ascii_only
        self._fd = -1

    @property
    def is_open(self) -> bool:
        return self._fd >= 0

    def fileno(self) -> int:
        return self._fd

    def open(self) -> None:
        """Open the file for appending, creating it if it is missing."""
        created = not self.path.exists()
        # Call metadata, like the database: not for every user of the machine.
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            # As SQLite does for its WAL files: recorderctl run as root must leave a file
            # recorderd can open.
            give_to_directory_owner(fd, self.path.parent)
            if created:
                fsync_directory(self.path.parent)  # the name must survive a power cut too
            self.size = os.fstat(fd).st_size
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def read(self) -> bytes:
        """Everything the open file holds."""
        chunks, offset = [], 0
        while chunk := os.pread(self._fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    @staticmethod
    def read_path(path: Path) -> bytes:
        """Everything the file at ``path`` holds; nothing if there is none."""
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return b""

    @staticmethod
    def lines(data: bytes) -> Iterator[StoredLine]:
        """The non-blank lines of ``data`` (a file's contents), in order."""
        lines = data.split(b"\n")
        for number, text in enumerate(lines, 1):
            if text.strip():
                yield StoredLine(number, text, last=number >= len(lines) - 1,
                                 ended=number < len(lines))

    def encode(self, doc: Mapping[str, Any]) -> bytes:
        """``doc`` as one line of the file."""
        return (json.dumps(doc, separators=(",", ":"), ensure_ascii=self._ascii_only)
                + "\n").encode()

    def append(self, doc: Mapping[str, Any]) -> None:
        """Write ``doc`` as one line (not yet durable: ``sync()``); OSError if it did not all
        reach the file."""
        if self._fd < 0:
            raise OSError(f"{self.path}: not open")
        line = self.encode(doc)
        written = os.write(self._fd, line)
        if written != len(line):
            # A full disk cut the write short: take the partial line back, or the next line
            # appended would be glued to it and be unreadable too (an entry lost).
            try:
                os.ftruncate(self._fd, self.size)
            except OSError:
                logger.exception("%s: cannot take back a line cut short", self.path)
            raise OSError(errno.ENOSPC, f"short write ({written} of {len(line)} bytes)",
                          str(self.path))
        self.size += written

    def sync(self) -> None:
        """Put every line appended so far on the disk.

        ``fdatasync`` is enough: of the metadata, appends change only the size, which it
        covers."""
        os.fdatasync(self._fd)

    def truncate(self, size: int) -> None:
        """Cut the file to its first ``size`` bytes, durably."""
        os.ftruncate(self._fd, size)
        os.fsync(self._fd)
        self.size = size

    def replace(self, docs: Iterable[Mapping[str, Any]]) -> None:
        """Make the file hold ``docs`` only, atomically and durably. The file is then open
        anew: a lock taken on the old one is not carried over."""
        tmp = self.path.with_name(self.path.name + ".new")
        data = b"".join(self.encode(doc) for doc in docs)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            try:
                give_to_directory_owner(fd, self.path.parent)
                written = os.write(fd, data)
                if written != len(data):
                    # A full disk: the old file, whole, must stay rather than this part of it.
                    raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)",
                                  str(tmp))
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)  # the room it took, on a disk that may be full
            raise
        os.replace(tmp, self.path)
        fsync_directory(self.path.parent)
        old, self._fd = self._fd, os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        if old >= 0:
            os.close(old)
        self.size = len(data)

    def close(self) -> None:
        """Close the file (which drops any lock on it); nothing is synced."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)
