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

from recorder.crypt.reader import SealedReader, cut_plain, repair, reseal_prologue
from recorder.crypt.sealed import (
    DEFAULT_CHUNK,
    OVERHEAD,
    Buffer,
    Geometry,
    Sealer,
    make_header,
    open_record,
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
        self.write_many(offset, [data], len(data))

    def write_many(self, offset: int, parts: list[Buffer], total: int) -> None:
        """``parts``, ``total`` bytes, one after the other from ``offset``."""
        if self.fd < 0:
            self.file.seek(offset)
            for part in parts:
                self.file.write(part)
            return
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

    Written for the writer loop's sake (docs/encryption.md, "Cost"): a write that fills chunks
    seals them straight from the caller's buffer (no copy into the tail), the records sealed
    since the last flush go to the disk in one ``pwritev`` with the tail after them, and each
    record's head and ciphertext are never joined.
    """

    # Records sealed but not yet written are written once they hold this much (a file written
    # without flushes, e.g. a conversion, must not be held in memory whole).
    _PENDING_BYTES = 1 << 20

    def __init__(self, file: BinaryIO, key: bytes, file_id: bytes, *,
                 chunk_size: int = DEFAULT_CHUNK, prologue: int = 0) -> None:
        super().__init__()
        self.geometry = geo = Geometry(chunk_size, prologue)
        self._chunk = chunk_size
        self._disk = _Disk(file)
        self.name = getattr(file, "name", "")
        self._header = make_header(geo, file_id)
        self._sealer = Sealer(key, self._header)
        self._pos = 0  # the plaintext write position
        self._size = 0  # plaintext bytes in the file (sealed or waiting in the buffers)
        self._prologue = bytearray()
        self._tail_index = 1 if prologue else 0
        self._tail_start = geo.start(self._tail_index)
        self._tail_slot = geo.slot(self._tail_index)  # where the tail's record is
        self._tail = bytearray()
        self._tail_dirty = False
        # The prologue (a WAV header rewritten at every sync) is sealed at once the first time,
        # then at each fsync() and at close(): see flush().
        self._prologue_dirty = False
        self._prologue_sealed = False
        self._last_sealed = -1  # the index last written flagged last
        # Records sealed, not yet written: contiguous from _pending_at, as buffers.
        self._pending: list[Buffer] = []
        self._pending_at = 0
        self._pending_end = 0
        self.sealings = 0  # records sealed: for the tests and the benchmark
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
        if self.closed:
            raise ValueError("write to a closed encrypted recording")
        view = memoryview(data).cast("B")
        count = len(view)
        pos = self._pos
        if pos != self._size or pos < self._tail_start:
            self._write_within(view)
            return count
        # An append: what a recording does all the time, so kept short. A sync's bytes are
        # usually one whole chunk (docs/encryption.md, "Chunk size"), sealed from the buffer.
        chunk = self._chunk
        tail = self._tail
        room = chunk - len(tail)
        if count < room:
            tail += view
            self._tail_dirty = True
        else:
            done = 0
            if tail:
                tail += view[:room]
                self._seal_full_tail(tail, chunk)
                done = room
            while count - done >= chunk:  # whole chunks sealed from the caller's buffer
                self._seal_full_tail(view[done:done + chunk], chunk)
                done += chunk
            # The tail's buffer is kept: what it held is sealed (AESGCM copied it).
            del tail[:]
            if done < count:
                tail += view[done:]
                self._tail_dirty = True
            else:
                self._tail_dirty = False
        self._pos = self._size = pos + count
        return count

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
                self._prologue_dirty = True
            elif index == self._tail_index:
                self._tail[offset:offset + n] = piece
                if len(self._tail) == geo.capacity(index):
                    self._seal_full_tail(self._tail, len(self._tail))
                    self._tail = bytearray()
                else:
                    self._tail_dirty = True
            else:
                self._patch_sealed(index, offset, bytes(piece))
            self._pos += n
            self._size = max(self._size, self._pos)
            view = view[n:]

    def cut_to_whole(self, describe: Callable[[int, BinaryIO], tuple[int, bytes | None]]
                     ) -> int:
        """After a write the disk refused: forget what was not written, keep the chunks on
        disk that authenticate and end the file after them (``reader.repair``), then let
        ``describe(plaintext bytes kept, the plaintext)`` say how many of them to keep (the
        format's whole frames) and what its first bytes become (None: as they are). Returns
        the plaintext bytes kept; nothing more is written to the file."""
        self._pending.clear()
        self._tail_dirty = self._prologue_dirty = False
        self._cut = True
        kept = repair(self.name, self._key)
        with open(self.name, "rb") as raw, SealedReader(raw, self._key, owns_file=False) as plain:
            keep, head = describe(kept, plain)  # type: ignore[arg-type]
        if keep < kept:
            kept = cut_plain(self.name, self._key, keep)
        if head is not None and self.geometry.prologue:
            reseal_prologue(self.name, self._key, head)
        return kept

    def rewrite_start(self, head: bytes) -> None:
        """Replace the first bytes without moving the write position: what
        ``recorder.codecs.buffered.rewrite_at_start`` asks of a WAV's header. Within the
        prologue it is sealed with it; a file without one (a work file, rewritten once at its
        close) reseals the chunks it reaches."""
        if not self.geometry.prologue:
            at = self._pos
            self._pos = 0
            try:
                self._write_within(memoryview(head))
            finally:
                self._pos = at
            return
        if len(head) > len(self._prologue):
            raise ValueError("a rewrite of the start must stay within the prologue written")
        self._prologue[:len(head)] = head
        self._prologue_dirty = True

    def flush(self) -> None:
        """Seal the tail (flagged last) if it changed: after this a crash keeps every byte
        appended so far.

        A changed prologue is sealed the first time, then only by ``fsync()`` and ``close()``:
        a WAV rewrites its header at every sync, and an encrypted WAV is only ever read through
        the recorder, whose reader counts the audio after a stale header (as after a crash
        between two syncs of a plain one) and whose recovery rewrites it. That saves a sealing
        and a write per sync.
        """
        if self._prologue_sealed and not self._tail_dirty:
            # A recording's usual sync (docs/encryption.md, "Chunk size"): a whole chunk was
            # just sealed, the file must end with an empty record flagged last, and both go
            # to the disk in one write. Kept to one call: thousands of files do this every
            # half second.
            index = self._tail_index
            if self._last_sealed != index and not self._cut and not self.closed:
                slot = self._tail_slot
                head, body = self._sealer.seal(index, b"", 0, True)
                self.sealings += 1
                self._last_sealed = index
                if not self._pending:
                    self._pending_at = slot
                elif slot != self._pending_end:
                    self._write_pending()
                    self._pending_at = slot
                self._pending += (head, body)
                self._pending_end = slot + OVERHEAD
            self._write_pending()
            return
        self._seal(prologue=not self._prologue_sealed)

    def fsync(self) -> None:
        """Seal everything that changed, the prologue too, and have the OS put the file on the
        disk."""
        self._seal(prologue=True)
        self._disk.fsync()

    def prepare_fsync(self) -> int:
        """``fsync()`` but the wait for the disk: everything sealed, the disk file's descriptor
        returned for the syncer thread to fsync (-1: none)."""
        self._seal(prologue=True)
        return self._disk.fd

    def _seal(self, prologue: bool) -> None:
        if self.closed or self._cut:
            return
        geo = self.geometry
        if geo.prologue and prologue and self._prologue_dirty:
            self._emit(0, self._prologue, len(self._prologue), last=self._size < geo.prologue)
            self._prologue_dirty = False
            self._prologue_sealed = self._size >= geo.prologue
        # The tail only when it changed, or when a chunk just filled and the file must end
        # with a record flagged last (an empty one, then).
        if self._size >= geo.prologue and (
                self._tail_dirty or self._last_sealed != self._tail_index):
            self._emit(self._tail_index, self._tail, len(self._tail), True, self._tail_slot)
            self._tail_dirty = False
            self._last_sealed = self._tail_index
        self._write_pending()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._tail_dirty = True
            self._seal(prologue=True)
        finally:
            self._disk.close()
            super().close()

    # --- sealing -------------------------------------------------------------------------------

    def _emit(self, index: int, plain: Buffer, length: int, last: bool,
              slot: int = -1) -> None:
        """Seal chunk ``index`` (its record at ``slot``, when the caller knows it); written
        with the records sealed before it when it follows them on disk (the full chunks and
        the tail after them), else after them."""
        if slot < 0:
            slot = self.geometry.slot(index)
        head, body = self._sealer.seal(index, plain, length, last)
        self.sealings += 1
        if not self._pending:
            self._pending_at = slot
        elif slot != self._pending_end:
            self._write_pending()
            self._pending_at = slot
        self._pending += (head, body)
        self._pending_end = end = slot + OVERHEAD + length
        if end - self._pending_at >= self._PENDING_BYTES:
            self._write_pending()

    def _write_pending(self) -> None:
        pending = self._pending
        if pending:
            self._pending = []
            self._disk.write_many(self._pending_at, pending,
                                  self._pending_end - self._pending_at)

    def _seal_full_tail(self, plain: Buffer, length: int) -> None:
        # Written with the next flush (the tail's sealing follows it on disk), or before
        # anything reads the file back. ``_emit`` by hand: a recording does this at every sync.
        slot = self._tail_slot
        head, body = self._sealer.seal(self._tail_index, plain, length, False)
        self.sealings += 1
        if not self._pending:
            self._pending_at = slot
        elif slot != self._pending_end:
            self._write_pending()
            self._pending_at = slot
        self._pending += (head, body)
        self._pending_end = end = slot + OVERHEAD + length
        if end - self._pending_at >= self._PENDING_BYTES:
            self._write_pending()
        self._tail_index += 1
        self._tail_start += length
        self._tail_slot += OVERHEAD + length

    def _patch_sealed(self, index: int, offset: int, piece: bytes) -> None:
        """Change bytes of a whole chunk already sealed: read it, patch it, reseal it."""
        self._write_pending()
        where = self.name or "encrypted recording"
        record = self._disk.read_at(OVERHEAD + self.geometry.capacity(index),
                                    self.geometry.slot(index))
        plain, _ = open_record(self._sealer.aead, self._header, record, index,
                               capacity=self.geometry.capacity(index), where=where)
        patched = bytearray(plain)
        patched[offset:offset + len(piece)] = piece
        self._emit(index, patched, len(patched), last=False)
        self._write_pending()
