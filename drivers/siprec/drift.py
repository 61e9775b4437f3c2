"""Clock drift between an RTP sender and the board: when to move a stream's anchor.

A stream is anchored once, at its first packet (arrival + the playout delay), and every later
sample sits where its RTP timestamp puts it. That is exact while the sender's sample clock and
ours agree; a sender whose clock runs slow by 500 ppm falls 0.3 s behind over ten minutes, so
its packets, 0.1 s ahead at first, end up arriving after their time was written (lost as
late); one that runs fast piles up audio, and the delay grows without bound.

``DriftTracker`` watches each packet's *lead*: how far ahead of the moment it arrived its
audio is placed on the board (``delay`` for the first packet, less for any the network held
up). Network jitter only ever shortens a lead, so the longest lead of a window of arrivals
(``WINDOW_SECONDS``) measures the path without the jitter; the first window's is the
reference. When a later window's longest lead has moved more than ``THRESHOLD_MS`` from it
(and not so far that it cannot be drift: a timestamp jump or an SSRC change is the jitter
buffer's business), the anchor moves back by at most ``STEP_MS``: silence inserted at a block
seam when the sender is slow, that much audio left out when it is fast. A sender on our
clock never moves past the threshold, so its stream stays sample-exact.
"""

from __future__ import annotations

WINDOW_SECONDS = 2.0
MIN_PACKETS = 10  # a window with fewer arrivals (a pause, silence suppression) says nothing
THRESHOLD_MS = 10
STEP_MS = 5
MAX_DRIFT_MS = 250  # beyond it a change of lead is a jump of the sender's, not its clock


class DriftTracker:
    """Decides the anchor moves of one stream from its packets' leads (module docstring)."""

    def __init__(self, rate: int) -> None:
        self.window = round(WINDOW_SECONDS * rate)
        self.threshold = THRESHOLD_MS * rate // 1000
        self.step = STEP_MS * rate // 1000
        self.max_drift = MAX_DRIFT_MS * rate // 1000
        self.reference: int | None = None
        self.window_end: int | None = None
        self.best: int | None = None
        self.count = 0

    def reset(self) -> None:
        """Forget the reference (a new segment: its timestamps relate to nothing before)."""
        self.reference = self.window_end = self.best = None
        self.count = 0

    def observe(self, lead: int, position: int) -> int:
        """A packet that arrived at board ``position`` placed ``lead`` frames ahead of it; the
        frames to move the anchor by now (> 0: later, silence inserted; < 0: earlier, audio
        left out), usually 0."""
        if self.window_end is None:
            self.window_end = position + self.window
        if position >= self.window_end:
            shift = self._close()
            self.window_end = position + self.window
            self.best, self.count = lead + shift, 1
            return shift
        self.best = lead if self.best is None else max(self.best, lead)
        self.count += 1
        return 0

    def _close(self) -> int:
        best, count = self.best, self.count
        if best is None or count < MIN_PACKETS:
            return 0
        if self.reference is None:
            self.reference = best
            return 0
        off = self.reference - best  # > 0: packets come later than at first (a slow sender)
        if abs(off) > self.max_drift:
            self.reference = best
            return 0
        if abs(off) <= self.threshold:
            return 0
        return max(-self.step, min(self.step, off))
