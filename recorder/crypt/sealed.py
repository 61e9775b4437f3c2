"""The encrypted recording file: chunked AES-256-GCM written as it is recorded, read back with
random access (the format is docs/encryption.md; keep the two together).

``SealedWriter`` is the file a codec's writer writes into (write, seek, flush, close, as a
``BinaryIO``): it seals each chunk once it is full, reseals the tail and the prologue (the WAV
header) at every ``flush()``, and reseals a whole chunk a write reaches back into (a blackout).
Every sealing takes a fresh random nonce. ``SealedReader`` is a read-only, seekable file of the
plaintext; strict, it refuses a file that was altered, cut or reordered, naming the chunk;
lenient (recovery), it ends at the last chunk that authenticates. ``repair`` makes a file a
crash cut whole again.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.codecs.stored import ENCRYPTED_MAGIC
from recorder.errors import CodecError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer

MAGIC = ENCRYPTED_MAGIC  # what the codecs look for to open the file through the key
VERSION = 1
ALG_AES256_GCM = 1
HEADER = struct.Struct("<8sBBHII16sI")  # magic, version, alg, 0, chunk size, prologue, id, 0
HEADER_BYTES = HEADER.size  # 40
RECORD = struct.Struct("<IIB3x12s")  # index, plaintext length, flags, nonce
RECORD_HEAD = RECORD.size  # 24
AAD_FIELDS = 12  # index, length, flags: the record's part of the AAD
TAG_BYTES = 16
OVERHEAD = RECORD_HEAD + TAG_BYTES  # 40 bytes around each chunk's plaintext
FLAG_LAST = 1
DEFAULT_CHUNK = 16384
NONCE_BYTES = 12


class SealedError(CodecError):
    """An encrypted file that does not authenticate: altered, cut, reordered, or another key."""


@dataclass(frozen=True)
class Geometry:
    """Where each chunk's plaintext and record are (docs/encryption.md, "Geometry")."""

    chunk: int
    prologue: int

    def capacity(self, index: int) -> int:
        return self.prologue if self.prologue and index == 0 else self.chunk

    def start(self, index: int) -> int:
        """The plaintext offset of chunk ``index``'s first byte."""
        if not self.prologue:
            return index * self.chunk
        return 0 if index == 0 else self.prologue + (index - 1) * self.chunk

    def index_of(self, offset: int) -> int:
        """The chunk holding plaintext byte ``offset``."""
        if not self.prologue:
            return offset // self.chunk
        return 0 if offset < self.prologue else 1 + (offset - self.prologue) // self.chunk

    def slot(self, index: int) -> int:
        """The file offset of record ``index``."""
        if not self.prologue:
            return HEADER_BYTES + index * (self.chunk + OVERHEAD)
        if index == 0:
            return HEADER_BYTES
        return HEADER_BYTES + self.prologue + OVERHEAD + (index - 1) * (self.chunk + OVERHEAD)

    def records_in(self, file_size: int) -> tuple[int, int]:
        """(whole slots, bytes of the record after them) in a file of ``file_size`` bytes."""
        body = file_size - HEADER_BYTES
        if body <= 0:
            return 0, 0
        if self.prologue:
            first = self.prologue + OVERHEAD
            if body < first:
                return 0, body
            full, rest = divmod(body - first, self.chunk + OVERHEAD)
            return 1 + full, rest
        return divmod(body, self.chunk + OVERHEAD)


def make_header(geometry: Geometry, file_id: bytes) -> bytes:
    return HEADER.pack(MAGIC, VERSION, ALG_AES256_GCM, 0, geometry.chunk, geometry.prologue,
                       file_id, 0)


