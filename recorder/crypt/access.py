"""Opening a recording whether it is encrypted or not, and starting an encrypted one: the one
place the rest of the recorder meets the format (``sealed``) and the keys (``keys``).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from recorder.codecs.stored import install_opener, is_encrypted
from recorder.crypt.keys import (
    CryptKeyError,
    MasterKey,
    new_file_key,
    read_wrapped,
    unwrap,
    write_wrapped,
)
from recorder.crypt.reader import SealedReader, repair, reseal_prologue
from recorder.crypt.sealed import DEFAULT_CHUNK, MAGIC
from recorder.crypt.writer import SealedWriter
from recorder.errors import CodecError


def start_sealed(path: Path, file: BinaryIO, master: MasterKey, *, prologue: int = 0,
                 chunk_size: int = DEFAULT_CHUNK) -> SealedWriter:
    """The encrypted file a codec writer writes into, over the new, empty ``file`` at ``path``.

    The wrapped file key is written beside it (durably) before anything else, so no audio is
    ever on disk without the key that opens it; the writer's ``wrapped_key`` is it as text,
    for the row.
    """
    secret, wrapped = new_file_key(master)
    write_wrapped(path, wrapped)
    writer = SealedWriter(file, secret, wrapped.file_id, chunk_size=chunk_size,
                          prologue=prologue)
    writer.wrapped_key = wrapped.to_text()
    return writer


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


_installed: list[MasterKey] = []


def installed_keys() -> list[MasterKey]:
    """The keys ``install`` gave this process (recovery's repairs use them)."""
    return list(_installed)


def install(keys: Sequence[MasterKey]) -> None:
    """Have every reader of stored recordings in this process (``recorder.codecs.stored``)
    decrypt encrypted ones with ``keys``, and recovery repair them."""
    held = list(keys)
    _installed[:] = held

    def opener(path: Path) -> BinaryIO:
        try:
            return open_plain(path, held)
        except CryptKeyError as exc:
            raise CodecError(str(exc)) from exc

    install_opener(opener)


def decrypt_file(path: Path, out: BinaryIO, keys: Sequence[MasterKey]) -> int:
    """Write ``path``'s plaintext to ``out``, every chunk authenticated; the bytes written."""
    with open_plain(path, keys) as plain:
        before = out.tell() if out.seekable() else 0
        shutil.copyfileobj(plain, out, DEFAULT_CHUNK)
        return (out.tell() - before) if out.seekable() else -1


def repair_encrypted_wav(path: Path, keys: Sequence[MasterKey], header: Callable[[int], bytes],
                         data_offset: int) -> int:
    """Make a crashed encrypted WAV whole: its chunks up to the first that does not
    authenticate, its header (``header(data_bytes)``, ``data_offset`` bytes) counting them.
    Returns the data bytes kept."""
    key = file_key(path, keys)
    size = repair(path, key)
    data_bytes = max(0, size - data_offset)
    reseal_prologue(path, key, header(data_bytes))
    return data_bytes


def repair_sealed_chunks(path: Path, keys: Sequence[MasterKey]) -> int:
    """Make a crash-cut encrypted file whole (``sealed.repair``); its plaintext size."""
    return repair(path, file_key(path, keys))


__all__ = ["decrypt_file", "file_key", "install", "installed_keys", "is_encrypted",
           "open_plain", "repair_encrypted_wav", "repair_sealed_chunks", "start_sealed"]
