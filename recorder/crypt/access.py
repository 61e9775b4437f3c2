"""Opening a recording whether it is encrypted or not, and starting an encrypted one: the one
place the rest of the recorder meets the format (``sealed``), the keys (``keys``, ``keyring``)
and the work files (``workfiles``).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, cast

from recorder.codecs.stored import install_opener, is_encrypted
from recorder.crypt.keyring import KeyRing
from recorder.crypt.keys import (
    CryptKeyError,
    MasterKey,
    WrappedKey,
    key_path,
    new_file_key,
    read_wrapped,
    unwrap,
    write_wrapped,
)
from recorder.crypt.reader import SealedReader, cut_plain, repair, reseal_prologue
from recorder.crypt.sealed import DEFAULT_CHUNK, HEADER_BYTES, MAGIC, SealedError, parse_header
from recorder.crypt.workfiles import seal_work_file, work_key
from recorder.crypt.writer import SealedWriter
from recorder.errors import CodecError

Keys = Sequence[MasterKey] | KeyRing


def _listed(keys: Keys) -> list[MasterKey]:
    return keys.opening if isinstance(keys, KeyRing) else list(keys)


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


def reseal_as(existing: Path, file: BinaryIO, keys: Keys, *, prologue: int = 0,
              chunk_size: int = DEFAULT_CHUNK) -> SealedWriter:
    """A new version of the encrypted recording ``existing`` (a re-encode that silences a
    blackout), written into ``file`` under the same file key and file id, so that it replaces
    ``existing`` by one rename and the key beside it and in its row stays true."""
    wrapped = read_wrapped(existing)
    writer = SealedWriter(file, unwrap(wrapped, _listed(keys)), wrapped.file_id,
                          chunk_size=chunk_size, prologue=prologue)
    writer.wrapped_key = wrapped.to_text()
    return writer


def file_key(path: Path, keys: Keys) -> bytes:
    """The unwrapped key of the encrypted recording ``path``; CryptKeyError if it cannot be."""
    listed = _listed(keys)
    if not listed:
        raise CryptKeyError(f"{path} is encrypted and no key was given (storage.key_file, or "
                            f"--key-file)")
    return unwrap(read_wrapped(path), listed)


def _key_for(path: Path, file_id: bytes, keys: Keys) -> bytes:
    """The key of ``path`` whose header names ``file_id``: a work file's (held in memory), else
    the one beside it, which must be this file's."""
    held = work_key(file_id)
    if held is not None:
        return held
    wrapped = read_wrapped(path)
    if wrapped.file_id != file_id:
        raise CryptKeyError(f"{key_path(path)} is the key of another file (file id "
                            f"{wrapped.file_id.hex()}, the recording's is {file_id.hex()})")
    return file_key(path, keys)


def open_plain(path: Path, keys: Keys, *, strict: bool = True) -> BinaryIO:
    """``path``'s plaintext as a seekable binary file: the file itself when it is not
    encrypted, else a decrypting reader (SealedError as soon as what is read, or the file's
    end, does not authenticate; CryptKeyError without the right key)."""
    file = path.open("rb")
    try:
        head = file.read(HEADER_BYTES)
        if head[:len(MAGIC)] != MAGIC:
            file.seek(0)
            return file
        _, file_id = parse_header(head, str(path))
        reader = SealedReader(file, _key_for(path, file_id, keys), strict=strict,
                              where=str(path))
    except BaseException:
        file.close()
        raise
    return io.BufferedReader(reader, buffer_size=DEFAULT_CHUNK)


_installed: list[KeyRing] = []


def installed_keys() -> list[MasterKey]:
    """The keys ``install`` gave this process (recovery's repairs use them)."""
    return _installed[0].opening if _installed else []


def install(keys: Keys) -> None:
    """Have every reader of stored recordings in this process (``recorder.codecs.stored``)
    decrypt encrypted ones with ``keys`` (a ring is read at each opening: a reload's keys
    count at once), and recovery repair them."""
    ring = keys if isinstance(keys, KeyRing) else KeyRing.of(list(keys)) if keys else None
    _installed[:] = [ring] if ring is not None else []

    def opener(path: Path) -> BinaryIO:
        try:
            return open_plain(path, ring if ring is not None else [])
        except CryptKeyError as exc:
            raise CodecError(str(exc)) from exc

    install_opener(opener)


