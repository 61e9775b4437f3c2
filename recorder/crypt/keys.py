"""The master key (``storage.key_file``) and the per-file keys it wraps (docs/encryption.md).

A file key is 32 random bytes used for one recording only; it is stored wrapped by the master
key with AES key wrap (RFC 3394), beside the recording (``NAME.key``) and in its row, never in
the recording: rotation then re-wraps it without touching the recording's bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap,
    aes_key_wrap,
)

from recorder import keyfile
from recorder.durable import fsync_directory, give_to_directory_owner
from recorder.errors import RecorderError

KEY_BYTES = keyfile.KEY_FILE_BYTES
FILE_ID_BYTES = 16
KEY_SUFFIX = ".key"
_KEY_DOCUMENT = "recorder-file-key"


class CryptKeyError(RecorderError):
    """A key is missing, unusable, or not the one a file needs; the message says which."""


def key_id(master: bytes) -> str:
    """A name for ``master`` that does not reveal it: what the files and the log call it."""
    return hashlib.sha256(b"recorder master key id\0" + master).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKey:
    """The 32 bytes of ``storage.key_file`` and their key id."""

    secret: bytes

    @property
    def id(self) -> str:
        return key_id(self.secret)

    def __repr__(self) -> str:  # never print the secret in a traceback or a log
        return f"MasterKey(id={self.id})"


_WHAT = "a key"
_INIT = "recorderctl key init"


def key_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the master key (None: it can). Said for the config key's error."""
    return keyfile.key_file_problem(path, what=_WHAT, init=_INIT)


def load_master_key(path: Path) -> MasterKey:
    """The master key in ``path``; CryptKeyError naming the problem (see ``key_file_problem``)."""
    try:
        return MasterKey(keyfile.read_key_file(path, what=_WHAT, init=_INIT))
    except keyfile.KeyFileProblem as exc:
        raise CryptKeyError(str(exc)) from exc


def create_master_key(path: Path, owner_of: Path | None = None) -> MasterKey:
    """Write 32 random bytes to ``path`` (mode 0600, durable); refuses to replace a file.
    ``owner_of``: run as root, the new file belongs to that file's owner (a rotation's new key
    must be readable by the service that read the old one)."""
    try:
        return MasterKey(keyfile.create_key_file(
            path, owner_of=owner_of,
            never_replaced="a key is never overwritten (the recordings it opens would be lost)"))
    except keyfile.KeyFileProblem as exc:
        raise CryptKeyError(str(exc)) from exc


@dataclass(frozen=True)
class WrappedKey:
    """A file key as stored: wrapped by the master key ``key_id``, for the file ``file_id``."""

    key_id: str
    wrapped: bytes
    file_id: bytes

    def to_text(self) -> str:
        """The JSON kept beside the file and in the row."""
        return json.dumps({"format": _KEY_DOCUMENT, "version": 1, "key_id": self.key_id,
                           "wrapped": base64.b64encode(self.wrapped).decode("ascii"),
                           "file_id": self.file_id.hex()}, sort_keys=True)

    @classmethod
    def from_text(cls, text: str, where: str = "the file key") -> WrappedKey:
        try:
            doc = json.loads(text)
            if doc.get("format") != _KEY_DOCUMENT or doc.get("version") != 1:
                raise ValueError("not a recorder file key")
            return cls(str(doc["key_id"]), base64.b64decode(doc["wrapped"], validate=True),
                       bytes.fromhex(doc["file_id"]))
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as exc:
            raise CryptKeyError(f"{where} is damaged: {exc}") from exc


def new_file_key(master: MasterKey) -> tuple[bytes, WrappedKey]:
    """A fresh file key and file id, and the key wrapped by ``master``."""
    secret, file_id = os.urandom(KEY_BYTES), os.urandom(FILE_ID_BYTES)
    return secret, WrappedKey(master.id, aes_key_wrap(master.secret, secret), file_id)


def unwrap(wrapped: WrappedKey, keys: list[MasterKey] | MasterKey) -> bytes:
    """The file key, unwrapped by whichever of ``keys`` wrapped it; CryptKeyError if none."""
    candidates = [keys] if isinstance(keys, MasterKey) else list(keys)
    for master in candidates:
        if master.id != wrapped.key_id:
            continue
        try:
            return aes_key_unwrap(master.secret, wrapped.wrapped)
        except InvalidUnwrap as exc:
            raise CryptKeyError(f"the file key does not unwrap with key {master.id}: it was "
                                f"altered") from exc
    have = ", ".join(m.id for m in candidates) or "none"
    raise CryptKeyError(f"this recording needs master key {wrapped.key_id}; the key given is "
                        f"{have} (wrong key file?)")


def rewrap(wrapped: WrappedKey, old: MasterKey, new: MasterKey) -> WrappedKey:
    """The same file key wrapped by ``new`` instead of ``old`` (rotation)."""
    return WrappedKey(new.id, aes_key_wrap(new.secret, unwrap(wrapped, old)), wrapped.file_id)


def key_path(recording: Path) -> Path:
    """Where a recording's wrapped key is kept beside it."""
    return recording.with_name(recording.name + KEY_SUFFIX)


def write_wrapped(recording: Path, wrapped: WrappedKey) -> None:
    """Keep ``wrapped`` beside ``recording``, replacing what was there atomically and durably."""
    final = key_path(recording)
    part = final.with_name(final.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        # `recorderctl key rotate` run as root must leave a key recorderd's user can read.
        give_to_directory_owner(fd, final.parent)
        os.write(fd, wrapped.to_text().encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    part.replace(final)
    fsync_directory(final.parent)


def read_wrapped(recording: Path) -> WrappedKey:
    """The wrapped key beside ``recording``; CryptKeyError if it is missing or damaged."""
    path = key_path(recording)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CryptKeyError(f"{path} is missing: the recording cannot be opened without its "
                            f"file key") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CryptKeyError(f"cannot read {path}: {exc}") from exc
    return WrappedKey.from_text(text, str(path))
