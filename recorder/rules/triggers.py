"""Channel triggers' decisions, as pure functions: when voice activity or a line event starts
or stops a call (``recorder.calls.triggers`` is the loop that applies them).

- ``vox``: a recording starts once speech has lasted ``vox_start_seconds`` and stops after
  ``vox_hold_seconds`` of silence. It starts at the sample the speech began (the scheduler adds
  the pre-roll) and ends at the end of the hold time, so no syllable is clipped.
- ``line``: the board's off-hook starts a recording, on-hook (or a loop-current drop, or the end
  of the device's audio stream) stops it. Caller ID seen while the line rang becomes the ANI,
  and a call that rang before going off-hook is inbound (CALLDIRECTION I), else outbound (O).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from recorder.drivers.lineevents import LineEventKind, StampedEvent


@dataclass(frozen=True)
class VoxParams:
    start_frames: int  # speech this long starts a recording
    hold_frames: int  # silence this long stops it


@dataclass(frozen=True)
class Action:
    kind: str  # "start" or "stop"
    position: int  # the sample the call starts or ends at
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Activity:
    """A channel's level meter: measured up to ``measured``; the current run began at ..."""

    measured: int
    silent: bool
    speech_since: int
    silence_since: int


Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class VoxState:
    """Every vox device of a board at once (arrays, one entry per device)."""

    measured: int
    silent: Bools
    speech_since: Ints
    silence_since: Ints


def vox_decide(active: Bools, now: VoxState, start_frames: Ints, hold_frames: Ints,
               armed_from: Ints) -> tuple[Bools, Bools]:
    """Which vox devices start a recording now, and which stop one, vectorized.

    A device starts once its speech has lasted ``start_frames`` (at the sample the speech began),
    and stops once silence has lasted ``hold_frames`` (at the end of that hold). ``armed_from``:
    only speech that began at or after it starts a recording (after someone else stopped the last
    one, the speech it was stopped in does not restart it).
    """
    start = (~active & ~now.silent & (now.speech_since >= armed_from)
             & (now.measured - now.speech_since >= start_frames))
    stop = active & now.silent & (now.measured - now.silence_since >= hold_frames)
    return start, stop


def vox_step(active: bool, now: Activity, params: VoxParams, armed_from: int = 0) -> Action | None:
    """``vox_decide`` for one channel, as an Action."""
    start, stop = vox_decide(
        np.array([active]),
        VoxState(now.measured, np.array([now.silent]), np.array([now.speech_since]),
                 np.array([now.silence_since])),
        np.array([params.start_frames]), np.array([params.hold_frames]), np.array([armed_from]))
    if start[0]:
        return Action("start", now.speech_since)
    if stop[0]:
        return Action("stop", now.silence_since + params.hold_frames)
    return None


@dataclass(frozen=True)
class LineState:
    in_call: bool = False
    rang_at: int | None = None  # position of the last ring (or caller ID) not yet answered
    caller: dict[str, str] = field(default_factory=dict)  # caller ID fields as delivered


LINE_ENDS = frozenset({LineEventKind.ON_HOOK, LineEventKind.LOOP_DROP,
                       LineEventKind.END_OF_STREAM})
# Rings come every 6 s or so (4 s pause on most exchanges): an off-hook longer than this after
# the last ring is a new (outbound) call, not the answer to a call that rang out unanswered.
RING_MEMORY_SECONDS = 10.0


def line_step(state: LineState, event: StampedEvent,
              ring_memory_frames: int = round(RING_MEMORY_SECONDS * 8000),
              ) -> tuple[LineState, Action | None]:
    """What a line-triggered channel does on one line event."""
    kind = event.event.kind
    if kind is LineEventKind.RING:
        return replace(state, rang_at=event.position), None
    if kind is LineEventKind.CALLER_ID:
        return replace(state, rang_at=event.position,
                       caller={**state.caller, **event.event.data}), None
    if kind is LineEventKind.OFF_HOOK and not state.in_call:
        rang = (state.rang_at is not None
                and event.position - state.rang_at <= ring_memory_frames)
        meta = {"CALLDIRECTION": "I" if rang else "O"}
        number = state.caller.get("NMBR", "").strip() if rang else ""
        if number:
            meta["ANI"] = number
        return LineState(in_call=True), Action("start", event.position, meta)
    if kind in LINE_ENDS:
        return LineState(), Action("stop", event.position) if state.in_call else None
    return state, None


def combine_sides(measured: int, silent: Bools, speech: Ints, silence: Ints, *, first: Ints,
                  second: Ints) -> VoxState:
    """Per device, from its channels' meters: speech if either side speaks (since the earliest
    side that is speaking), silence since the later side fell silent. A device tapped once has
    ``second == first``."""
    s1, s2 = silent[first], silent[second]
    speech_since = np.where(~s1 & ~s2, np.minimum(speech[first], speech[second]),
                            np.where(~s1, speech[first], speech[second]))
    return VoxState(measured, s1 & s2, speech_since,
                    np.maximum(silence[first], silence[second]))


def combine(parts: Sequence[Activity]) -> Activity:
    """``combine_sides`` for one device of one or two channels."""
    pair = [parts[0], parts[-1]]
    both = combine_sides(min(p.measured for p in parts), np.array([p.silent for p in pair]),
                         np.array([p.speech_since for p in pair]),
                         np.array([p.silence_since for p in pair]),
                         first=np.array([0]), second=np.array([1]))
    silent = bool(both.silent[0])
    return Activity(both.measured, silent, 0 if silent else int(both.speech_since[0]),
                    int(both.silence_since[0]) if silent else 0)
