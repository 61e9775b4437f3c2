"""Whether a call is recorded, and why: a pure function of the call and the recorder's state.

Priority, capacity, schedules, blocked filters, MAXRECORDTIME and silence rules extend this
function; it never does I/O, so each rule is tested with plain tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.calls import CallStart
from recorder.resultcodes import ResultCode


@dataclass(frozen=True)
class Decision:
    """``record`` or not, with the manual's code for the reason and words for the log."""

    record: bool
    reason: ResultCode
    detail: str


def decide(call: CallStart, device_id: str, channel_id: int | None) -> Decision:
    """Decide about a call starting on ``device_id``, tapped by ``channel_id`` (None: untapped)."""
    if channel_id is None:
        return Decision(False, ResultCode.API_DEVICE_INVALID,
                        f"device {device_id} is not tapped by any channel")
    return Decision(True, ResultCode.API_RECORDING_STARTED,
                    f"device {device_id} is recorded on channel {channel_id}")
