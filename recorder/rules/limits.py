"""MAXRECORDTIME and MAXRECORDSILENCE: when a recording in progress must end, and where.

A pure function of the recording's start, its limits and what the capture core knows (how far
the channel has captured, and per side of the device whether it is silent and since when), so
the rule is tested with plain tables. The scheduler asks it a few times a second and ends the
recording at the position it answers, which does not depend on when it asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recorder.store.records import STOP_MAXRECORDSILENCE, STOP_MAXRECORDTIME


@dataclass(frozen=True)
class Side:
    """One channel tapping the device, as the level meter has measured it."""

    silent: bool  # its newest 20 ms window is below the board's silence threshold
    silence_since: int  # the position its current silence began at
    measured: int  # the position the meter has measured up to


@dataclass(frozen=True)
class Limits:
    """A recording's limits in seconds; 0 = none."""

    max_record_time: int = 0
    max_record_silence: int = 0


def limit_reached(start: int, position: int, rate: int, limits: Limits,
                  sides: Sequence[Side]) -> tuple[str, int] | None:
    """(stop reason, end position) if the recording that began at ``start`` must end.

    MAXRECORDTIME: once the channel has captured ``max_record_time`` seconds from the start, the
    recording ends exactly there. MAXRECORDSILENCE: once every side has been silent for
    ``max_record_silence`` seconds (counted from the start at the earliest, and only as far as
    every side has been measured), the recording ends where that much silence was reached.
    """
    if limits.max_record_time > 0:
        end = start + limits.max_record_time * rate
        if position >= end:
            return STOP_MAXRECORDTIME, end
    if limits.max_record_silence > 0 and sides and all(side.silent for side in sides):
        since = max(start, *(side.silence_since for side in sides))
        end = since + limits.max_record_silence * rate
        if min(side.measured for side in sides) >= end:
            return STOP_MAXRECORDSILENCE, end
    return None


__all__ = ["Limits", "Side", "limit_reached"]
