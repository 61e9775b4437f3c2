"""One board's clock: maps absolute sample positions to monotonic time, and finds lost audio.

Sample 0 is anchored at the monotonic time it must have been captured (first block's arrival
minus its length). From then on the position of any sample says when it was captured, as long
as no audio went missing. Drivers report the losses they know of; this finds the ones they do
not: if blocks keep arriving later than their positions say for a whole second, audio is missing
and the lateness is written in as silence, so the timeline stays true and the loss is counted.

Two kinds of lateness are not losses. Delivery jitter (a late block, then a burst) is over
within the second, and the minimum lateness over a second ignores it. A device clock slightly
slower than the system's builds lateness up slowly; the anchor follows it by at most
``MAX_SLEW`` per second, far more than any crystal drifts and far less than a lost block.
"""

from __future__ import annotations

GAP_THRESHOLD_SECONDS = 0.25
MAX_SLEW = 0.002  # seconds the anchor may follow per second of audio (2000 ppm)


class BoardClock:
    def __init__(self, sample_rate: int, gap_threshold: float = GAP_THRESHOLD_SECONDS) -> None:
        self.sample_rate = sample_rate
        self.gap_threshold = gap_threshold
        self.origin: float | None = None  # monotonic time of sample 0
        self.lateness = 0.0  # of the newest block, for diagnostics
        self._window_start = 0
        self._window_min = float("inf")

    def time_of(self, position: int) -> float:
        """Monotonic time at which sample ``position`` was (or will be) captured."""
        if self.origin is None:
            raise ValueError("the board has not captured anything yet")
        return self.origin + position / self.sample_rate

    def position_at(self, when: float) -> int:
        """The sample position captured at monotonic time ``when``."""
        if self.origin is None:
            return 0
        return max(0, round((when - self.origin) * self.sample_rate))

    def observe(self, end: int, arrival: float) -> int:
        """A block ending at position ``end`` arrived at ``arrival``.

        Returns the number of frames found missing (to be written as silence before the
        next block); 0 almost always.
        """
        if self.origin is None:
            self.origin = arrival - end / self.sample_rate
            self._window_start = end
            return 0
        late = arrival - self.time_of(end)
        self.lateness = late
        if late < 0:
            # Audio cannot arrive before it was captured: the anchor was late, move it.
            self.origin += late
            late = 0.0
        self._window_min = min(self._window_min, late)
        if end - self._window_start < self.sample_rate:
            return 0
        missing = self._window_min
        self._window_start, self._window_min = end, float("inf")
        if missing > self.gap_threshold:
            return round(missing * self.sample_rate)
        self.origin += min(missing, MAX_SLEW)
        return 0
