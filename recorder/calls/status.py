"""What the status requests show of the live call model: devices, their calls, channels, and
the recordings in progress (/status).

Frozen snapshots taken under the call table's lock, so DEVICESTATUS, DEVICELIST,
DEVICERECORDINGSTATUS, CHANNELS and /status render them without holding it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from recorder.calls.devices import DeviceState, TableSize
from recorder.calls.lookup import DeviceLookup
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallError, DeviceQuery
from recorder.calls.table import CallTable
from recorder.capture.channels import StateSnapshot
from recorder.capture.core import CaptureCore, ChannelLevels
from recorder.recording.session import RecordingSession
from recorder.resultcodes import ResultCode
from recorder.rules.decision import Decision
from recorder.store.records import STOP_CALL_ENDED, STOP_CALLSTOP, STOP_RECORDSTOP, STOP_TRIGGER

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
    """The call as the status requests show it: recorded while any recording of it runs (its
    main one, a RECORDSTART, the continuation after a full disk), with that recording's file;
    the main recording's file and stop reason once none runs."""
    running = [r for r in call.recordings() if not r.session.closed]
    shown = call.main
    if running and (shown is None or shown.session.closed):
        shown = running[-1]  # the newest: a continuation follows the recording it continues
    return CallStatus(
        instance=call.instance, meta=dict(call.meta), start_time=call.start_time,
        stop_time=call.stop_time, recording=bool(running),
        filename=shown.filename if shown is not None else "",
        record_id=shown.record_id if shown is not None else None, decision=call.decision,
        paused=call.paused, stop_reason="" if running else call.stop_reason,
        global_id=call.global_id,
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


@dataclass(frozen=True)
class InProgress:
    """A recording in progress as /status shows it."""

    record_id: int | None  # None until its row is written
    device_id: str
    global_id: str
    started: float  # unix time
    seconds: float  # of audio so far, pre-roll included
    partial: bool  # a RECORDSTART recording
    paused: bool  # a blackout is running
    filename: str


class StatusViews:
    """Snapshots of the call table for the status requests and the telemetry."""

    def __init__(self, table: CallTable, lookup: DeviceLookup, capture: CaptureCore,
                 clock: Callable[[], float] = time.time) -> None:
        self._table = table
        self._lookup = lookup
        self._capture = capture
        self._clock = clock

    def device_status(self, device: DeviceQuery) -> list[DeviceStatus]:
        """Every known device for an empty query, else the one device it names."""
        device_id = self._lookup.resolve(device) if device else None
        with self._table.lock:
            if device_id is None:
                states = self._table.devices.all()
            else:
                state = self._table.devices.get(device_id)
                if state is None:
                    raise CallError(ResultCode.API_DEVICE_INVALID,
                                    "Could not find a device matching given parameters")
                states = [state]
            return [device_status_of(s) for s in states]

    def channels(self) -> list[ChannelInfo]:
        """Every channel with its state and the device it records, in channel order."""
        with self._table.lock:
            aliases = {}
            for channel in self._capture.channels:
                state = self._table.devices.get(channel.device_id)
                shown = None
                if state is not None:
                    shown = next(reversed(state.active.values()), None) or state.last
                aliases[channel.id] = shown.meta.get("DEVICEALIAS", "") if shown else ""
        return [ChannelInfo(channel.id, channel.device_id, aliases[channel.id],
                            channel.trigger, channel.status.snapshot(), channel.levels())
                for channel in self._capture.channels]

    def device_table_size(self) -> TableSize:
        """How many devices the live table holds (tapped, and tracked from calls)."""
        # Without the lock: the counts are plain len() reads, and /status must answer while
        # the scheduler is stuck.
        return self._table.devices.size()

    def in_progress(self, timeout: float = -1) -> list[InProgress] | None:
        """The recordings of the calls in progress, oldest call first.

        None if the table's lock could not be had within ``timeout`` seconds (-1: wait), so a
        diagnostic asking during a hang answers instead of hanging with it.
        """
        if not self._table.lock.acquire(timeout=timeout):
            return None
        try:
            calls = self._table.open_calls()
        finally:
            self._table.lock.release()
        now = self._clock()
        found: list[InProgress] = []
        for call in sorted(calls, key=lambda c: c.start_time):
            for recording in call.recordings():
                session = recording.session
                if session.closed:
                    continue
                channel = session.channel
                seconds = max(0, channel.position - session.start) / channel.sample_rate
                found.append(InProgress(
                    record_id=recording.record_id, device_id=call.device_id,
                    global_id=call.global_id,
                    started=now - seconds if recording.partial else call.start_time,
                    seconds=seconds, partial=recording.partial, paused=call.paused,
                    filename=recording.filename))
        return found

    def live_session(self, record_id: int) -> RecordingSession | None:
        """The session of the recording in progress with ``record_id``, for a live listener
        (the portal reads its audio from the ring itself); None if none is in progress."""
        with self._table.lock:
            calls = self._table.open_calls()
        for call in calls:
            for recording in call.recordings():
                if recording.record_id == record_id and not recording.session.closed:
                    return recording.session
        return None


__all__ = [
    "NORMAL_STOPS",
    "CallStatus",
    "ChannelInfo",
    "DeviceStatus",
    "InProgress",
    "StatusViews",
    "call_status_of",
    "device_status_of",
]