def parse_header(raw: bytes, where: str) -> tuple[Geometry, bytes]:
    """The geometry and file id of a file header; SealedError if it is not one."""
    if len(raw) < HEADER_BYTES or raw[:8] != MAGIC:
        raise SealedError(f"{where}: not an encrypted recording")
    _, version, alg, _, chunk, prologue, file_id, _ = HEADER.unpack(raw[:HEADER_BYTES])
    if version != VERSION or alg != ALG_AES256_GCM:
        raise SealedError(f"{where}: encrypted recording version {version}, algorithm {alg} "
                          f"is not known to this recorder")
    if not 16 <= chunk <= 1 << 24 or prologue > 1 << 16:
        raise SealedError(f"{where}: damaged header (chunk size {chunk}, prologue {prologue})")
    return Geometry(chunk, prologue), file_id


def is_sealed(file: BinaryIO) -> bool:
    """Whether the file (at its start) is an encrypted recording; leaves its position at 0."""
    file.seek(0)
    head = file.read(len(MAGIC))
    file.seek(0)
    return head == MAGIC


def seal(aead: AESGCM, header: bytes, index: int, plain: ReadableBuffer, last: bool) -> bytes:
    """One chunk record, under a fresh random nonce."""
    flags = FLAG_LAST if last else 0
    length = memoryview(plain).nbytes
    nonce = os.urandom(NONCE_BYTES)
    head = RECORD.pack(index, length, flags, nonce)
    return head + aead.encrypt(nonce, bytes(plain), header + head[:AAD_FIELDS])


def open_record(aead: AESGCM, header: bytes, record: bytes, index: int, *, capacity: int,
                where: str) -> tuple[bytes, bool]:
    """The plaintext and last flag of ``record`` found in slot ``index``; SealedError if it
    does not authenticate there."""
    if len(record) < OVERHEAD:
        raise SealedError(f"{where}: chunk {index} is cut short (the file was truncated)")
    got, length, flags, nonce = RECORD.unpack(record[:RECORD_HEAD])
    if got != index:
        raise SealedError(f"{where}: chunk {index} holds chunk {got}'s record (reordered)")
    if length > capacity:
        raise SealedError(f"{where}: chunk {index} does not authenticate (a length of {length}"
                          f" in a chunk of {capacity})")
    if len(record) < OVERHEAD + length:
        raise SealedError(f"{where}: chunk {index} is cut short (the file was truncated)")
    try:
        plain = aead.decrypt(nonce, record[RECORD_HEAD:OVERHEAD + length],
                             header + record[:AAD_FIELDS])
    except InvalidTag as exc:
        raise SealedError(f"{where}: chunk {index} does not authenticate (altered, or "
                          f"another file's key)") from exc
    return plain, bool(flags & FLAG_LAST)


