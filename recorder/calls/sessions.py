"""SIPREC sessions as calls: a siprec board's session events (``drivers/siprec``) made into the
scheduler's ordinary calls.

A session reaches here as line events on its first channel, drained from the capture core by
the triggers loop (the queue's one consumer, which routes them by kind):

- ``SESSION_START`` binds the session's device to its two channels (``CaptureCore.bind``) and
  starts a call at the event's position, exactly (no pre-roll: the channels carried another
  call just before): CALLSTART through the scheduler, so schedules, blocked filters, sampling,
  priority and ``recording.max_concurrent`` decide as for any call. When they say no, the
  call is tracked and nothing is recorded; the SRC was answered 200 all the same.
- ``SESSION_UPDATE`` (new metadata) changes the call and its row, as CALLUPDATE does
  (RECORDINGUPDATE).
- ``SESSION_PAUSE``/``SESSION_RESUME`` black the call out from the pause to the resume, as
  BLACKOUTSTART/STOP do (digital silence, RECORDINGPAUSED/RESUMED); a blackout already running
  covers the pause and is left to whoever started it.
- ``SESSION_END`` ends the call at the position its last audio ended (CALLSTOP) and unbinds
  the channels.

The CTI may report the same calls: its CALLSTART and CALLUPDATE attach to the session's call
and row, its CALLSTOP does not end it (``Scheduler._attach``, docs/siprec.md); a CALLSTART
that came first is adopted by the session's start (``calls/adoption``). Runs on the triggers
thread only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from recorder.calls.model import LiveCall
from recorder.calls.requests import CallStart, CallUpdate, DeviceQuery
from recorder.calls.scheduler import Scheduler
from recorder.capture.core import CaptureCore, Channel
from recorder.drivers.lineevents import LineEventKind, StampedEvent
from recorder.errors import ResultError

logger = logging.getLogger(__name__)

# The session's fields that are the call's metadata (METADATA_FIELDS).
META_FIELDS = ("ANI", "DNIS", "CALLID", "CALLDIRECTION")
MAX_INSTANCE = 64  # CALLINSTANCE's limit in requests: the CTI must be able to name it


@dataclass(eq=False)
class _Session:
    call: LiveCall
    device: str
    taps: tuple[Channel, ...]
    paused: bool = False  # the session's pause started the call's blackout


class SessionCalls:
    """The calls of every siprec board's sessions; ``handle`` takes their line events."""

    def __init__(self, capture: CaptureCore, scheduler: Scheduler) -> None:
        self._capture = capture
        self._scheduler = scheduler
        self._sessions: dict[tuple[str, str], _Session] = {}  # (board, SESSION) -> call

    @property
    def live(self) -> int:
        return len(self._sessions)

    def handle(self, stamped: StampedEvent) -> None:
        """One session event; never raises (one bad event must not stop the others)."""
        try:
            self._handle(stamped)
        except Exception:
            logger.exception("a SIPREC session event (%s on channel %d) failed",
                             stamped.event.kind.value, stamped.channel)

    def _handle(self, stamped: StampedEvent) -> None:
        channel = self._capture.channel(stamped.channel)
        if channel is None:
            return
        data = stamped.event.data
        key = (channel.board.key, data.get("SESSION", ""))
        kind = stamped.event.kind
        if kind is LineEventKind.SESSION_START:
            self._start(key, channel, stamped)
            return
        session = self._sessions.get(key)
        if session is None:
            return  # its start was refused, or the recorder stopped meanwhile
        if kind is LineEventKind.SESSION_UPDATE:
            self._scheduler.updates.apply(session.call, CallUpdate(meta=_meta(data)))
        elif kind is LineEventKind.SESSION_PAUSE:
            session.paused = self._scheduler.blackouts.pause(session.call, stamped.position)
        elif kind is LineEventKind.SESSION_RESUME:
            if session.paused:
                self._scheduler.blackouts.resume(session.call, stamped.position)
                session.paused = False
        elif kind is LineEventKind.SESSION_END:
            del self._sessions[key]
            try:
                self._scheduler.end_call(session.call, stamped.position)
            finally:
                self._capture.unbind(session.device, session.taps)

    def _start(self, key: tuple[str, str], channel: Channel, stamped: StampedEvent) -> None:
        data = stamped.event.data
        device = data.get("DEVICEID", "")
        second = self._capture.channel(channel.board.first_channel_id
                                       + int(data.get("CHANNEL2") or channel.index + 1))
        taps = (channel,) if second is None else (channel, second)
        if not device:
            return
        self._capture.bind(device, taps)
        try:
            call = self._scheduler.call_start(CallStart(
                device=DeviceQuery(device_id=device),
                instance=data.get("CALLID", "")[:MAX_INSTANCE] or key[1], meta=_meta(data),
                cti_initiated="N", agent_initiated="N", position=stamped.position,
                trigger="siprec", siprec=key[1], channels=tuple(t.id for t in taps),
                global_id=data.get("GLOBALCALLID", "")))
        except ResultError as exc:
            self._capture.unbind(device, taps)
            logger.warning("SIPREC session %s of %s: no call: %s", key[1], device, exc)
            return
        self._sessions[key] = _Session(call, device, taps)


def _meta(data: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name in META_FIELDS if (value := data.get(name))}
