"""Secret key files: 32 random bytes in a file only the service's user may read (the
recordings' master key, ``storage.key_file``; the evidence's seal key,
``storage.seal_key_file``). One set of rules for both: what makes a file unusable, reading it,
and writing a new one that never replaces an old one. Each key's module says what its key is
for and raises its own error with these messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from recorder.durable import fsync_directory

KEY_FILE_BYTES = 32


class KeyFileProblem(Exception):
    """Why a key file cannot be read or made, in words naming the file."""


def key_file_problem(path: Path, *, what: str, init: str) -> str | None:
    """Why ``path`` cannot be ``what`` (None: it can); ``init`` is the command that makes one."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist (make one with `{init}`)"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_mode & 0o077:
        return (f"{path} is readable or writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
                "; it must be 0600 or 0400, owned by the service's user")
    if st.st_size != KEY_FILE_BYTES:
        return f"{path} holds {st.st_size} bytes, not the {KEY_FILE_BYTES} of {what}"
    if not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    return None


def read_key_file(path: Path, *, what: str, init: str) -> bytes:
    """The 32 bytes in ``path``; KeyFileProblem naming what is wrong (``key_file_problem``)."""
    problem = key_file_problem(path, what=what, init=init)
    if problem is not None:
        raise KeyFileProblem(problem)
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise KeyFileProblem(f"cannot read {path}: {exc.strerror}") from exc
    if len(secret) != KEY_FILE_BYTES:  # changed since the check
        raise KeyFileProblem(f"{path} holds {len(secret)} bytes, not the {KEY_FILE_BYTES} of "
                             f"{what}")
    return secret


def create_key_file(path: Path, *, never_replaced: str, owner_of: Path | None = None) -> bytes:
    """32 random bytes written to ``path`` (mode 0600, durable) and returned; an existing file
    is never replaced (``never_replaced`` says why, in the refusal). ``owner_of``: run as root,
    the new file belongs to that file's owner (a rotation's new key must be readable by the
    service that read the old one)."""
    secret = os.urandom(KEY_FILE_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileProblem(f"{path} exists; {never_replaced}") from exc
    except OSError as exc:
        raise KeyFileProblem(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        if owner_of is not None and os.geteuid() == 0:
            owner = owner_of.stat()
            os.fchown(fd, owner.st_uid, owner.st_gid)
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)
    return secret


__all__ = ["KEY_FILE_BYTES", "KeyFileProblem", "create_key_file", "key_file_problem",
           "read_key_file"]
