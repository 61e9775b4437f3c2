"""Writing an encrypted recording as it is recorded (the format is ``sealed``).

``SealedWriter`` is the file a codec's writer writes into (write, seek, flush, close, as a
``BinaryIO``): it seals each chunk once it is full, reseals the tail at every ``flush()`` and
the prologue (the WAV header) at ``fsync()`` and close, and reseals a whole chunk a write
reaches back into (a blackout). Every sealing takes a fresh random nonce.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recorder.crypt.reader import repair, reseal_prologue
from recorder.crypt.sealed import (
    DEFAULT_CHUNK,
    OVERHEAD,
    Geometry,
    make_header,
    open_record,
    seal,
)

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


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
        self.write_many(offset, [data])

    def write_many(self, offset: int, parts: list[bytes]) -> None:
        """``parts`` one after the other from ``offset``."""
        if self.fd < 0:
            self.file.seek(offset)
            for part in parts:
                self.file.write(part)
            return
        total = sum(len(p) for p in parts)
        done = os.pwritev(self.fd, parts, offset)
        if done < total:  # a short write (a signal, a full disk): the rest one by one
            rest = b"".join(parts)[done:]
            while rest:
                n = os.pwrite(self.fd, rest, offset + done)
                done += n
                rest = rest[n:]

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
        self._tail_start = self.geometry.start(self._tail_index)
        self._tail = bytearray()
        # The prologue (a WAV header rewritten at every sync) is sealed at once the first time,
        # then at each fsync() and at close(): see flush().
        self._prologue_sealed = False
        self._dirty: set[int] = set()
        self._queued: list[tuple[int, bytes]] = []  # (offset, record) sealed, not yet written
        self.sealings = 0  # records written: for the tests and the benchmark
        self.wrapped_key = ""  # the file key as the row keeps it (recorder.crypt.access)
        self._key = key
        self._cut = False  # cut_to_whole() was called: nothing more is written
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
        written = len(view)
        if self._pos == self._size and self._pos >= self._tail_start:
            self._append(view)  # what a recording does all the time: keep it short
        else:
            self._write_within(view)
        return written

    def _append(self, view: memoryview) -> None:
        chunk = self.geometry.chunk
        while len(view):
            room = chunk - len(self._tail)
            if len(view) < room:
                self._tail += view
                self._dirty.add(self._tail_index)
                self._pos += len(view)
                break
            self._tail += view[:room]
            self._pos += room
            view = view[room:]
            self._seal_full_tail()
        self._size = self._pos

    def _write_within(self, view: memoryview) -> None:
        """A write that is not a plain append: the prologue, or back into sealed chunks."""
        if self._pos > self._size:
            raise io.UnsupportedOperation("an encrypted recording cannot have holes")
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

    def cut_to_whole(self, describe: Callable[[int], bytes | None]) -> int:
        """After a write the disk refused: forget what was not written, keep the chunks on
        disk that authenticate and end the file after them (``reader.repair``), then reseal
        the prologue as ``describe(plaintext bytes kept)`` says (None: as it is). Returns the
        plaintext bytes kept; nothing more is written to the file."""
        self._queued.clear()
        self._dirty.clear()
        self._cut = True
        kept = repair(self.name, self._key)
        head = describe(kept)
        if head is not None and self.geometry.prologue:
            reseal_prologue(self.name, self._key, head)
        return kept

    def rewrite_start(self, head: bytes) -> None:
        """Replace the first bytes, within the prologue, without moving the write position:
        what ``recorder.codecs.buffered.rewrite_at_start`` asks of a WAV's header."""
        if len(head) > len(self._prologue):
            raise ValueError("a rewrite of the start must stay within the prologue written")
        self._prologue[:len(head)] = head
        self._dirty.add(0)

    def flush(self) -> None:
        """Seal the tail (flagged last) if it changed: after this a crash keeps every byte
        appended so far.

        A changed prologue is sealed the first time, then only by ``fsync()`` and ``close()``:
        a WAV rewrites its header at every sync, and an encrypted WAV is only ever read through
        the recorder, whose reader counts the audio after a stale header (as after a crash
        between two syncs of a plain one) and whose recovery rewrites it. That saves a sealing
        and a write per sync.
        """
        self._seal(prologue=not self._prologue_sealed)

    def fsync(self) -> None:
        """Seal everything that changed, the prologue too, and have the OS put the file on the
        disk."""
        self._seal(prologue=True)
        self._disk.fsync()

    def _seal(self, prologue: bool) -> None:
        if self.closed or self._cut:
            return
        geo = self.geometry
        if geo.prologue and prologue and 0 in self._dirty:
            self._put(0, self._prologue, last=self._size < geo.prologue)
            self._dirty.discard(0)
            self._prologue_sealed = self._size >= geo.prologue
        # The tail only when it changed, or when a chunk just filled and the file must end
        # with a chunk flagged last.
        if self._size >= geo.prologue and (
                self._tail_index in self._dirty or self._ends_unsealed()):
            self._queue(self._tail_index, self._tail, last=True)
            self._dirty.discard(self._tail_index)
            self._last_sealed = self._tail_index
        self._write_queued()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._dirty.add(self._tail_index)
            self._seal(prologue=True)
        finally:
            self._disk.close()
            super().close()

    # --- sealing -------------------------------------------------------------------------------

    _last_sealed = -1  # the index last written flagged last

    def _ends_unsealed(self) -> bool:
        """Whether the file does not end with a record flagged last (a chunk just filled)."""
        return self._last_sealed != self._tail_index

    def _put(self, index: int, plain: bytes | bytearray, last: bool) -> None:
        """Seal chunk ``index`` and write it, after the full chunks waiting to be written."""
        self._queue(index, plain, last)
        self._write_queued()

    def _queue(self, index: int, plain: bytes | bytearray, last: bool) -> None:
        self._queued.append((self.geometry.slot(index),
                             seal(self._aead, self._header, index, plain, last)))
        self.sealings += 1

    def _write_queued(self) -> None:
        """Write the records sealed so far: the full chunks and the tail after them are
        contiguous, so a sync usually takes one system call."""
        queued, self._queued = self._queued, []
        start = 0
        for n in range(1, len(queued) + 1):
            if n == len(queued) or queued[n][0] != queued[n - 1][0] + len(queued[n - 1][1]):
                self._disk.write_many(queued[start][0], [r for _, r in queued[start:n]])
                start = n

    def _seal_full_tail(self) -> None:
        # Written with the next flush (the tail's sealing follows it on disk), or before
        # anything reads the file back.
        self._queue(self._tail_index, self._tail, last=False)
        self._dirty.discard(self._tail_index)
        self._tail_index += 1
        self._tail_start += self.geometry.chunk
        self._tail = bytearray()

    def _patch_sealed(self, index: int, offset: int, piece: bytes) -> None:
        """Change bytes of a whole chunk already sealed: read it, patch it, reseal it."""
        self._write_queued()
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
