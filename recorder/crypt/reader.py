"""Reading an encrypted recording back (the format is ``sealed``): ``SealedReader`` is a
read-only, seekable file of the plaintext; strict, it refuses a file that was altered, cut or
reordered, naming the chunk; lenient (recovery), it ends at the last chunk that authenticates.
``repair`` makes a crash-cut file whole again, ``reseal_prologue`` gives it a new header.
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.crypt.sealed import (
    HEADER_BYTES,
    OVERHEAD,
    SealedError,
    open_record,
    parse_header,
    seal,
)

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class SealedReader(io.RawIOBase):
    """The plaintext of an encrypted recording, read-only and seekable (a Range read decrypts
    only the chunks it covers).

    ``strict`` (the default): opening checks the last chunk, so a cut file is refused at once;
    any chunk read that does not authenticate raises SealedError naming it. Not strict
    (recovery): the plaintext ends before the first chunk that does not authenticate.
    """

    def __init__(self, file: BinaryIO, key: bytes, *, strict: bool = True,
                 where: str = "", owns_file: bool = True) -> None:
        super().__init__()
        self._file = file
        self._owns_file = owns_file
        self.where = where or str(getattr(file, "name", "encrypted recording"))
        head = file.read(HEADER_BYTES) if file.seek(0) == 0 else b""
        self.geometry, self.file_id = parse_header(head, self.where)
        self._header = head[:HEADER_BYTES]
        self._aead = AESGCM(key)
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None
        self._file_size = file_size = file.seek(0, 2)
        slots, rest = self.geometry.records_in(file_size)
        self.chunks = slots + (1 if rest else 0)
        self.size = self._find_size(strict)

    def _find_size(self, strict: bool) -> int:
        if not strict:
            return self._good_prefix()
        if self.chunks == 0:
            raise SealedError(f"{self.where}: no chunks (the file was cut after its header)")
        last = self.chunks - 1
        plain, flagged = self._chunk(last)
        if not flagged:
            raise SealedError(f"{self.where}: chunk {last} is not the last one: the file was "
                              f"cut after it")
        if self._file_size != self.geometry.slot(last) + OVERHEAD + len(plain):
            raise SealedError(f"{self.where}: bytes follow the last chunk ({last})")
        return self.geometry.start(last) + len(plain)

    def _good_prefix(self) -> int:
        """Plaintext bytes up to the first chunk that does not authenticate (recovery)."""
        self.good_chunks = 0
        self.good_last = False
        size = 0
        for index in range(self.chunks):
            try:
                plain, last = self._chunk(index)
            except SealedError:
                break
            self.good_chunks = index + 1
            self.good_last = last
            size = self.geometry.start(index) + len(plain)
            if len(plain) < self.geometry.capacity(index) or last:
                break  # a tail: whatever follows it is no part of the file
        return size

    def _chunk(self, index: int) -> tuple[bytes, bool]:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1], index == self.chunks - 1
        capacity = self.geometry.capacity(index)
        self._file.seek(self.geometry.slot(index))
        record = self._file.read(OVERHEAD + capacity)
        plain, last = open_record(self._aead, self._header, record, index,
                                  capacity=capacity, where=self.where)
        if index < self.chunks - 1 and (last or len(plain) != capacity):
            raise SealedError(f"{self.where}: chunk {index} ends the file but more follow")
        self._cached = (index, plain)
        return plain, last

    @property
    def header(self) -> bytes:
        return self._header

    def read_chunk(self, index: int) -> bytes:
        """Chunk ``index``'s plaintext (authenticated)."""
        return self._chunk(index)[0]

    def verify(self) -> None:
        """Authenticate every chunk; SealedError naming the first one that does not."""
        for index in range(self.chunks):
            self._chunk(index)

    # --- the file ------------------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out) and self._pos < self.size:
            index = self.geometry.index_of(self._pos)
            plain, _ = self._chunk(index)
            offset = self._pos - self.geometry.start(index)
            n = min(len(plain) - offset, len(out) - done, self.size - self._pos)
            if n <= 0:
                break
            out[done:done + n] = plain[offset:offset + n]
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        if not self.closed and self._owns_file:
            self._file.close()
        super().close()


def repair(path: str | os.PathLike[str], key: bytes) -> int:
    """Make a crash-cut encrypted file whole: keep the chunks that authenticate up to the first
    that does not, and end the file after them with a chunk flagged last. A file that is whole
    already is left as it is. Returns the plaintext size."""
    with open(path, "r+b") as f:
        try:
            return SealedReader(f, key, where=str(path), owns_file=False).size
        except SealedError:
            pass
        reader = SealedReader(f, key, strict=False, where=str(path), owns_file=False)
        size, good, geo = reader.size, reader.good_chunks, reader.geometry
        if good and (reader.good_last or geo.start(good - 1) + geo.capacity(good - 1) > size):
            # It ends with a tail: reseal it flagged last (under a new nonce), drop what follows.
            index = good - 1
            plain = reader.read_chunk(index)
        else:
            index, plain = good, b""
        record = seal(AESGCM(key), reader.header, index, plain, last=True)
        # Cut first: on a full disk that frees the room the last record is written into.
        f.truncate(geo.slot(index))
        f.seek(geo.slot(index))
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
    return size


def reseal_prologue(path: str | os.PathLike[str], key: bytes, plain: bytes) -> None:
    """Replace the prologue (chunk 0: a WAV header) of a whole encrypted file by ``plain``, of
    the same length, sealed under a new nonce (recovery's header repair)."""
    with open(path, "r+b") as f:
        reader = SealedReader(f, key, where=str(path), owns_file=False)
        geo = reader.geometry
        if not geo.prologue or len(plain) != len(reader.read_chunk(0)):
            raise SealedError(f"{path}: a prologue of {len(plain)} bytes does not fit")
        f.seek(geo.slot(0))
        f.write(seal(AESGCM(key), reader.header, 0, plain, last=reader.chunks == 1))
        f.flush()
        os.fsync(f.fileno())


def cut_plain(path: str | os.PathLike[str], key: bytes, size: int) -> int:
    """End the plaintext of a whole encrypted file at ``size`` bytes (no more than it holds):
    the chunk holding its last byte is resealed that short, flagged last, under a new nonce,
    and the records after it are cut off (a full disk's cut to whole frames, a crashed MP3's
    last frame). Returns the plaintext size."""
    with open(path, "r+b") as f:
        reader = SealedReader(f, key, where=str(path), owns_file=False)
        geo = reader.geometry
        size = max(0, min(size, reader.size))
        if size == reader.size:
            return size
        index = geo.index_of(size - 1) if size else 0
        plain = reader.read_chunk(index)[:size - geo.start(index)] if size else b""
        record = seal(AESGCM(key), reader.header, index, plain, last=True)
        # Written in place first (the slot's bytes are allocated: no room needed), then the
        # rest cut: a crash in between leaves a record flagged last with bytes after it,
        # which recovery's repair cuts.
        f.seek(geo.slot(index))
        f.write(record)
        f.truncate(geo.slot(index) + len(record))
        f.flush()
        os.fsync(f.fileno())
    return size
