"""Blackout ranges: which samples of a call must be digital silence, as pure functions.

A call's blackouts are sample ranges on its channel's timeline (absolute positions, as the ring
counts them), the last one possibly still open (its end ``OPEN``). BLACKOUTSTART opens one,
BLACKOUTSTOP closes it, never before its start (the manual). Sessions zero the ranges inside
each block they write (``zero_ranges``); ``recorder.recording.blackouts`` keeps a call's ranges
for the threads that share them and silences audio already in a file.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Range = tuple[int, int]  # [start, end) in absolute sample positions

OPEN = 2**62  # the end of a blackout that has not been stopped yet


class BlackoutStateError(Exception):
    """A BLACKOUTSTART while one runs, or a BLACKOUTSTOP with none running."""


def running(ranges: Sequence[Sequence[int]]) -> bool:
    """A blackout is open (started and not stopped)."""
    return bool(ranges) and ranges[-1][1] == OPEN


def started(ranges: list[list[int]], position: int) -> None:
    """Open a blackout at ``position`` (BLACKOUTSTART); one may run at a time."""
    if running(ranges):
        raise BlackoutStateError("a blackout is already running")
    ranges.append([max(0, position), OPEN])


def stopped(ranges: list[list[int]], position: int) -> Range:
    """Close the running blackout at ``position``, never before its start (BLACKOUTSTOP)."""
    if not running(ranges):
        raise BlackoutStateError("no blackout is running")
    current = ranges[-1]
    current[1] = max(current[0], position)
    return current[0], current[1]


def overlapping(ranges: Sequence[Range], start: int, end: int) -> list[Range]:
    """The parts of ``ranges`` inside [start, end)."""
    return [(max(a, start), min(b, end)) for a, b in ranges if a < end and b > start]


def zero_ranges(samples: npt.NDArray[np.int16], first: int, ranges: Sequence[Range]) -> None:
    """Silence, in place, the frames of ``samples`` (frame 0 at position ``first``) in ranges."""
    for a, b in overlapping(ranges, first, first + len(samples)):
        samples[a - first:b - first] = 0
