"""MAXRECORDTIME and MAXRECORDSILENCE as a table: when a recording ends, and where."""

from __future__ import annotations

import dataclasses

import pytest

from recorder.rules.limits import Limits, Side, limit_reached

R = 8000  # samples per second
START = 10 * R  # the recording began 10 s into the channel


def quiet(since: float, measured: float) -> Side:
    return Side(silent=True, silence_since=round(since * R), measured=round(measured * R))


def talking(measured: float) -> Side:
    return Side(silent=False, silence_since=0, measured=round(measured * R))


@pytest.mark.parametrize(("position", "limits", "sides", "expected"), [
    # No limits: never. -1 (a schedule's "not set") that reaches the rule is no limit either.
    (99.0, Limits(), [quiet(0, 99)], None),
    (99.0, Limits(max_record_time=-1, max_record_silence=-1), [quiet(0, 99)], None),
    # The shortest limits, one second, count like any other.
    (11.0, Limits(max_record_time=1), [], ("maxrecordtime", 11.0)),
    (11.0, Limits(max_record_silence=1), [quiet(10, 11)], ("maxrecordsilence", 11.0)),
    # MAXRECORDTIME: ends exactly max seconds after the start, once captured that far.
    (11.9, Limits(max_record_time=2), [], None),
    (12.0, Limits(max_record_time=2), [], ("maxrecordtime", 12.0)),
    (15.3, Limits(max_record_time=2), [], ("maxrecordtime", 12.0)),  # a late check: same end
    # MAXRECORDSILENCE: every side silent that long, counted from the later of the silence's
    # start and the recording's start.
    (14.0, Limits(max_record_silence=3), [quiet(10.5, 13.4)], None),
    (14.0, Limits(max_record_silence=3), [quiet(10.5, 13.5)], ("maxrecordsilence", 13.5)),
    (14.0, Limits(max_record_silence=3), [quiet(2.0, 13.0)], ("maxrecordsilence", 13.0)),
    # ... only as far as the meter has measured, on every side.
    (20.0, Limits(max_record_silence=3), [quiet(11, 20), quiet(11, 13.9)], None),
    (20.0, Limits(max_record_silence=3), [quiet(11, 20), quiet(12, 20)],
     ("maxrecordsilence", 15.0)),
    # ... and not while any side talks.
    (20.0, Limits(max_record_silence=3), [quiet(11, 20), talking(20)], None),
    (20.0, Limits(max_record_silence=3), [], None),
    # Both limits: whichever is reached; time first when both are.
    (12.5, Limits(max_record_time=60, max_record_silence=2), [quiet(10, 12.5)],
     ("maxrecordsilence", 12.0)),
    (12.5, Limits(max_record_time=2, max_record_silence=2), [quiet(10, 12.5)],
     ("maxrecordtime", 12.0)),
])
def test_when_a_recording_ends(position: float, limits: Limits, sides: list[Side],
                               expected: tuple[str, float] | None) -> None:
    got = limit_reached(START, round(position * R), R, limits, sides)
    want = None if expected is None else (expected[0], round(expected[1] * R))
    assert got == want


def test_limits_and_sides_cannot_be_changed_once_made() -> None:
    # One Limits() is shared as the default of every SIPREC recording: a recording that could
    # change it would change the limits of all the others.
    with pytest.raises(dataclasses.FrozenInstanceError):
        Limits().max_record_time = 5  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        talking(1).silent = True  # type: ignore[misc]
