"""The buffered-write core every streaming recording writer shares (WAV, MP3, VOX).

A writer keeps the blocks it is handed (not copied: ``AudioWriter.write``'s contract) and
encodes them together once enough are waiting, or at ``sync()``: one encoder call and one
``write`` per half second or so instead of one per 50 ms block, most of the cost at thousands of
channels. ``sync()`` hands what is encoded to the OS (and lets the format describe it: a WAV
header, an MP3 tag), ``fsync()`` has the OS put it on the disk, ``close()`` does the last of it.

A write error is kept: the first OSError is raised where it happened, the file is not written
past it (later samples are dropped) and ``sync()``, ``fsync()`` and ``close()`` raise it again.
A full disk (ENOSPC, or EDQUOT for a quota) is not a broken file: ``close()`` cuts the file back
to what reached the disk whole and has the format describe exactly that, then raises the error
once more so the caller knows the recording was cut short. Any other error closes the file as
it is.
"""

from __future__ import annotations

import errno
import io
import logging
import os
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.errors import CodecError

logger = logging.getLogger(__name__)

# A write refused for lack of room: the file is closed valid at what reached the disk.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class StreamingWriter:
    """What every recording writer does with the blocks it is given and the errors it meets.

    A subclass says what a block becomes (``_accept``), how the buffered blocks are encoded
    into the file (``_encode_pending``), what ``sync()`` and ``close()`` write besides
    (``_sync``, ``_finish``) and how a file cut short by a full disk is made whole
    (``_keep_on_disk``).
    """

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int,
                 flush_frames: int) -> None:
        self._file = file
        self.sample_rate = sample_rate
        self.channels = channels
        self._pending: list[npt.NDArray[np.int16]] = []
        self._pending_frames = 0
        # What a killed process can lose of what was handed to this writer.
        self._flush_frames = flush_frames
        self.closed = False
        # The first write error; every later call raises it again (the file is not written
        # past a failure) and close() acts on it (a full disk: cut to what is whole).
        self.failure: OSError | None = None

    def _begin(self, head: bytes, what: str, flush: bool = False) -> None:
        """Write the format's first bytes (a header, a tag frame); CodecError if refused."""
        try:
            self._file.write(head)
            if flush:
                self._file.flush()
        except OSError as exc:
            # The buffer's unwritten bytes must not reach the file when the caller closes it.
            abandon_buffer(self._file)
            raise CodecError(f"cannot write {what}: {exc}") from exc

    # --- taking blocks ---------------------------------------------------------------------

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples: shape ``(frames,)`` for mono or ``(frames, channels)``.

        After a write error they are dropped: the error was raised where it happened and
        ``sync()`` and ``close()`` raise it again."""
        if self.failure is not None:
            return
        block = self._accept(samples)
        if len(block):
            self._keep(block)
        if self._pending_frames >= self._flush_frames:
            self._failing(self._encode_pending)

    def _accept(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        """Count ``samples`` and return the block to keep for them (converted as needed)."""
        raise NotImplementedError

    def _keep(self, block: npt.NDArray[np.int16]) -> None:
        self._pending.append(block)
        self._pending_frames += len(block)

    def _take_pending(self, count: int | None = None) -> npt.NDArray[np.int16]:
        """Remove and return the first ``count`` buffered frames (all of them by default)."""
        data = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        if count is None or count >= len(data):
            self._pending.clear()
            self._pending_frames = 0
            return data
        rest = data[count:]
        self._pending = [rest] if len(rest) else []
        self._pending_frames = len(rest)
        return data[:count]

    def _encode_pending(self) -> None:
        """Encode the buffered blocks into the file."""
        raise NotImplementedError

    # --- sync, fsync, close ----------------------------------------------------------------

    def sync(self) -> None:
        """Hand everything written so far to the OS, the file describing it."""
        self._check()
        self._failing(self._sync)

    def _sync(self) -> None:
        raise NotImplementedError

    def fsync(self) -> None:
        """``sync()``, then have the OS put the file on the disk (survives a power loss)."""
        self.sync()
        self._failing(lambda: fsync_file(self._file))

    def prepare_fsync(self) -> int:
        """``sync()`` and everything of ``fsync()`` but the wait for the disk: the descriptor
        whose ``os.fsync`` makes the file durable (-1: none, an in-memory file). The writer
        loop does this much under the session's lock and leaves the fsync, which waits for the
        disk, to the syncer thread (recorder/recording/syncer.py)."""
        self.sync()
        return self._durable_descriptor()

    def _durable_descriptor(self) -> int:
        """The file handed to the OS as it is; the descriptor to fsync (-1: none)."""
        fd = -1

        def prepare() -> None:
            nonlocal fd
            fd = durable_descriptor(self._file)

        self._failing(prepare)
        return fd

    def close(self, fsync: bool = False) -> None:
        """Write what is left and close the file (with ``fsync``, durable first).

        After a full disk the file is cut to what reached it whole and described exactly
        (``frames`` and ``data_bytes`` then say what it holds); the OSError is raised once
        the file is closed valid. Any other write error closes the file as it is and is raised.
        """
        self._close(lambda: self._finish(fsync), lambda: self._cut_to_disk(fsync))

    def _finish(self, fsync: bool) -> None:
        """The last encode, header or tag, and flush (with ``fsync``, to the disk)."""
        raise NotImplementedError

    def _check(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _failing(self, step: Callable[[], object]) -> None:
        """Run ``step``; a write error it raises is kept as the writer's failure."""
        try:
            step()
        except OSError as exc:
            self.failure = self.failure or exc
            raise

    def _close(self, finish: Callable[[], None], cut_to_disk: Callable[[], None]) -> None:
        """Close after ``finish``; after a full disk, ``cut_to_disk`` makes the file valid
        first. Raises the kept failure, if any."""
        if self.closed:
            return
        if self.failure is None:
            try:
                self._failing(finish)
            except OSError:
                pass  # kept in self.failure, acted on below
            except BaseException:
                self.closed = True
                self._file.close()
                raise
        failure = self.failure
        if failure is None or not out_of_space(failure):
            self.closed = True
            self._file.close()
            if failure is not None:
                raise failure
            return
        try:
            cut_to_disk()
        finally:
            self.closed = True
            abandon(self._file)
        raise failure

    # --- after a full disk -----------------------------------------------------------------

    def _cut_to_disk(self, fsync: bool) -> None:
        """Make the file what its format calls whole, from what is really on disk."""
        self._drop_pending()
        cut = getattr(self._file, "cut_to_whole", None)
        if cut is not None:
            # A file written through its own methods (an encrypted recording) cuts itself to
            # what it holds whole; the format then describes that much.
            plain = cut(self._describe_kept)
            logging.getLogger(type(self).__module__).info(
                "%s: cut at %d bytes by the full disk", getattr(self._file, "name", "?"), plain)
            return
        fd = descriptor(self._file)
        if fd < 0:
            return  # an in-memory file: nothing was lost on its way to a disk
        kept = self._keep_on_disk(fd)
        if kept is None:
            return
        if fsync:
            os.fsync(fd)
        # Under the format's own logger, where its other messages are.
        logging.getLogger(type(self).__module__).info(
            "%s: cut at %s by the full disk", getattr(self._file, "name", "?"), kept)

    def _drop_pending(self) -> None:
        """Forget what was buffered: it has no room on the disk."""
        self._pending.clear()
        self._pending_frames = 0

    def _describe_kept(self, kept: int, plain: BinaryIO) -> tuple[int, bytes | None]:
        """For a file that cuts itself (``cut_to_whole``) to ``kept`` bytes (readable in
        ``plain``): how many of them the format keeps (its whole frames) and its first bytes
        for that many (None: they stay as they are)."""
        return kept, None

    def _keep_on_disk(self, fd: int) -> str | None:
        """Cut the file on ``fd`` to its whole part and describe it; what was kept, for the
        log (None: nothing, and nothing to make durable)."""
        raise NotImplementedError


