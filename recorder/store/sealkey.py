"""The seal key (``storage.seal_key_file``): 32 random bytes that key the rows' seals and the
audit chain (HMAC-SHA256 instead of plain SHA-256; docs/storage.md), so that someone who can
write the database, the files and the audit head, but cannot read this key, cannot forge
evidence that checks. Made by ``recorderctl seal-key init``; under systemd handed to the
service with LoadCredential= (docs/systemd.md).

Unlike the recordings' master key, losing it loses no recording: only the seals made with it
can no longer be checked.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from recorder.durable import fsync_directory
from recorder.errors import RecorderError

SEAL_KEY_BYTES = 32


class SealKeyError(RecorderError):
    """The seal key is missing or unusable; the message says why."""


@dataclass(frozen=True)
class SealKey:
    """The 32 bytes of the seal key file, and a name for them."""

    secret: bytes

    @property
    def id(self) -> str:
        """Names the key (in the audit trail and the reports) without revealing it."""
        return hashlib.sha256(b"recorder seal key id\0" + self.secret).hexdigest()[:16]

    def __repr__(self) -> str:  # never the secret, in a traceback or a log
        return f"SealKey(id={self.id})"


def seal_key_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the seal key (None: it can)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path} does not exist (make one with `recorderctl seal-key init`)"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if st.st_mode & 0o077:
        return (f"{path} is readable or writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
                "; it must be 0600 or 0400, owned by the service's user")
    if st.st_size != SEAL_KEY_BYTES:
        return f"{path} holds {st.st_size} bytes, not the {SEAL_KEY_BYTES} of a seal key"
    if not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    return None


def load_seal_key(path: Path) -> SealKey:
    """The seal key in ``path``; SealKeyError naming the problem."""
    problem = seal_key_problem(path)
    if problem is not None:
        raise SealKeyError(problem)
    try:
        secret = path.read_bytes()
    except OSError as exc:
        raise SealKeyError(f"cannot read {path}: {exc.strerror}") from exc
    if len(secret) != SEAL_KEY_BYTES:  # changed since the check
        raise SealKeyError(f"{path} holds {len(secret)} bytes, not the {SEAL_KEY_BYTES} of a "
                           "seal key")
    return SealKey(secret)


def create_seal_key(path: Path) -> SealKey:
    """32 random bytes in ``path`` (mode 0600, durable); an existing file is never replaced."""
    secret = os.urandom(SEAL_KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise SealKeyError(f"{path} exists; a seal key is never overwritten (the seals made "
                           "with it could no longer be checked)") from exc
    except OSError as exc:
        raise SealKeyError(f"cannot create {path}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, secret)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_directory(path.parent)
    return SealKey(secret)


__all__ = ["SEAL_KEY_BYTES", "SealKey", "SealKeyError", "create_seal_key", "load_seal_key",
           "seal_key_problem"]
