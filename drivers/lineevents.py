"""Line events: what a board reports about a line besides its audio (ring, caller ID, hook).

Plain values, shared by the drivers that report them, the capture core that stamps them with
the board's sample position, and the line trigger's rule (``recorder.rules.triggers``).
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