def out_of_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` is the file system refusing more data (ENOSPC, or EDQUOT: a quota)."""
    return isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS


def descriptor(file: BinaryIO) -> int:
    """The file's descriptor, or -1 for a file without one (an in-memory file)."""
    try:
        return file.fileno()
    except (OSError, io.UnsupportedOperation, ValueError):
        return -1


def fsync_file(file: BinaryIO) -> None:
    """Hand ``file``'s buffer to the OS and have the OS put it on the disk."""
    file.flush()
    fd = descriptor(file)
    if fd >= 0:
        os.fsync(fd)
        return
    # A file written through its own methods (an encrypted recording) syncs its disk file.
    own = getattr(file, "fsync", None)
    if callable(own):
        own()


def durable_descriptor(file: BinaryIO) -> int:
    """Hand ``file``'s buffer to the OS and return the descriptor to fsync for it (-1: none).
    A file written through its own methods (an encrypted recording) seals what it must first
    (``prepare_fsync``) and names its disk file's descriptor."""
    file.flush()
    fd = descriptor(file)
    if fd >= 0:
        return fd
    own = getattr(file, "prepare_fsync", None)
    if callable(own):
        got = own()
        return got if isinstance(got, int) else -1
    return -1


def abandon_buffer(file: BinaryIO) -> None:
    """Close the descriptor under a buffered ``file`` so closing it writes nothing more.

    After a refused write a buffered file keeps the bytes that did not fit and would retry
    them on ``close()``; once a writer has cut the file to whole frames (freeing room), they
    would land after the cut. With its raw file closed, the buffered file closes silently.
    """
    raw = getattr(file, "raw", None)
    if raw is not None:
        raw.close()


def abandon(file: BinaryIO) -> None:
    """Close ``file`` without writing what its buffer still holds (see ``abandon_buffer``)."""
    try:
        abandon_buffer(file)
    finally:
        file.close()


def rewrite_at_start(file: BinaryIO, header: bytes) -> None:
    """Overwrite the first bytes of a flushed ``file`` without moving its write position.

    ``pwrite`` does it in one system call where seek-write-seek would take three and flush
    twice; it matters at thousands of files synced every second. Files without a descriptor
    (in-memory ones) get the seeks.
    """
    own = getattr(file, "rewrite_start", None)
    if own is not None:
        # A file written through its own methods (an encrypted recording): it keeps its start
        # apart and seals it when it says (recorder/crypt/writer.py).
        own(header)
        return
    fd = descriptor(file)
    if fd >= 0:
        os.pwrite(fd, header, 0)
        return
    end = file.tell()
    file.seek(0)
    file.write(header)
    file.seek(end)
    file.flush()


__all__ = ["NO_SPACE_ERRNOS", "StreamingWriter", "abandon", "abandon_buffer", "descriptor",
           "durable_descriptor", "fsync_file", "out_of_space", "rewrite_at_start"]
