"""Raw ``.vox`` files written while calls are recorded, one writer per call.

Each ``VoxWriter`` buffers what it is given (mixed to mono, resampled to the file's rate) and
encodes it with the OKI ADPCM codec of ``recorder.codecs.vox``. Live, many calls at once,
``encode_pending`` encodes the buffers of all of them in one vectorised pass; a writer left to
itself encodes its own buffer at ``sync()`` and ``close()``, as one stream. The buffering, the
kept write error and the cut after a full disk are the shared core of
``recorder.codecs.buffered``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.codecs.buffered import StreamingWriter, fsync_file
from recorder.codecs.resample import Resampler
from recorder.codecs.stereo import mix_to_mono
from recorder.codecs.vox import CHUNK, INITIAL_STATE, encode_columns, encode_stream, pack_codes
from recorder.errors import CodecError

logger = logging.getLogger(__name__)


class VoxWriter(StreamingWriter):
    """Writes int16 samples to a raw VOX file it owns, at ``rate`` (default: the input's).

    VOX is mono: stereo input is mixed down. ``frames`` counts input frames. Samples are buffered
    until ``sync()``, ``close()``, a full buffer or ``encode_pending``; what a crash loses is what
    was not synced, as with WAV. After a full disk, ``close()`` keeps the bytes that reached it
    (every byte is two whole samples) and ``frames`` counts what they hold.
    """

    extension = "vox"

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1,
                 rate: int | None = None) -> None:
        if channels not in (1, 2):
            raise CodecError(f"VOX takes 1 or 2 input channels, not {channels}")
        super().__init__(file, sample_rate, channels, CHUNK)
        self.rate = rate or sample_rate
        self._resampler = Resampler(sample_rate, self.rate) if self.rate != sample_rate else None
        self.data_bytes = 0
        self._frames = 0
        self.state = INITIAL_STATE
        self.odd_code: int | None = None  # a first nibble waiting for its byte's second

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def pending_samples(self) -> int:
        """Samples buffered at the file's rate, waiting to be encoded."""
        return self._pending_frames

    def _accept(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        block = np.asarray(samples, dtype=np.int16)
        if block.ndim == 2:
            block = mix_to_mono(block) if block.shape[1] == 2 else block[:, 0]
        self._frames += len(block)
        if self._resampler is not None:
            block = self._resampler.process(block)
        return block

    def take_pending(self, count: int) -> npt.NDArray[np.int16]:
        """Remove and return the first ``count`` buffered samples (for ``encode_pending``)."""
        return self._take_pending(count)

    def put_codes(self, codes: npt.NDArray[np.uint8]) -> None:
        """Write encoded codes (two per byte, an odd one kept for the next call)."""
        if self.odd_code is not None:
            codes = np.concatenate([np.array([self.odd_code], dtype=np.uint8), codes])
            self.odd_code = None
        if len(codes) % 2:
            self.odd_code = int(codes[-1])
            codes = codes[:-1]
        if len(codes):
            self.put_packed(np.frombuffer(pack_codes(codes), dtype=np.uint8))

    def put_packed(self, data: npt.NDArray[np.uint8]) -> None:
        """Write whole bytes of codes (no odd code may be waiting)."""
        self._check()
        self._failing(lambda: self._file.write(data.data))
        self.data_bytes += len(data)

    def _encode_pending(self) -> None:
        if self._pending_frames:
            codes, self.state = encode_stream(self._take_pending(), self.state)
            self.put_codes(codes)

    def prepare_fsync(self) -> int:
        """What is encoded, handed to the OS; the samples still buffered are left to the writer
        loop's VOX pass (every file at once, at its next turn), not encoded here one file at a
        time: the next fsync takes them."""
        self._check()
        return self._durable_descriptor()

    def _sync(self) -> None:
        """Encode and hand everything buffered to the OS (but a dangling odd sample)."""
        self._encode_pending()
        self._file.flush()

    def _finish(self, fsync: bool) -> None:
        if self._resampler is not None:
            tail = self._resampler.flush()
            if len(tail):
                self._keep(tail)
        self._encode_pending()
        if self.odd_code is not None:
            data = bytes([self.odd_code << 4])  # sox pads an odd count with a zero nibble
            self._file.write(data)
            self.data_bytes += 1
            self.odd_code = None
        if fsync:
            fsync_file(self._file)
        else:
            self._file.flush()

    def _drop_pending(self) -> None:
        super()._drop_pending()
        self.odd_code = None

    def _keep_on_disk(self, fd: int) -> str:
        """Every byte on disk is two whole samples: keep them all, and count them."""
        self._count_kept(os.fstat(fd).st_size)
        return f"{self.data_bytes} bytes"

    def _describe_kept(self, kept: int, plain: BinaryIO) -> tuple[int, bytes | None]:
        self._count_kept(kept)  # an encrypted file cut to its whole chunks: as above
        return kept, None

    def _count_kept(self, kept: int) -> None:
        self.data_bytes = kept
        # Two samples a byte at the file's rate; frames counts input frames.
        self._frames = min(self._frames, 2 * self.data_bytes * self.sample_rate // self.rate)


# A round of the shared pass is worth its per-sample overhead (a few numpy calls a sample,
# whatever the number of writers) from this many writers on; fewer are left to encode_stream at
# their sync, whose per-writer paths (a plain loop, or speculation for long runs) cost less.
ROUND_MIN_WRITERS = 8


def encode_pending(writers: Sequence[VoxWriter]) -> int:
    """Encode the buffered samples of many writers in vectorised passes; returns samples done.

    Each round encodes, for every writer still holding samples, as many as the one with the
    fewest holds; rounds go on while at least ROUND_MIN_WRITERS writers hold any. Writers fed
    in step (as the capture core feeds channels) are emptied in one round; a writer loop that
    fell behind pumps uneven amounts, and the rounds empty those too, rather than leaving the
    remainders to a per-sample loop at each file's sync (which grew with the backlog until the
    loop could not catch up).
    """
    done = 0
    failure: Exception | None = None
    failed: set[int] = set()
    live = _holding(writers, failed)
    while live and (done == 0 or len(live) >= ROUND_MIN_WRITERS):
        count = min(w.pending_samples for w in live)
        done += count * len(live)
        failure = _encode_round(live, count, failed) or failure
        live = _holding(live, failed)
    if failure is not None:
        raise failure
    return done


def _holding(writers: Sequence[VoxWriter], failed: set[int]) -> list[VoxWriter]:
    return [w for w in writers if not w.closed and w.failure is None and w.pending_samples
            and id(w) not in failed]


def _encode_round(live: list[VoxWriter], count: int, failed: set[int]) -> Exception | None:
    """``count`` samples of each writer in one pass; the first failure to write, if any."""
    rows = np.empty((len(live), count), dtype=np.int16)
    for i, w in enumerate(live):
        rows[i] = w.take_pending(count)
    states = np.fromiter((w.state for w in live), dtype=np.int32, count=len(live))
    codes = encode_columns(rows.T, states)
    packed = (np.ascontiguousarray(((codes[0::2] << 4) | codes[1::2]).T)
              if count % 2 == 0 and all(w.odd_code is None for w in live) else None)
    # One file failing to take its bytes (a full disk) must not cost the others theirs: every
    # writer gets its state and bytes, then the first failure is raised.
    failure: Exception | None = None
    for i, w in enumerate(live):
        w.state = int(states[i])
        try:
            if packed is not None:  # the usual case: writers fed whole blocks
                w.put_packed(packed[i])
            else:
                w.put_codes(codes[:, i])
        except (OSError, ValueError) as exc:
            failed.add(id(w))
            failure = failure or exc
    return failure


__all__ = ["VoxWriter", "encode_pending"]
