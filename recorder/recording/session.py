"""A recording session: copies one channel's audio from its ring into one file.

The writer loop pumps every open session a few times a second; ``finish`` drains the session up
to the position the call stopped at and closes the file. Both take the session's lock, so the
file is only ever touched by one thread at a time.

What reaches the OS: every half second of audio (``SYNC_SECONDS``) the writer hands what it holds
to the OS and brings the header up to date, so a killed process (kill -9) loses at most that
plus what the writer loop had not pumped yet (``docs/call-model.md``). What reaches the disk:
with ``fsync_interval`` (storage.fsync_interval_seconds, set by the writer loop) the file is
fsynced that often and at close, so a power loss loses at most that much.

A full disk (ENOSPC, EDQUOT) ends the writing at once: ``out_of_space`` is set, the writer
cuts the file to the whole frames on disk when it closes, and the scheduler ends the recording
as ``truncated``. Any other write error only stops the writing (``failed``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.capture.core import CaptureBoard, Channel
from recorder.codecs.buffered import out_of_space
from recorder.codecs.formats import AudioWriter
from recorder.recording.blackouts import (
    Blackouts,
    pending_path,
    silence_file,
    silence_sealed_wav,
    write_pending,
)
from recorder.recording.paths import sha256_file
from recorder.rules.blackout import overlapping, zero_ranges

logger = logging.getLogger(__name__)

# Audio is handed to the OS (write and flush, header rewritten) at least every this many seconds
# of it: what a killed process can lose beyond the writer loop's last pump.
SYNC_SECONDS = 0.5


class ByteCounter:
    """Bytes written into recording files, summed over every session that reports to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._total += count

    @property
    def total(self) -> int:
        return self._total


@dataclass(frozen=True)
class SessionResult:
    """A closed recording's file as it is on disk."""

    path: Path
    frames: int
    sample_rate: int
    lost_samples: int
    size: int
    sha256: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


