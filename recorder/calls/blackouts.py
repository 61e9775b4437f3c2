"""Blackouts of calls in progress: BLACKOUTSTART/STOP for one call, AGENTBLACKOUTSTART/STOP for
every call of an agent's devices (also the calls that start before the agent's blackout stops).

A blackout is a range of the call's channel timeline (``recorder.rules.blackout``); it may reach
back in time (a negative TIMEOFFSET), and the sessions then silence what they already wrote.
Each change is published as RECORDINGPAUSED or RECORDINGRESUMED for the recordings running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from recorder.calls.events import CallEvents
from recorder.calls.lookup import DeviceLookup
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallError, DeviceQuery
from recorder.calls.table import CallTable
from recorder.capture.core import CaptureCore
from recorder.recording.files import OpenRecording
from recorder.resultcodes import ResultCode
from recorder.rules.blackout import BlackoutStateError

logger = logging.getLogger(__name__)


class BlackoutControl:
    """Starts and stops blackouts; thread-safe (the table's lock, then each call's)."""

    def __init__(self, table: CallTable, lookup: DeviceLookup, capture: CaptureCore,
                 events: CallEvents,
                 noted: Callable[[OpenRecording], None] | None = None) -> None:
        self._table = table
        self._lookup = lookup
        self._capture = capture
        self._events = events
        # Each change goes into the recordings' crash-journal entries (RecordingFiles.
        # note_blackouts), so a recovered row keeps its blackouts too.
        self._noted = noted or (lambda opened: None)

    def start(self, device: DeviceQuery, instance: str | None,
              offset_seconds: int = 0) -> LiveCall:
        """BLACKOUTSTART: silence the call from now plus ``offset_seconds`` (may be negative)."""
        return self._change(device, instance, offset_seconds, self._start)

    def stop(self, device: DeviceQuery, instance: str | None,
             offset_seconds: int = 0) -> LiveCall:
        """BLACKOUTSTOP: the silence ends at now plus ``offset_seconds``, never before its start."""
        return self._change(device, instance, offset_seconds, self._stop)

    def agent_start(self, devices: list[str], offset_seconds: int = 0) -> None:
        """AGENTBLACKOUTSTART: every call of the agent's ``devices`` is silenced, including
        calls that start before AGENTBLACKOUTSTOP."""
        table = self._table
        with table.lock:
            running = [d for d in devices if d in table.agent_blackouts]
            if running:
                raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                                "an agent blackout is already running on " + ", ".join(running))
            table.agent_blackouts.update(devices)
            calls = [(c, self._position(c, offset_seconds)) for c in table.open_calls(devices)]
        for call, position in calls:
            with call.lock:
                if not call.blackouts.active:
                    self._start(call, position)

    def agent_stop(self, devices: list[str], offset_seconds: int = 0) -> None:
        table = self._table
        with table.lock:
            if not any(d in table.agent_blackouts for d in devices):
                raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                                "no agent blackout is running for that agent")
            table.agent_blackouts.difference_update(devices)
            calls = [(c, self._position(c, offset_seconds)) for c in table.open_calls(devices)]
        for call, position in calls:
            with call.lock:
                if call.blackouts.active:
                    self._stop(call, position)

    def running_agents(self) -> frozenset[str]:
        """The devices an agent blackout (AGENTBLACKOUTSTART) is running on."""
        with self._table.lock:
            return frozenset(self._table.agent_blackouts)

    def _change(self, device: DeviceQuery, instance: str | None, offset_seconds: int,
                change: Callable[[LiveCall, int], None]) -> LiveCall:
        device_id = self._lookup.resolve(device)
        with self._table.lock:
            call = self._table.find_call(device_id, instance)
            position = self._position(call, offset_seconds)
        with call.lock:
            change(call, position)
        return call

    def _start(self, call: LiveCall, position: int) -> None:
        try:
            call.blackouts.start(position)
        except BlackoutStateError as exc:
            raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                            f"device {call.device_id}: {exc}") from exc
        self._reached_back(call)
        logger.info("blackout on %s (instance %r) from sample %d", call.device_id,
                    call.instance, position)
        for recording in call.recordings():
            if recording.active:
                self._events.publish("RECORDINGPAUSED", call, recording)

    def _stop(self, call: LiveCall, position: int) -> None:
        try:
            start, end = call.blackouts.stop(position)
        except BlackoutStateError as exc:
            raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                            f"device {call.device_id}: {exc}") from exc
        self._reached_back(call)
        logger.info("blackout on %s (instance %r): samples %d-%d", call.device_id,
                    call.instance, start, end)
        for recording in call.recordings():
            if recording.active:
                self._events.publish("RECORDINGRESUMED", call, recording)

    def _reached_back(self, call: LiveCall) -> None:
        for recording in call.recordings():
            recording.session.blackout_reached_back()
            self._noted(recording.file)

    def pause(self, call: LiveCall, position: int) -> bool:
        """The call's SIPREC session paused at ``position``: blacked out from there, as
        BLACKOUTSTART does; False if a blackout already runs (it covers the pause)."""
        with call.lock:
            if call.blackouts.active:
                return False
            self._start(call, position)
            return True

    def resume(self, call: LiveCall, position: int) -> None:
        """The session's pause (``pause`` returned True) ended at ``position``."""
        with call.lock:
            if call.blackouts.active:
                self._stop(call, position)

    def _position(self, call: LiveCall, offset_seconds: int) -> int:
        channel = call.taps[0] if call.taps else None
        if channel is None:
            return 0
        return max(0, channel.position + offset_seconds * channel.sample_rate)
