"""Line events: what a board reports about a line besides its audio (ring, caller ID, hook),
and the recording sessions of a board whose channels are bound to calls as they come (SIPREC).

Plain values, shared by the drivers that report them, the capture core that stamps them with
the board's sample position, the line trigger's rule (``recorder.rules.triggers``) and the
calls layer's SIPREC sessions (``recorder.calls.sessions``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class LineEventKind(enum.Enum):
    RING = "ring"
    CALLER_ID = "caller-id"  # data: DATE, TIME, NMBR, NAME as the line delivered them
    OFF_HOOK = "off-hook"
    ON_HOOK = "on-hook"
    LOOP_DROP = "loop-drop"  # loop current interrupted: the far end hung up
    BUSY = "busy"
    DIAL_TONE = "dial-tone"
    SILENCE = "silence"
    END_OF_STREAM = "end-of-stream"  # the device stopped sending audio (DLE ETX)
    # A recording session on the channel pair starting at this channel (data: SESSION_FIELDS).
    SESSION_START = "session-start"
    SESSION_UPDATE = "session-update"  # new metadata: data holds the session's fields again
    SESSION_PAUSE = "session-pause"  # the SRC paused the recording: nothing is sent
    SESSION_RESUME = "session-resume"
    SESSION_END = "session-end"  # its last audio is in the ring; the channels are free after


SESSION_KINDS = frozenset({LineEventKind.SESSION_START, LineEventKind.SESSION_UPDATE,
                           LineEventKind.SESSION_PAUSE, LineEventKind.SESSION_RESUME,
                           LineEventKind.SESSION_END})
# The data of a session's events: SESSION is its key on the board (unique while the board
# runs), CHANNEL2 the board's 0-based index of its second channel; DEVICEID, ANI, DNIS,
# CALLDIRECTION and CALLID as the recorder's fields; GLOBALCALLID the SRC's id for the call
# ("" when it gave none).
SESSION_FIELDS = ("SESSION", "CHANNEL2", "DEVICEID", "ANI", "DNIS", "CALLDIRECTION", "CALLID",
                  "GLOBALCALLID")


@dataclass(frozen=True)
class LineEvent:
    channel: int  # 0-based channel of the board
    kind: LineEventKind
    data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StampedEvent:
    """A line event at the sample position (and wall-clock time) it happened."""

    channel: int  # channel id, 1-based across the recorder
    event: LineEvent
    position: int
    time: float