def sealed_if_encrypted(file: BinaryIO, sources: Sequence[Path], *,
                        prologue: int = 0) -> BinaryIO:
    """``file`` (new, empty) for a work file made from ``sources``: an encrypted work file
    (``workfiles``) when one of them is an encrypted recording, so their audio is never on disk
    in clear, else ``file`` itself."""
    if any(is_encrypted(source) for source in sources):
        return cast(BinaryIO, seal_work_file(file, prologue=prologue))
    return file


def decrypt_file(path: Path, out: BinaryIO, keys: Keys) -> int:
    """Write ``path``'s plaintext to ``out``, every chunk authenticated; the bytes written."""
    with open_plain(path, keys) as plain:
        before = out.tell() if out.seekable() else 0
        shutil.copyfileobj(plain, out, DEFAULT_CHUNK)
        return (out.tell() - before) if out.seekable() else -1


def verify_sealed(path: Path, keys: Keys) -> int:
    """Authenticate every chunk of the encrypted recording ``path`` and its end (a cut file,
    a record flagged last with more after it); its plaintext size. SealedError naming the
    first chunk that does not; CryptKeyError without its key."""
    with path.open("rb") as file:
        _, file_id = parse_header(file.read(HEADER_BYTES), str(path))
        reader = SealedReader(file, _key_for(path, file_id, keys), where=str(path),
                              owns_file=False)
        reader.verify()
        return reader.size


Plan = Callable[[int, BinaryIO], tuple[int, "bytes | None"]]


def repair_sealed(path: Path, keys: Keys, plan: Plan | None = None) -> int:
    """Make a crash-cut encrypted recording whole: its chunks up to the first that does not
    authenticate, ended by a record flagged last; then ``plan(plaintext size, plaintext)``
    says how much of it the format keeps (its whole frames) and its new first bytes (a header
    counting them; None: as they are). Returns the plaintext size kept."""
    key = file_key(path, keys)
    size = repair(path, key)
    if plan is None:
        return size
    with path.open("rb") as raw, SealedReader(raw, key, owns_file=False) as plain:
        keep, head = plan(size, cast(BinaryIO, plain))
    if keep < size:
        size = cut_plain(path, key, keep)
    if head is not None:
        reseal_prologue(path, key, head)
    return size


def current_wrapped(path: Path, known: str) -> str:
    """The wrapped key a row of ``path`` should keep: the one beside the file now (a rotation
    may have re-wrapped it since ``known`` was read), else ``known``."""
    if not known:
        return known
    try:
        return read_wrapped(path).to_text()
    except CryptKeyError:
        return known


def restore_key(path: Path, row_key: str, keys: Keys) -> str:
    """Put the wrapped key a row keeps (``row_key``) back beside the encrypted recording
    ``path``, its own missing or damaged; what was done, in words. CryptKeyError (nothing
    written) when the row's key is not this file's: another file id, a key that does not
    unwrap, or one whose chunks do not authenticate."""
    where = key_path(path)
    try:
        beside = read_wrapped(path)
        _key_for(path, beside.file_id, keys)
        verify_sealed(path, keys)
        return f"{where} is there and opens the recording: left as it is"
    except (CryptKeyError, SealedError):
        pass
    wrapped = WrappedKey.from_text(row_key, "the row's wrapped key")
    with path.open("rb") as file:
        _, file_id = parse_header(file.read(HEADER_BYTES), str(path))
        if wrapped.file_id != file_id:
            raise CryptKeyError(f"the row's key is for file id {wrapped.file_id.hex()}, "
                                f"{path} is {file_id.hex()}: not restored")
        try:
            SealedReader(file, unwrap(wrapped, _listed(keys)), where=str(path),
                         owns_file=False).verify()
        except SealedError as exc:
            raise CryptKeyError(f"the row's key does not open {path} ({exc}): not "
                                f"restored") from exc
    write_wrapped(path, wrapped)
    return f"{where} restored from the row (key id {wrapped.key_id})"


__all__ = ["KeyRing", "current_wrapped", "decrypt_file", "file_key", "install",
           "installed_keys", "is_encrypted", "open_plain", "repair_sealed", "reseal_as",
           "restore_key", "sealed_if_encrypted", "start_sealed", "verify_sealed"]
