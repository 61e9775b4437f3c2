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
from dataclasses import dataclass
from pathlib import Path

from recorder import keyfile
from recorder.errors import RecorderError

SEAL_KEY_BYTES = keyfile.KEY_FILE_BYTES


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


_WHAT = "a seal key"
_INIT = "recorderctl seal-key init"


def seal_key_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the seal key (None: it can)."""
    return keyfile.key_file_problem(path, what=_WHAT, init=_INIT)


def load_seal_key(path: Path) -> SealKey:
    """The seal key in ``path``; SealKeyError naming the problem."""
    try:
        return SealKey(keyfile.read_key_file(path, what=_WHAT, init=_INIT))
    except keyfile.KeyFileProblem as exc:
        raise SealKeyError(str(exc)) from exc


def create_seal_key(path: Path) -> SealKey:
    """32 random bytes in ``path`` (mode 0600, durable); an existing file is never replaced."""
    try:
        return SealKey(keyfile.create_key_file(
            path, never_replaced="a seal key is never overwritten (the seals made with it could "
            "no longer be checked)"))
    except keyfile.KeyFileProblem as exc:
        raise SealKeyError(str(exc)) from exc


__all__ = ["SEAL_KEY_BYTES", "SealKey", "SealKeyError", "create_seal_key", "load_seal_key",
           "seal_key_problem"]
