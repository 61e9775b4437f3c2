"""Per-channel ring buffers of int16 audio, addressed by absolute sample index.

A board's channels share one frame-major ``(capacity, channels)`` array: column ``c`` is channel
``c``'s ring. A captured ``(frames, channels)`` block lands in all of them with one contiguous
copy, and level meters reduce whole windows across every channel at once; a recording reads its
one column (or its call's adjacent columns together) with a strided copy, which costs little at
8000 samples a second. Positions are
absolute sample counts since the board started, so a reader can say "give me samples 16000 to
16400 of channel 3" without knowing where the ring wrapped.

One writer (the board's driver thread) and any number of readers, without locks: the writer
first claims the positions it is about to write (``_claimed``), copies the samples, then
advances ``write_pos``; a reader copies, then checks how far the writer has claimed and reports
any samples that may have been overwritten meanwhile as lost instead of returning them. Nothing
is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.int16]


@dataclass(frozen=True)
class ReadResult:
    """Samples ``[start, start + len(samples))`` of one channel, or ``(frames, channels)`` of
    adjacent ones; ``lost`` leading frames are zero."""

    start: int
    samples: Samples
    lost: int


@dataclass(frozen=True)
class ReadResult2D:
    """Samples ``[start, start + len(frames))`` of every channel, ``(frames, channels)``."""

    start: int
    frames: Samples


class BoardRing:
    """The rings of every channel of one board."""

    def __init__(self, channels: int, capacity: int) -> None:
        if channels < 1 or capacity < 1:
            raise ValueError("a ring needs at least one channel and one sample")
        self.channels = channels
        self.capacity = capacity
        self._data: Samples = np.zeros((capacity, channels), dtype=np.int16)
        self.write_pos = 0  # absolute index of the next sample readers may read
        self._claimed = 0  # end of the samples being written now (>= write_pos)

    def write(self, block: Samples) -> None:
        """Append a ``(frames, channels)`` block. Called only from the board's capture thread."""
        frames = block.shape[0]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"expected (frames, {self.channels}) block, got {block.shape}")
        pos = self.write_pos
        if frames > self.capacity:
            # Only the newest capacity frames can be kept; the older ones count as lost
            # for any reader that wanted them.
            pos += frames - self.capacity
            block = block[frames - self.capacity :]
            frames = self.capacity
        self._claimed = pos + frames  # before the copy: readers must see the slots as taken
        start = pos % self.capacity
        first = min(frames, self.capacity - start)
        self._data[start : start + first] = block[:first]
        if first < frames:
            self._data[: frames - first] = block[first:]
        self.write_pos = pos + frames

    def write_silence(self, frames: int) -> None:
        """Append ``frames`` of digital silence on every channel (a gap in the input)."""
        pos = self.write_pos
        if frames > self.capacity:
            pos += frames - self.capacity
            frames = self.capacity
        self._claimed = pos + frames
        start = pos % self.capacity
        first = min(frames, self.capacity - start)
        self._data[start : start + first] = 0
        if first < frames:
            self._data[: frames - first] = 0
        self.write_pos = pos + frames

    @property
    def oldest(self) -> int:
        """The oldest position still held (readers should stay clear of it: it goes next)."""
        return max(0, self.write_pos - self.capacity)

    def frames(self, start: int, end: int) -> ReadResult2D:
        """Samples ``[start, end)`` of every channel as ``(frames, channels)``; may be a view.

        For the level meters, which read the newest audio and can tolerate a stale window
        if they ever fall a whole look-back behind (``lost`` says how much).
        """
        if end > self.write_pos:
            raise ValueError(f"cannot read up to {end}: only {self.write_pos} samples written")
        start = max(start, self.write_pos - self.capacity)
        i, j = start % self.capacity, (end - 1) % self.capacity + 1 if end > start else 0
        if end <= start:
            return ReadResult2D(start, self._data[:0])
        if i < j:
            return ReadResult2D(start, self._data[i:j])
        return ReadResult2D(start, np.concatenate((self._data[i:], self._data[:j])))

    def read(self, channel: int, start: int, end: int) -> ReadResult:
        """Copy samples ``[start, end)`` of ``channel`` (0-based); ``end`` must be <= write_pos."""
        return self._read(channel, start, end)

    def read_adjacent(self, first: int, count: int, start: int, end: int) -> ReadResult:
        """Copy samples ``[start, end)`` of channels ``first`` to ``first + count - 1`` as
        ``(frames, count)``: a call whose parties sit side by side (a SIPREC session's two
        channels) is read with one strided copy, already in the stereo layout."""
        if first < 0 or count < 1 or first + count > self.channels:
            raise ValueError(f"no channels {first} to {first + count - 1} in {self.channels}")
        return self._read(slice(first, first + count), start, end)

    def _read(self, columns: int | slice, start: int, end: int) -> ReadResult:
        if end > self.write_pos:
            raise ValueError(f"cannot read up to {end}: only {self.write_pos} samples written")
        count = max(0, end - start)
        shape = (count,) if isinstance(columns, int) else (count, columns.stop - columns.start)
        # Not zeroed first: every sample is either copied below or counted lost and zeroed
        # (the writer has always claimed at least up to the oldest position read here).
        out: Samples = np.empty(shape, dtype=np.int16)
        oldest = self.write_pos - self.capacity
        first_kept = max(start, oldest)
        if first_kept < end:
            self._copy(columns, first_kept, end, out[first_kept - start :])
        # The writer may have lapped us while we copied, and may be copying right now: whatever
        # it has claimed over is not ours.
        overwritten_to = min(end, self._claimed - self.capacity)
        lost = max(0, overwritten_to - start)
        if lost:
            out[:lost] = 0
        return ReadResult(start=start, samples=out, lost=lost)

    def _copy(self, columns: int | slice, start: int, end: int, out: Samples) -> None:
        row = self._data[:, columns]
        i = start % self.capacity
        n = end - start
        first = min(n, self.capacity - i)
        out[:first] = row[i : i + first]
        if first < n:
            out[first:n] = row[: n - first]