class _Disk:
    """Positioned reads and writes on the file a writer was given (a descriptor, or BytesIO)."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        try:
            self.fd = file.fileno()
        except (OSError, io.UnsupportedOperation, ValueError):
            self.fd = -1
        self._reader = -1  # a second descriptor: the writer's may be write-only

    def write_at(self, data: bytes, offset: int) -> None:
        if self.fd < 0:
            self.file.seek(offset)
            self.file.write(data)
            return
        done = 0
        while done < len(data):
            done += os.pwrite(self.fd, memoryview(data)[done:], offset + done)

    def read_at(self, size: int, offset: int) -> bytes:
        if self.fd < 0:
            self.file.seek(offset)
            return self.file.read(size)
        if self._reader < 0:
            self._reader = os.open(self.file.name, os.O_RDONLY)
        return os.pread(self._reader, size, offset)

    def fsync(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def close(self) -> None:
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1
        self.file.close()


class SealedWriter(io.RawIOBase):
    """A recording's file, encrypted as it is written; what a codec writer gets as its file.

    ``fileno()`` is refused on purpose: the codecs then rewrite their header through
    ``seek``/``write`` (which reseals it) instead of ``pwrite`` on the ciphertext.
    """

    def __init__(self, file: BinaryIO, key: bytes, file_id: bytes, *,
                 chunk_size: int = DEFAULT_CHUNK, prologue: int = 0) -> None:
        super().__init__()
        self.geometry = Geometry(chunk_size, prologue)
        self._disk = _Disk(file)
        self.name = getattr(file, "name", "")
        self._aead = AESGCM(key)
        self._header = make_header(self.geometry, file_id)
        self._pos = 0  # the plaintext write position
        self._size = 0  # plaintext bytes in the file (sealed or waiting in the buffers)
        self._prologue = bytearray()
        self._tail_index = 1 if prologue else 0
        self._tail = bytearray()
        self._dirty: set[int] = set()
        self.sealings = 0  # records written: for the tests and the benchmark
        self._disk.write_at(self._header, 0)

    # --- the BinaryIO a codec writer uses -----------------------------------------------------

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("an encrypted recording is written through its methods")

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def write(self, data: ReadableBuffer) -> int:
        """Write at the position: appended to the tail, or resealing what it reaches back to."""
        self._check_open()
        view = memoryview(data).cast("B")
        if self._pos > self._size:
            raise io.UnsupportedOperation("an encrypted recording cannot have holes")
        written = len(view)
        geo = self.geometry
        while len(view):
            index = geo.index_of(self._pos)
            offset = self._pos - geo.start(index)
            n = min(geo.capacity(index) - offset, len(view))
            piece = view[:n]
            if geo.prologue and index == 0:
                self._prologue[offset:offset + n] = piece
                self._dirty.add(0)
            elif index == self._tail_index:
                self._tail[offset:offset + n] = piece
                if len(self._tail) == geo.capacity(index):
                    self._seal_full_tail()
                else:
                    self._dirty.add(index)
            else:
                self._patch_sealed(index, offset, bytes(piece))
            self._pos += n
            self._size = max(self._size, self._pos)
            view = view[n:]
        return written

    def flush(self) -> None:
        """Seal the tail (flagged last) and the prologue if they changed: after this a crash
        keeps everything written so far."""
        if self.closed or (not self._dirty and not self._ends_unsealed()):
            return
        if self.geometry.prologue and 0 in self._dirty:
            self._put(0, self._prologue, last=self._size < self.geometry.prologue)
        if self._size >= self.geometry.prologue:
            self._put(self._tail_index, self._tail, last=True)
        self._dirty.clear()
        self._last_sealed = self._tail_index

    def fsync(self) -> None:
        """``flush()``, then have the OS put the file on the disk."""
        self.flush()
        self._disk.fsync()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._dirty.add(self._tail_index)
            self.flush()
        finally:
            self._disk.close()
            super().close()

    # --- sealing -------------------------------------------------------------------------------

    _last_sealed = -1  # the index last written flagged last

    def _ends_unsealed(self) -> bool:
        """Whether the file does not end with a record flagged last (a chunk just filled)."""
        return self._last_sealed != self._tail_index

    def _put(self, index: int, plain: ReadableBuffer, last: bool) -> None:
        self._disk.write_at(seal(self._aead, self._header, index, plain, last),
                            self.geometry.slot(index))
        self.sealings += 1

    def _seal_full_tail(self) -> None:
        self._put(self._tail_index, self._tail, last=False)
        self._dirty.discard(self._tail_index)
        self._tail_index += 1
        self._tail = bytearray()

    def _patch_sealed(self, index: int, offset: int, piece: bytes) -> None:
        """Change bytes of a whole chunk already sealed: read it, patch it, reseal it."""
        where = self.name or "encrypted recording"
        record = self._disk.read_at(OVERHEAD + self.geometry.capacity(index),
                                    self.geometry.slot(index))
        plain, _ = open_record(self._aead, self._header, record, index,
                               capacity=self.geometry.capacity(index), where=where)
        patched = bytearray(plain)
        patched[offset:offset + len(piece)] = piece
        self._put(index, patched, last=False)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("write to a closed encrypted recording")


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
        f.seek(geo.slot(index))
        f.write(record)
        f.truncate(geo.slot(index) + len(record))
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
