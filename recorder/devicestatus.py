"""What the status requests show of the live call model: devices, their calls, channels.

Frozen snapshots taken under the scheduler's lock, so DEVICESTATUS, DEVICELIST,
DEVICERECORDINGSTATUS and CHANNELS render them without holding it.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.calls import STOP_CALL_ENDED, STOP_CALLSTOP, STOP_RECORDSTOP, STOP_TRIGGER
from recorder.capture import ChannelLevels
from recorder.channels import StateSnapshot
from recorder.decision import Decision
from recorder.devices import DeviceState, LiveCall

# Stop reasons that are the call (or its client) ending it: ERRORREASON NONE in the events and
# DEVICESTATUS; any other shows as the reason in capitals.
NORMAL_STOPS = frozenset({STOP_CALLSTOP, STOP_RECORDSTOP, STOP_CALL_ENDED, STOP_TRIGGER})


@dataclass(frozen=True)
class CallStatus:
    """A call as DEVICESTATUS shows it."""

    instance: str
    meta: dict[str, str]
    start_time: float
    stop_time: float | None
    recording: bool
    filename: str
    record_id: int | None
    decision: Decision | None
    paused: bool = False
    stop_reason: str = ""
    global_id: str = ""


@dataclass(frozen=True)
class DeviceStatus:
    """A device, its most recently active call and all of its open calls."""

    device_id: str
    channel: int | None
    current: CallStatus | None
    open_calls: tuple[CallStatus, ...]


@dataclass(frozen=True)
class ChannelInfo:
    """A channel as CHANNELS shows it."""

    id: int
    device_id: str
    device_alias: str
    trigger: str
    state: StateSnapshot
    levels: ChannelLevels


def call_status_of(call: LiveCall) -> CallStatus:
    return CallStatus(
        instance=call.instance, meta=dict(call.meta), start_time=call.start_time,
        stop_time=call.stop_time, recording=call.recording, filename=call.filename,
        record_id=call.record_id, decision=call.decision, paused=call.paused,
        stop_reason=call.stop_reason, global_id=call.global_id,
    )


def device_status_of(state: DeviceState) -> DeviceStatus:
    # The manual: "the one that is active or was most recently active", so an open call
    # outranks a later call that has already ended.
    shown = next(reversed(state.active.values()), None) or state.last
    current = call_status_of(shown) if shown is not None else None
    return DeviceStatus(
        device_id=state.device_id, channel=state.channel, current=current,
        open_calls=tuple(call_status_of(c) for c in state.active.values()),
    )


__all__ = ["NORMAL_STOPS", "CallStatus", "ChannelInfo", "DeviceStatus", "call_status_of",
           "device_status_of"]