class RecordingSession:
    """Streams ``channel`` from ``start`` (an absolute sample position) into ``writer``."""

    def __init__(self, channel: Channel | Sequence[Channel], writer: AudioWriter, path: Path,
                 start: int, delay_frames: int = 0, *, blackouts: Blackouts | None = None,
                 fmt: str = "wav", options: Mapping[str, Any] | None = None,
                 written: ByteCounter | None = None, lost_before: int = 0,
                 sealed: BinaryIO | None = None) -> None:
        # Two channels are one device's two directions (on one board, so their positions
        # line up): one side each of a stereo file, or mixed into mono, as the writer has
        # one or two channels.
        self.channels = (channel,) if isinstance(channel, Channel) else tuple(channel)
        if not 1 <= len(self.channels) <= 2:
            raise ValueError("a recording takes one channel or a device's two directions")
        self.channel = self.channels[0]
        # A call whose two channels sit side by side on the board (a SIPREC session's
        # parties) is read in one 2-D copy: (board, its first column, whether the columns are
        # the other way round from this recording's left and right).
        self._adjacent: tuple[CaptureBoard, int, bool] | None = None
        if len(self.channels) == 2:
            left, right = self.channels
            if left.board is right.board and abs(left.index - right.index) == 1:
                self._adjacent = (left.board, min(left.index, right.index),
                                  left.index > right.index)
        self.path = path
        self.start = start
        self._writer = writer
        self._pos = start
        # Audio reaches the file this many frames after capture (capture.commit_delay_seconds).
        self.delay_frames = delay_frames
        self._lock = threading.Lock()
        self._synced_frames = 0
        self._sync_frames = max(1, round(SYNC_SECONDS * self.channel.sample_rate))
        # Audio of the call lost before the file begins (a recording that could only start
        # late: the disk was full), then every gap the ring or the capture lost on the way.
        self.lost_samples = lost_before
        # The losses of single channels read so far (by serial, per channel), and those that
        # reach past what is written yet (counted as the file reaches them).
        self._losses_seen = [0] * len(self.channels)
        self._losses_pending: list[tuple[int, int]] = []
        self.failed: str | None = None
        # The disk was full (ENOSPC, EDQUOT): the file ends where the disk did.
        self.out_of_space = False
        # Seconds between fsyncs of the file, and whether it is fsynced at close; 0: never,
        # the OS writes it back in its own time. The writer loop that pumps it sets it.
        self.fsync_interval = 0.0
        self._fsynced_at = time.monotonic()
        self._result: SessionResult | None = None
        # The call's blacked-out ranges: zeroed on their way to the file, and silenced in the
        # file when one reaches back before what was already written.
        self.blackouts = blackouts or Blackouts()
        self.format = fmt
        self._options = dict(options or {})
        self._silence_at_close = False
        # The encrypted file under the writer (storage.encrypt): a blackout is silenced through
        # it, never by writing plain bytes into the ciphertext.
        self._sealed = sealed
        # No audio past this position ever reaches the file (MAXRECORDTIME): the limit holds
        # to the sample even when the check that ends the recording runs late.
        self.stop_at: int | None = None
        # Where the bytes this session puts into its file are counted (the writer loop's total,
        # for the metrics), and how many of them already are.
        self._written = written
        self._counted = 0

    @property
    def closed(self) -> bool:
        return self._result is not None

    @property
    def bytes_per_second(self) -> float:
        """Bytes a second of this recording takes in its file (PCM's until a second is in)."""
        rate = self.channel.sample_rate
        frames = self._writer.frames
        if frames < rate:
            return float(2 * self._writer.channels * rate)
        return self._writer.data_bytes * rate / frames

    @property
    def writer(self) -> AudioWriter:
        return self._writer

    @contextmanager
    def open_and_held(self) -> Iterator[bool]:
        """Hold the session still (no pump, finish or close meanwhile); yields whether it is
        still open. The writer loop encodes every VOX session's audio in one pass under it, so
        a call ending on another thread cannot close a file in the middle of that pass."""
        with self._lock:
            yield self._result is None and self.failed is None

    def pump(self, sync: bool = True) -> None:
        """Write whatever the channel has captured since the last pump.

        ``sync=False`` leaves the half-second sync to a ``sync_if_due`` call, so the writer
        loop can first encode every VOX session's buffered audio in one vectorized pass.
        """
        with self._lock:
            if self._result is None and self.failed is None:
                self._write_until(self.channel.position - self.delay_frames, sync)

    def sync_if_due(self) -> None:
        """Sync the file if half a second or more has been written since the last sync."""
        with self._lock:
            if self._result is None and self.failed is None:
                self._sync_if_due()

    def fsync_due(self, now: float) -> int | None:
        """If ``fsync_interval`` seconds (monotonic ``now``) have passed since the last fsync:
        the file handed to the OS (its header or seal up to date) and a descriptor of it of
        the caller's own (a ``dup``: the file may close meanwhile), which the caller fsyncs
        and closes; else None. The fsync, which waits for the disk, is left out of the
        session's lock so the writer loop never waits for it (recording/syncer.py)."""
        with self._lock:
            if (self._result is not None or self.failed is not None
                    or self.fsync_interval <= 0 or now - self._fsynced_at < self.fsync_interval):
                return None
            self._fsynced_at = now
            try:
                fd = self._writer.prepare_fsync()
                return os.dup(fd) if fd >= 0 else None
            except OSError as exc:
                self._write_failed(exc)
                return None

    def fsync_failed(self, exc: OSError) -> None:
        """The fsync of a descriptor from ``fsync_due`` failed: the file takes no more audio,
        as after a failed write (the disk may have dropped what it had)."""
        with self._lock:
            if self._result is None:
                self._write_failed(exc)

    def blackout_reached_back(self) -> None:
        """A blackout now covers audio already written: silence it in the file.

        A WAV is patched at once, so the audio does not stay on disk for the rest of the call;
        other formats are re-encoded when the file closes.
        """
        with self._lock:
            if self._result is not None or self.failed is not None:
                return
            if not overlapping(self.blackouts.ranges(), self.start, self._pos):
                return
            try:
                if self.path.suffix.lower() != ".wav":
                    # Re-encoded when the file closes; until then a note on disk says what, so
                    # a crash cannot leave the audio in the file (recovery silences it).
                    write_pending(self.path, self.format, self._written_ranges(), self._options)
                    self._silence_at_close = True
                    return
                self._writer.sync()  # its buffered frames first, or they would land after
                self._silence_written()
            except Exception:
                # The call goes on being recorded: losing it would not unsay what it holds.
                logger.exception("%s: could not silence a blackout in the file; the recording "
                                 "goes on, the blacked-out audio may still be in it", self.path)

    def _written_ranges(self) -> list[tuple[int, int]]:
        """The blacked-out frames already in the file, as frame offsets in the file."""
        return [(a - self.start, b - self.start)
                for a, b in overlapping(self.blackouts.ranges(), self.start, self._pos)]

    def _silence_written(self) -> None:
        if self._sealed is not None and self.path.suffix.lower() == ".wav":
            # A live encrypted WAV: the chunks touched are resealed through its writer.
            silence_sealed_wav(self._sealed, self.format, self._written_ranges(),
                               channels=self._writer.channels, frames=self._writer.frames)
        else:
            # A closed MP3 or VOX (encrypted or not) is re-encoded; an encrypted one sealed
            # under its own key (recording/blackouts.py).
            silence_file(self.path, self.format, self._written_ranges(), options=self._options)
        pending_path(self.path).unlink(missing_ok=True)

    def ready_to_finish(self, end: int) -> bool:
        """Whether audio up to ``end`` may go to the file now (its commit delay has passed)."""
        return self.channel.position >= end + self.delay_frames

    def finish(self, end: int) -> SessionResult:
        """Write up to absolute position ``end``, close the file and describe it.

        Never raises for a file problem: the call must end and its row be written whatever
        happened to the disk, with the failure logged and kept in ``failed``.
        """
        with self._lock:
            if self._result is not None:
                return self._result
            if self.failed is None:
                self._write_until(min(end, self.channel.position))
            try:
                self._writer.close(fsync=self.fsync_interval > 0)
            except OSError as exc:
                if out_of_space(exc):
                    self._write_failed(exc)
                else:
                    self.failed = self.failed or str(exc)
                    logger.exception("%s: closing failed", self.path)
            if self._silence_at_close and self.failed is None:
                try:
                    self._silence_written()
                except Exception:
                    logger.exception("%s: could not silence a blackout in the file; what to "
                                     "silence stays noted in %s", self.path,
                                     pending_path(self.path).name)
            self._count_written()
            try:
                size, digest = self.path.stat().st_size, sha256_file(self.path)
            except OSError as exc:
                self.failed = self.failed or str(exc)
                logger.exception("%s: cannot read back the closed file", self.path)
                size, digest = 0, ""
            self._result = SessionResult(
                path=self.path,
                frames=self._writer.frames,
                sample_rate=self.channel.sample_rate,
                lost_samples=self.lost_samples,
                size=size,
                sha256=digest,
            )
            return self._result

    def _write_until(self, end: int, sync: bool = True) -> None:
        if self.stop_at is not None:
            end = min(end, self.stop_at)
        if end <= self._pos:
            return
        try:
            samples, lost = self._read(end)
            if lost:
                # The ring was lapped before we read it (the disk or the process stalled for
                # longer than the look-back). Keep the timeline: the gap is written as
                # silence, and counted.
                self.lost_samples += lost
                logger.warning("%s: %d samples lost before they reached the file (ring lapped)",
                               self.path.name, lost)
            # Input the board lost (a stalled process, a driver's own loss) is in the ring as
            # silence: lost audio of this call too. Counted once: what the ring lapped is
            # counted above, whatever it held. The board logged the gap when it found it.
            self.lost_samples += self.channel.board.gap_frames_in(self._pos + lost, end)
            self.lost_samples += self._channel_losses(end)
            if not self.blackouts.never:
                zero_ranges(samples, self._pos, self.blackouts.ranges())
            # The writer loop pumps pieces longer than 50 ms: one reaching past the next
            # half second is written in two, synced in between, so the file is still handed
            # to the OS at every SYNC_SECONDS of audio, not at the first pump after it.
            due = self._synced_frames + self._sync_frames - self._writer.frames
            if sync and 0 < due < len(samples):
                self._writer.write(samples[:due])
                self._sync_if_due()
                samples = samples[due:]
            self._writer.write(samples)
            self._pos = end
            if sync:
                self._sync_if_due()  # counts what was written too
            else:
                self._count_written()
        except OSError as exc:
            self._write_failed(exc)

    def _channel_losses(self, end: int) -> int:
        """Frames from the start up to ``end`` that one of its channels lost on its own (a
        SIPREC party's missing packets), each counted once, also those the driver only found
        out after they were written; the channels' losses add up."""
        for i, tap in enumerate(self.channels):
            found = tap.board.channel_losses(tap.index, self._losses_seen[i])
            if found:
                self._losses_seen[i] = found[-1][0]
                self._losses_pending += [(a, b) for _, a, b in found]
        if not self._losses_pending:
            return 0
        total = 0
        later: list[tuple[int, int]] = []
        for first, b in self._losses_pending:
            a = max(first, self.start)
            total += max(0, min(b, end) - a)
            if b > end:
                later.append((max(a, end), b))
        self._losses_pending = later
        return total

    def _sync_if_due(self) -> None:
        try:
            if self._writer.frames - self._synced_frames >= self._sync_frames:
                self._writer.sync()
                self._synced_frames = self._writer.frames
        except OSError as exc:
            self._write_failed(exc)
        # VOX grows its file in the writer loop's batch encoding, between pump and sync.
        self._count_written()

    def _write_failed(self, exc: OSError) -> None:
        """The file takes no more audio (under the lock): a full disk, or a broken one."""
        if self.failed is not None:
            return
        self.failed = str(exc)
        if out_of_space(exc):
            # Not a bug to trace: the disk is full. The file is closed valid at what is on it.
            self.out_of_space = True
            logger.warning("%s: the disk is full (%s): the recording ends where the disk did",
                           self.path, exc.strerror or exc)
        else:
            logger.error("%s: writing failed; the file keeps what was written before",
                         self.path, exc_info=exc)

    def _count_written(self) -> None:
        """Report the bytes the writer has taken since the last report (under the lock)."""
        if self._written is None:
            return
        data = self._writer.data_bytes
        if data > self._counted:
            self._written.add(data - self._counted)
            self._counted = data

    def read_span(self, start: int, end: int) -> tuple[npt.NDArray[np.int16], int]:
        """Audio [start, end) of the ring as this recording's file takes it (one channel,
        stereo or mixed to mono), blackouts not yet applied, and how many of its first frames
        the ring had lost. For a live listener (the portal): reads the ring only, takes no
        lock and changes nothing of the session, so it never holds up the writer."""
        return self._read_from(start, end)

    def _read(self, end: int) -> tuple[npt.NDArray[np.int16], int]:
        """Audio [pos, end) as the writer takes it (one channel, stereo or mixed to mono), and
        how many of its first frames the ring had lost (zero in it)."""
        return self._read_from(self._pos, end)

    def _read_from(self, start: int, end: int) -> tuple[npt.NDArray[np.int16], int]:
        if self._adjacent is not None:
            board, first, swapped = self._adjacent
            got = board.read_adjacent(first, 2, start, end)
            block = got.samples[:, ::-1] if swapped else got.samples
            if self._writer.channels == 2:
                return block, got.lost
            # Mixed to mono as _combine mixes, without splitting the columns first (and
            # clipped in place: np.clip's own overhead is most of it at 400 samples).
            mixed = np.add(block[:, 0], block[:, 1], dtype=np.int32)
            np.minimum(mixed, 32767, out=mixed)
            np.maximum(mixed, -32768, out=mixed)
            return mixed.astype(np.int16), got.lost
        reads = [channel.read(start, end) for channel in self.channels]
        return self._combine([got.samples for got in reads]), max(got.lost for got in reads)

    def _combine(self, parts: list[npt.NDArray[np.int16]]) -> npt.NDArray[np.int16]:
        if len(parts) == 1:
            return parts[0]
        if self._writer.channels == 2:
            stereo: npt.NDArray[np.int16] = np.stack(parts, axis=1)
            return stereo
        # Mixed to mono: the parties add up (each keeps its level), clipped at full scale.
        mixed = parts[0].astype(np.int32) + parts[1]
        mono: npt.NDArray[np.int16] = np.clip(mixed, -32768, 32767).astype(np.int16)
        return mono

