"""The scheduler: turns call events into recording sessions, files and rows.

For each CALLSTART it finds the device and the channel tapping it, asks ``decide`` whether to
record, and if so opens the file, registers the session with the writer loop and stores the row.
CALLSTOP ends the session at the sample the stop arrived at, closes the file and completes the
row. Table updates happen under one short lock; file and database work happen under the call's
own lock, so calls on different devices never wait for each other's disk.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from recorder.calls import (
    STOP_CALLSTOP,
    STOP_REPLACED,
    STOP_SHUTDOWN,
    CallError,
    CallStart,
    CallUpdate,
    DeviceQuery,
)
from recorder.capture import CaptureCore, Channel, ChannelLevels
from recorder.channels import Phase, StateSnapshot
from recorder.codecs import file_extension, open_writer
from recorder.decision import Decision, decide
from recorder.devices import DeviceState, DeviceTable, LiveCall
from recorder.errors import StoreError
from recorder.paths import create_unique, recording_path
from recorder.resultcodes import ResultCode
from recorder.session import RecordingSession, SessionResult
from recorder.store import FinishedRecording, NewRecording, RecordingUpdate, Store
from recorder.writer import WriterLoop

logger = logging.getLogger(__name__)



class AfterCall(Protocol):
    """Where finished PCM WAV recordings go to become the stored format (recorder.aftercall)."""

    def submit(self, wav: Path) -> None: ...


@dataclass(frozen=True)
class StoredFormat:
    """What recordings are stored as (storage.format) and when they are encoded."""

    format: str = "wav"
    after_call: bool = False  # record PCM WAV, transcode when the call ends
    options: Mapping[str, Any] = field(default_factory=dict)  # the format's writer options

    @property
    def recorded_as(self) -> str:
        """The format written while the call is recorded."""
        return "wav" if self.after_call else self.format


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


class Scheduler:
    """Owns the live call model and every recording in progress."""

    def __init__(self, *, capture: CaptureCore, store: Store, writer: WriterLoop,
                 recordings_dir: Path, core_ident: int,
                 preroll_seconds: float = 0.0, commit_delay_seconds: float = 0.0,
                 stereo: bool = True, stored: StoredFormat | None = None,
                 after_call: AfterCall | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._capture = capture
        self._store = store
        self._writer = writer
        self._recordings_dir = recordings_dir
        self._core_ident = core_ident
        self._clock = clock
        self._preroll_seconds = preroll_seconds
        self._commit_delay_seconds = commit_delay_seconds
        self._stereo = stereo
        self._stored = stored or StoredFormat()
        self._after_call = after_call
        self._lock = threading.Lock()
        self._devices = DeviceTable()
        for channel in capture.channels:
            self._devices.add(channel.device_id, channel.id)
        self._running = True

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Refuse new calls and finish every recording in progress (file closed, row complete)."""
        with self._lock:
            self._running = False
            calls = [call for dev in self._devices.all() for call in dev.active.values()]
            for dev in self._devices.all():
                dev.active.clear()
        now = self._clock()
        for call in calls:
            call.stop_time = now
            with call.lock:
                self._end_recording(call, STOP_SHUTDOWN, self._position(call))
        if calls:
            logger.info("scheduler: %d call(s) ended by shutdown", len(calls))

    # --- call events -------------------------------------------------------------------------

    def call_start(self, start: CallStart) -> LiveCall:
        """A call began: track it and record it if ``decide`` says so."""
        with self._lock:
            self._check_running()
            device_id = self._resolve(start.device)
            channel = self._capture.channel_for_device(device_id)
            # The recording begins at the sample the call began at (the CALLSTART's arrival,
            # or the trigger's own sample), however long the file and the row then take.
            position = self._start_position(start, channel)
            device = self._devices.add(device_id, channel.id if channel else None)
            replaced = device.active.pop(start.instance, None)
            call = LiveCall(
                device_id=device_id, instance=start.instance, meta=dict(start.meta),
                start_time=self._clock(), priority=start.priority,
                max_record_time=start.max_record_time,
                max_record_silence=start.max_record_silence, keep_days=start.keep_days,
                archive_action=start.archive_action, cti_initiated=start.cti_initiated,
                agent_initiated=start.agent_initiated,
                channel=channel.id if channel else None,
            )
            call.decision = decide(start, device_id, call.channel)
            call.lock.acquire()  # released once the recording has begun (or failed to)
            device.active[start.instance] = call
            device.last = call
        try:
            if replaced is not None:
                replaced.stop_time = call.start_time
                with replaced.lock:
                    self._end_recording(replaced, STOP_REPLACED, position)
            if call.decision.record and channel is not None:
                taps = self._capture.channels_for_device(device_id)
                for tap in taps:
                    tap.status.enter(Phase.PREPARING)
                try:
                    self._begin_recording(call, taps, position)
                finally:
                    for tap in taps:
                        if call.session is not None:
                            tap.status.move(Phase.PREPARING, Phase.RECORDING)
                        else:
                            tap.status.leave(Phase.PREPARING)
            else:
                logger.info("call on %s (instance %r) not recorded: %s", device_id,
                            call.instance, call.decision.detail)
        finally:
            call.lock.release()
        return call

    def call_stop(self, device: DeviceQuery, instance: str | None,
                  position: int | None = None, reason: str = STOP_CALLSTOP) -> LiveCall:
        """A call ended: stop its recording at ``position``, else where the stop arrived."""
        with self._lock:
            self._check_running()
            device_id = self._resolve(device)
            state = self._devices.get(device_id)
            call = state.find(instance) if state else None
            if state is None or call is None:
                which = f"call instance {instance!r}" if instance is not None else "a call"
                raise CallError(ResultCode.API_DEVICE_NOT_IN_CALL,
                                f"device {device_id} is not in {which}")
            del state.active[call.instance]
            call.stop_time = self._clock()
            end = self._position(call)
            if position is not None:
                end = min(end, position)
        with call.lock:
            self._end_recording(call, reason, end)
        return call

    def call_update(self, device: DeviceQuery, instance: str | None, update: CallUpdate,
                    if_not_recording: bool) -> str:
        """Update the device's open call, or with ``if_not_recording`` its last recording.

        Returns "call" or "recording": which of the two was updated.
        """
        with self._lock:
            device_id = self._resolve(device)
            state = self._devices.get(device_id)
            call = state.find(instance) if state else None
        if call is not None:
            with call.lock:
                call.meta.update(update.meta)
                if update.keep_days is not None:
                    call.keep_days = update.keep_days
                if update.archive_action is not None:
                    call.archive_action = update.archive_action
                if call.record_id is not None:
                    self._update_row(call.record_id, update)
            return "call"
        if not if_not_recording:
            raise CallError(ResultCode.API_DEVICE_NOT_IN_CALL, f"device {device_id} is not in a "
                            "call (send UPDATE_IF_NOT_RECORDING=Y to update its last recording)")
        try:
            record_id = self._store.last_recording_id(device_id)
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
        if record_id is None:
            raise CallError(ResultCode.API_RECORDID_INVALID,
                            f"device {device_id} has no recording to update")
        self._update_row(record_id, update)
        return "recording"

    def update_recording(self, record_id: int, update: CallUpdate) -> None:
        """Update a stored recording by RECORDID (CALLUPDATE post-recording)."""
        with self._lock:
            live = next((c for d in self._devices.all() for c in d.active.values()
                         if c.record_id == record_id), None)
        if live is not None:
            # Keep the live call in step, or its stop would not know the new metadata.
            with live.lock:
                live.meta.update(update.meta)
        if not self._update_row(record_id, update):
            raise CallError(ResultCode.API_RECORDID_INVALID, f"no recording {record_id}")

    # --- status ------------------------------------------------------------------------------

    def device_status(self, device: DeviceQuery) -> list[DeviceStatus]:
        """Every known device for an empty query, else the one device it names."""
        with self._lock:
            if not device:
                states = self._devices.all()
            else:
                state = self._devices.get(self._resolve(device))
                if state is None:
                    raise CallError(ResultCode.API_DEVICE_INVALID,
                                    "Could not find a device matching given parameters")
                states = [state]
            return [_device_status(s) for s in states]

    def channels(self) -> list[ChannelInfo]:
        """Every channel with its state and the device it records, in channel order."""
        with self._lock:
            aliases = {}
            for channel in self._capture.channels:
                state = self._devices.get(channel.device_id)
                shown = None
                if state is not None:
                    shown = next(reversed(state.active.values()), None) or state.last
                aliases[channel.id] = shown.meta.get("DEVICEALIAS", "") if shown else ""
        return [ChannelInfo(channel.id, channel.device_id, aliases[channel.id],
                            channel.trigger, channel.status.snapshot(), channel.levels())
                for channel in self._capture.channels]

    # --- internals ---------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise CallError(ResultCode.API_ERROR_SCHEDULER_NOT_RUNNING,
                            "the recorder is shutting down")

    def _resolve(self, query: DeviceQuery) -> str:
        if not query:
            raise CallError(ResultCode.API_DEVICE_INVALID, "one of DEVICEID, DEVICEALIAS, "
                            "SYS_USER, CRM_USER or STATIONNAME is required")
        device_id = self._devices.resolve(query)
        if device_id is None and query.station:
            device_id = self._station_device(query.station)
        if device_id is None:
            raise CallError(ResultCode.API_DEVICE_INVALID,
                            "Could not find a device matching given parameters")
        return device_id

    def _station_device(self, station: str) -> str | None:
        """The DEVICEID IMPORTWORKSTATION mapped ``station`` to (names compare without case)."""
        try:
            stations = self._store.list_stations()
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
        wanted = station.casefold()
        return next((s.device_id for s in stations if s.station_name.casefold() == wanted),
                    None)

    def _start_position(self, start: CallStart, channel: Channel | None) -> int:
        if channel is None:
            return 0
        now = channel.position
        at = now if start.position is None else min(start.position, now)
        preroll = round(self._preroll_seconds * channel.sample_rate)
        # Never further back than the ring still holds, nor before the board started.
        return max(at - preroll, channel.oldest)

    def _position(self, call: LiveCall) -> int:
        # From the channel, not the session: a CALLSTOP can arrive while the session is still
        # being created, and must still end the recording at the sample it arrived at.
        channel = self._capture.channel_for_device(call.device_id)
        return channel.position if channel is not None else 0

    def _begin_recording(self, call: LiveCall, taps: tuple[Channel, ...], position: int) -> None:
        channel = taps[0]
        sides = 2 if len(taps) == 2 and self._stereo else 1
        started = datetime.fromtimestamp(call.start_time)
        wanted = recording_path(self._recordings_dir, call.device_id, started,
                                file_extension(self._stored.recorded_as))
        try:
            path, file = create_unique(wanted)
            try:
                fmt = self._stored.recorded_as
                options = {} if self._stored.after_call else self._stored.options
                writer = open_writer(fmt, file, channel.sample_rate, sides, **options)
            except Exception:
                file.close()
                path.unlink(missing_ok=True)  # nothing of the call is in it yet
                raise
        except Exception as exc:
            no_space = isinstance(exc, OSError) and exc.errno == errno.ENOSPC
            reason = (ResultCode.API_ERROR_OUT_OF_DISK_SPACE if no_space
                      else ResultCode.API_ERROR_NO_DEFAULT_RECORDING_PATH)
            call.decision = Decision(False, reason, f"cannot create {wanted}: {exc}")
            logger.exception("call on %s not recorded: cannot create %s", call.device_id, wanted)
            return
        delay = round(self._commit_delay_seconds * channel.sample_rate)
        session = RecordingSession(taps, writer, path, position, delay)
        call.session = session
        call.filename = str(path)
        self._writer.add(session)
        try:
            call.record_id = self._store.insert_recording(self._new_row(call, channel))
        except StoreError:
            # The audio matters more than the row: keep recording; the row is written when the
            # call stops.
            logger.exception("call on %s: recording to %s without a row for now",
                             call.device_id, path)
        logger.info("recording %s on channel %d to %s (RECORDID %s)", call.device_id, channel.id,
                    path, call.record_id)

    def _end_recording(self, call: LiveCall, reason: str, end: int) -> None:
        session = call.session
        if session is None or session.closed or call.ending:
            return
        call.ending = True
        statuses = [tap.status for tap in session.channels]
        if session.ready_to_finish(end):
            self._writer.discard(session)
            for status in statuses:
                status.leave(Phase.RECORDING)
            self._complete(call, reason, session.finish(end))
            return
        # The last audio is still inside the commit delay: the writer closes the file once it
        # has passed, and completes the row then.
        for status in statuses:
            status.move(Phase.RECORDING, Phase.FINISHING)

        def done(result: SessionResult) -> None:
            for status in statuses:
                status.leave(Phase.FINISHING)
            with call.lock:
                self._complete(call, reason, result)

        self._writer.finish_later(session, end, done)

    def _complete(self, call: LiveCall, reason: str, result: SessionResult) -> None:
        session = call.session
        if session is None:
            return
        stop_time = call.stop_time if call.stop_time is not None else self._clock()
        done = FinishedRecording(
            stop_time=stop_time, duration=result.duration, audio_size=result.size,
            audio_hash=result.sha256, stop_reason=reason, lost_samples=result.lost_samples,
        )
        try:
            if call.record_id is None:
                call.record_id = self._store.insert_recording(
                    self._new_row(call, session.channel))
            self._store.finish_recording(call.record_id, done)
        except StoreError:
            # Start-up completes the row from the file and transcodes it then.
            logger.exception("recording %s is complete but its row could not be written",
                             result.path)
        else:
            if self._after_call is not None and not session.failed:
                self._after_call.submit(result.path)
        logger.info("recorded %s: %.2f s, %d bytes, %s (RECORDID %s)", call.device_id,
                    result.duration, result.size, reason, call.record_id)

    def _update_row(self, record_id: int, update: CallUpdate) -> bool:
        try:
            return self._store.update_recording(record_id, RecordingUpdate(
                meta=update.meta, keep_days=update.keep_days,
                archive_action=update.archive_action))
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc

    def _new_row(self, call: LiveCall, channel: Channel) -> NewRecording:
        return NewRecording(
            device_id=call.device_id, call_instance=call.instance, channel=channel.id,
            filename=call.filename, media_format=self._stored.format,
            sample_rate=channel.sample_rate,
            start_time=call.start_time, core_ident=self._core_ident, meta=dict(call.meta),
            priority=call.priority, keep_days=call.keep_days,
            archive_action=call.archive_action, cti_initiated=call.cti_initiated,
            agent_initiated=call.agent_initiated,
        )


def _call_status(call: LiveCall) -> CallStatus:
    return CallStatus(
        instance=call.instance, meta=dict(call.meta), start_time=call.start_time,
        stop_time=call.stop_time, recording=call.recording, filename=call.filename,
        record_id=call.record_id, decision=call.decision,
    )


def _device_status(state: DeviceState) -> DeviceStatus:
    # The manual: "the one that is active or was most recently active", so an open call
    # outranks a later call that has already ended.
    shown = next(reversed(state.active.values()), None) or state.last
    current = _call_status(shown) if shown is not None else None
    return DeviceStatus(
        device_id=state.device_id, channel=state.channel, current=current,
        open_calls=tuple(_call_status(c) for c in state.active.values()),
    )


__all__ = ["CallStatus", "ChannelInfo", "DeviceStatus", "Scheduler"]
