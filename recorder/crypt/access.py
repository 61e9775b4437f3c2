"""Opening a recording whether it is encrypted or not, and starting an encrypted one: the one
place the rest of the recorder meets the format (``sealed``) and the keys (``keys``).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from recorder.crypt.keys import (
    CryptKeyError,
    MasterKey,
    new_file_key,
    read_wrapped,
    unwrap,
    write_wrapped,
)
from recorder.crypt.sealed import DEFAULT_CHUNK, MAGIC, SealedReader, SealedWriter


def is_encrypted(path: Path) -> bool:
    """Whether ``path`` is an encrypted recording (by its first bytes)."""
    try:
        with path.open("rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def start_sealed(path: Path, file: BinaryIO, master: MasterKey, *, prologue: int = 0,
                 chunk_size: int = DEFAULT_CHUNK) -> SealedWriter:
    """The encrypted file a codec writer writes into, over the new, empty ``file`` at ``path``.

    The wrapped file key is written beside it (durably) before anything else, so no audio is
    ever on disk without the key that opens it.
    """
    secret, wrapped = new_file_key(master)
    write_wrapped(path, wrapped)
    return SealedWriter(file, secret, wrapped.file_id, chunk_size=chunk_size, prologue=prologue)


def file_key(path: Path, keys: Sequence[MasterKey]) -> bytes:
    """The unwrapped key of the encrypted recording ``path``; CryptKeyError if it cannot be."""
    if not keys:
        raise CryptKeyError(f"{path} is encrypted and no key was given (storage.key_file, or "
                            f"--key-file)")
    return unwrap(read_wrapped(path), list(keys))


def open_plain(path: Path, keys: Sequence[MasterKey], *, strict: bool = True) -> BinaryIO:
    """``path``'s plaintext as a seekable binary file: the file itself when it is not
    encrypted, else a decrypting reader (SealedError as soon as what is read, or the file's
    end, does not authenticate; CryptKeyError without the right key)."""
    file = path.open("rb")
    try:
        if file.read(len(MAGIC)) != MAGIC:
            file.seek(0)
            return file
        reader = SealedReader(file, file_key(path, keys), strict=strict, where=str(path))
    except BaseException:
        file.close()
        raise
    return io.BufferedReader(reader, buffer_size=DEFAULT_CHUNK)


def decrypt_file(path: Path, out: BinaryIO, keys: Sequence[MasterKey]) -> int:
    """Write ``path``'s plaintext to ``out``, every chunk authenticated; the bytes written."""
    with open_plain(path, keys) as plain:
        before = out.tell() if out.seekable() else 0
        shutil.copyfileobj(plain, out, DEFAULT_CHUNK)
        return (out.tell() - before) if out.seekable() else -1
