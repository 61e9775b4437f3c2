"""The audit trail's head kept outside the database: ``audit-head`` beside it, rewritten
(atomically, durably) after every entry, and the lock every writer of the trail takes, in
recorderd or in an offline ``recorderctl``, so entries and heads are written in one order."""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.durable import fsync_directory, give_to_directory_owner
from recorder.store.evidence import HEAD_FILE_SOURCE, AuditHead

logger = logging.getLogger(__name__)

HEAD_NAME = "audit-head"
LOCK_NAME = "audit-head.lock"


def head_path(database: Path) -> Path:
    return database.with_name(HEAD_NAME)


def read_head(path: Path) -> AuditHead | None:
    """The head the file records; None if there is no file. ValueError if it is unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    try:
        return AuditHead(HEAD_FILE_SOURCE, int(doc["entry_id"]), str(doc["entry_hash"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not an audit head ({exc})") from exc


def write_head(path: Path, entry_id: int, entry_hash: str) -> None:
    """Make ``path`` name entry ``entry_id``, atomically and durably."""
    tmp = path.with_name(path.name + ".new")
    data = (json.dumps({"entry_id": entry_id, "entry_hash": entry_hash}) + "\n").encode()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
    try:
        give_to_directory_owner(fd, path.parent)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


@contextmanager
def writer_lock(database: Path) -> Iterator[None]:
    """Held while one entry is appended and its head written: recorderd and an offline
    recorderctl may both write to the trail, and a head written out of order would look like
    a truncated table."""
    lock = database.with_name(LOCK_NAME)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        give_to_directory_owner(fd, lock.parent)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


__all__ = ["HEAD_NAME", "head_path", "read_head", "write_head", "writer_lock"]
