"""The encrypted recording file format (docs/encryption.md; keep the two together): its
header, the geometry of its chunks (where each chunk's plaintext and record are: index math, no
scan), and sealing and opening one chunk record. ``writer`` writes such files as they are
recorded, ``reader`` reads them back.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.codecs.stored import ENCRYPTED_MAGIC
from recorder.errors import CodecError

# What a chunk's plaintext may be handed as (AESGCM takes these, not any buffer).
Buffer = bytes | bytearray | memoryview

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
DEFAULT_CHUNK = 16384  # a file written without syncs (a conversion), or whose syncs vary (MP3)
VARYING_CHUNK = 4096  # a recording whose bytes per sync vary: its tail, resealed, stays short
MIN_CHUNK = 4000
MAX_CHUNK = 1 << 16
NONCE_BYTES = 12


class SealedError(CodecError):
    """An encrypted file that does not authenticate: altered, cut, reordered, or another key."""


def chunk_size_for(bytes_per_sync: int | None) -> int:
    """The chunk size of a recording whose writer hands it ``bytes_per_sync`` at every sync
    (None: a number that varies): a whole number of syncs' bytes, or a whole fraction of them,
    so that every sync ends on a chunk's end and reseals no partly filled tail
    (docs/encryption.md, "Cost")."""
    if not bytes_per_sync or bytes_per_sync < 1:
        return VARYING_CHUNK
    if bytes_per_sync > MAX_CHUNK:
        for parts in range(2, bytes_per_sync):
            if bytes_per_sync % parts == 0 and bytes_per_sync // parts <= MAX_CHUNK:
                return bytes_per_sync // parts
    return bytes_per_sync * -(-MIN_CHUNK // bytes_per_sync)


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


def seal(aead: AESGCM, header: bytes, index: int, plain: Buffer, last: bool) -> bytes:
    """One chunk record, under a fresh random nonce."""
    flags = FLAG_LAST if last else 0
    length = len(memoryview(plain))
    nonce = os.urandom(NONCE_BYTES)
    head = RECORD.pack(index, length, flags, nonce)
    return head + aead.encrypt(nonce, plain, header + head[:AAD_FIELDS])


class Sealer:
    """Seals the chunks of one file as ``seal`` does, at less cost per chunk: the record's
    head and its ciphertext come back apart (written together by ``pwritev``, never joined),
    and the random nonces are drawn from the OS many at a time (each still fresh and random;
    a file seals a few thousand chunks an hour)."""

    _POOL = 128  # nonces drawn from the OS at once

    def __init__(self, key: bytes, header: bytes) -> None:
        self._aead = AESGCM(key)
        self._header = header
        self._nonces = b""
        self._next = NONCE_BYTES * self._POOL  # drawn at the first sealing

    @property
    def aead(self) -> AESGCM:
        return self._aead

    def seal(self, index: int, plain: Buffer, length: int, last: bool) -> tuple[bytes, bytes]:
        """Chunk ``index``'s record as (its first 24 bytes, ciphertext and tag); ``length``
        is ``plain``'s, in bytes."""
        at = self._next
        if at >= NONCE_BYTES * self._POOL:
            self._nonces, at = os.urandom(NONCE_BYTES * self._POOL), 0
        self._next = at + NONCE_BYTES
        nonce = self._nonces[at:at + NONCE_BYTES]
        head = RECORD.pack(index, length, FLAG_LAST if last else 0, nonce)
        return head, self._aead.encrypt(nonce, plain, self._header + head[:AAD_FIELDS])


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
