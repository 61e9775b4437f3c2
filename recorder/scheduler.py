"""The scheduler: turns call events into recording sessions, files, rows and events.

For each CALLSTART it finds the device and the channel tapping it, asks ``decide`` whether to
record (schedules, blocked filters, priority and capacity, the free-space floor), and if so
opens the file, registers the session with the writer loop and stores the row. CALLSTOP ends
the session at the sample the stop arrived at, closes the file and completes the row. Its timer
ends recordings at their MAXRECORDTIME or after MAXRECORDSILENCE seconds of silence.
RECORDSTART/RECORDSTOP add partial recordings to a call; blackouts silence ranges of a call.

Table updates happen under one short lock; file and database work happen under the call's own
lock, so calls on different devices never wait for each other's disk. Every step is published
as the manual's events (CALLSTART, RECORDINGSTARTED, ...) to the event sink.
"""

from __future__ import annotations

import errno
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from recorder.blackout import BlackoutStateError
from recorder.callevents import call_event, stored_update_event
from recorder.calls import (
    STOP_CALL_ENDED,
    STOP_CALLSTOP,
    STOP_MAXRECORDTIME,
    STOP_PREEMPTED,
    STOP_RECORDSTOP,
    STOP_REPLACED,
    STOP_SHUTDOWN,
    STOP_TRUNCATED,
    CallError,
    CallStart,
    CallUpdate,
    DeviceQuery,
)
from recorder.capture import CaptureCore, Channel
from recorder.channels import Phase
from recorder.codecs import file_extension, open_writer
from recorder.decision import ActiveRecording, CallFacts, Decision, Policy, decide
from recorder.devices import (
    DEFAULT_MAX_TRACKED_DEVICES,
    DeviceTable,
    LiveCall,
    Recording,
    TableSize,
)
from recorder.devicestatus import (
    NORMAL_STOPS,
    ChannelInfo,
    DeviceStatus,
    device_status_of,
)
from recorder.errors import StoreError
from recorder.events import EventSink, NoEvents
from recorder.journal import Journal
from recorder.limits import Limits, Side, limit_reached
from recorder.paths import create_unique, recording_path
from recorder.resultcodes import ResultCode
from recorder.session import RecordingSession, SessionResult
from recorder.store import FinishedRecording, NewRecording, RecordingUpdate, Store, UserQuery
from recorder.writer import WriterLoop

logger = logging.getLogger(__name__)

# How often recordings are checked against their MAXRECORDTIME and MAXRECORDSILENCE. A limit
# ends the file at the exact sample it was reached, however late the check runs.
LIMIT_INTERVAL = 0.1
# After a full disk, how often the disk guard is asked whether there is room again.
ROOM_CHECK_SECONDS = 1.0

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


class SchedulerStats:
    """What the scheduler has done since it started (the metrics and /status read it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0  # recordings begun: main ones and RECORDSTART's
        self.completed = 0  # recordings whose file was closed and row completed
        self.refused = 0  # calls not recorded: refused by ``decide``, or no file could be made
        self._decisions: dict[tuple[bool, str], int] = {}

    def decided(self, decision: Decision) -> None:
        key = (decision.record, decision.reason.label)
        with self._lock:
            self._decisions[key] = self._decisions.get(key, 0) + 1

    def count(self, what: Literal["started", "completed", "refused"]) -> None:
        """One more recording ``started``, ``completed`` or ``refused``."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    @property
    def active(self) -> int:
        """Recordings begun and not completed yet (files open)."""
        return max(0, self.started - self.completed)

    def decisions(self) -> dict[tuple[bool, str], int]:
        """How often ``decide`` said (record?, the reason's RESULTTYPE)."""
        with self._lock:
            return dict(self._decisions)


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


def _global_ids(core_ident: int) -> Iterator[str]:
    """GLOBALCALLIDs: the core's ident and a counter seeded from the clock (in 1/100 s), so
    numbers stay unique across restarts unless calls arrive faster than 100 a second for
    longer than the recorder was down."""
    seed = int(time.time() * 100) % 10**11
    for n in itertools.count(seed):
        yield f"{core_ident % 10000:04d}{n % 10**11:011d}"


class AgentCache:
    """Device -> (AGENTID, user name) of the agent whose phone it is, as last read.

    ``clear`` empties it and also keeps out any answer read before it was called: a lookup
    that read the database while a directory change was being made must not leave the old
    answer behind it. At most ``limit`` devices are kept (it starts afresh when full).
    """

    def __init__(self, limit: int) -> None:
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._agents: dict[str, tuple[str, str]] = {}
        self._generation = 0  # how many times it was cleared

    def get(self, device_id: str,
            read: Callable[[str], tuple[str, str] | None]) -> tuple[str, str]:
        """The kept answer for ``device_id``, else ``read(device_id)`` (kept unless None)."""
        with self._lock:
            found = self._agents.get(device_id)
            generation = self._generation
        if found is not None:
            return found
        answer = read(device_id)
        if answer is None:
            return "", ""
        with self._lock:
            if generation == self._generation:
                if len(self._agents) >= self._limit:
                    self._agents.clear()
                self._agents[device_id] = answer
        return answer

    def clear(self) -> None:
        with self._lock:
            self._agents.clear()
            self._generation += 1


class Scheduler:
    """Owns the live call model and every recording in progress."""

    def __init__(self, *, capture: CaptureCore, store: Store, writer: WriterLoop,
                 recordings_dir: Path, core_ident: int,
                 preroll_seconds: float = 0.0, commit_delay_seconds: float = 0.0,
                 stereo: bool = True, stored: StoredFormat | None = None,
                 after_call: AfterCall | None = None, policy: Policy | None = None,
                 events: EventSink | None = None,
                 disk_ok: Callable[[], bool] | None = None,
                 disk_full: Callable[[Path, float], None] | None = None,
                 journal: Journal | None = None,
                 max_tracked_devices: int = DEFAULT_MAX_TRACKED_DEVICES,
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
        self._policy = policy or Policy()
        self._events: EventSink = events or NoEvents()
        self._disk_ok = disk_ok or (lambda: True)
        # A file was cut short by a full disk: (its path, its bytes a second) to the disk guard.
        self._disk_full = disk_full or (lambda path, rate: None)
        # Calls still up whose recording a full disk cut, by GLOBALCALLID: each gets a new
        # recording once there is room (_resume_after_disk_full). The next look, monotonic.
        # Own lock: taken under a call's lock, which must never wait for the scheduler's.
        self._cut_lock = threading.Lock()
        self._cut_calls: dict[str, LiveCall] = {}
        self._disk_full_seen = False
        self._next_room_check = 0.0
        self._journal = journal
        self._lock = threading.Lock()
        self._devices = DeviceTable(max_tracked_devices)
        for channel in capture.channels:
            self._devices.add(channel.device_id, channel.id)
        self._global_ids = _global_ids(core_ident)
        # AGENTBLACKOUTSTART: device -> the agent's blackout is running on it (new calls on
        # the device start blacked out until AGENTBLACKOUTSTOP).
        self._agent_blackouts: set[str] = set()
        self._agents = AgentCache(max_tracked_devices)
        self._running = True
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._run_timer, name="scheduler-limits",
                                       daemon=True)
        self.stats = SchedulerStats()
        # time.monotonic() of the limits timer's last turn: it takes the scheduler's lock, so
        # a heartbeat that stops moving means the lock (and every call start) is stuck.
        self.heartbeat = time.monotonic()

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the timer that enforces MAXRECORDTIME and MAXRECORDSILENCE."""
        self.heartbeat = time.monotonic()
        self._timer.start()

    @property
    def timer_alive(self) -> bool:
        """The limits timer's thread is running."""
        return self._timer.is_alive()

    def stop(self) -> None:
        """Refuse new calls and finish every recording in progress (file closed, row complete)."""
        self._stop.set()
        if self._timer.ident is not None:
            self._timer.join(5.0)
        with self._lock:
            self._running = False
            calls = [call for dev in self._devices.all() for call in dev.active.values()]
            for dev in self._devices.all():
                dev.active.clear()
        now = self._clock()
        for call in calls:
            call.stop_time = now
            # The recorder stops following the call: subscribers hear so, as for a CALLSTOP.
            self._publish("CALLSTOP", call)
            with call.lock:
                self._end_call_recordings(call, STOP_SHUTDOWN, self._position(call))
        if calls:
            logger.info("scheduler: %d call(s) ended by shutdown", len(calls))

    def set_policy(self, policy: Policy) -> None:
        """New schedules, filters and limits (a reload); calls in progress keep theirs."""
        with self._lock:
            self._policy = policy
        logger.info("scheduler: recording policy replaced")

    # --- call events -------------------------------------------------------------------------

    def call_start(self, start: CallStart) -> LiveCall:
        """A call began: track it and record it if ``decide`` says so."""
        disk_ok = self._disk_ok()  # outside the lock: it may look at the disk
        with self._lock:
            self._check_running()
            device_id = self._resolve(start.device)
        agent_id, agent_name = self._agent_of(device_id)
        with self._lock:
            self._check_running()
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
                global_id=next(self._global_ids), agent_id=agent_id,
            )
            decision = decide(self._facts(call, start, agent_name), self._policy,
                              self._active_recordings(), disk_ok=disk_ok)
            self.stats.decided(decision)
            call.decision = decision
            call.priority = decision.priority
            call.keep_days = decision.keep_days
            call.archive_action = decision.archive_action
            preempted = self._find_by_global_id(decision.preempt) if decision.preempt else None
            if device_id in self._agent_blackouts:
                call.blackouts.start(position)
            call.lock.acquire()  # released once the recording has begun (or failed to)
            device.active[start.instance] = call
            device.last = call
        try:
            self._publish("CALLSTART", call)
            if replaced is not None:
                replaced.stop_time = call.start_time
                with replaced.lock:
                    self._end_call_recordings(replaced, STOP_REPLACED, position)
                self._publish("CALLSTOP", replaced)
            if preempted is not None and preempted.main is not None:
                logger.info("recording of %s (priority %s) preempted by %s (priority %d)",
                            preempted.device_id, preempted.priority, device_id,
                            decision.priority)
                with preempted.lock:
                    self._end_recording(preempted, preempted.main, STOP_PREEMPTED,
                                        self._position(preempted))
            if decision.record and channel is not None:
                call.main = self._begin_recording(
                    call, position, partial=False, max_time=decision.max_record_time,
                    max_silence=decision.max_record_silence)
            else:
                logger.info("call on %s (instance %r) not recorded: %s (%s)", device_id,
                            call.instance, decision.reason.label, decision.detail)
                self._publish("RECORDINGSTARTED", call, reason=decision.reason.label)
            if call.main is None:
                self.stats.count("refused")
        finally:
            call.lock.release()
        return call

    def call_stop(self, device: DeviceQuery, instance: str | None,
                  position: int | None = None, reason: str = STOP_CALLSTOP) -> LiveCall:
        """A call ended: stop its recordings at ``position``, else where the stop arrived."""
        with self._lock:
            self._check_running()
            call = self._find_call(device, instance)
            del self._devices.get(call.device_id).active[call.instance]  # type: ignore[union-attr]
            call.stop_time = self._clock()
            end = self._position(call)
            if position is not None:
                end = min(end, position)
        self._publish("CALLSTOP", call)
        with call.lock:
            self._end_call_recordings(call, reason, end)
        return call

    def record_start(self, start: CallStart) -> Recording:
        """RECORDSTART: an additional, partial recording of a call in progress (own file, row)."""
        with self._lock:
            self._check_running()
            call = self._find_call(start.device, start.instance)
            channel = self._capture.channel_for_device(call.device_id)
        if channel is None:
            raise CallError(ResultCode.API_DEVICE_INVALID,
                            f"device {call.device_id} is not tapped by any channel")
        if not self._disk_ok():
            raise CallError(ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                            "free space is below storage's floor; nothing new is recorded")
        policy = self._policy
        with call.lock:
            meta = {**call.meta, **start.meta}
            recording = self._begin_recording(
                call, channel.position, partial=True, meta=meta,
                max_time=start.max_record_time or policy.max_record_time,
                max_silence=start.max_record_silence or policy.max_record_silence)
            if recording is None:
                raise CallError(ResultCode.API_ERROR_NO_DEFAULT_RECORDING_PATH,
                                f"cannot create a file for {call.device_id}; see the log")
            call.partials.append(recording)
        return recording

    def record_stop(self, device: DeviceQuery, instance: str | None,
                    meta: Mapping[str, str] | None = None) -> Recording:
        """RECORDSTOP: end the call's newest partial recording still running."""
        with self._lock:
            self._check_running()
            call = self._find_call(device, instance)
            end = self._position(call)
        with call.lock:
            running = [r for r in call.partials if r.active]
            if not running:
                raise CallError(ResultCode.API_DEVICE_NOT_RECORDING,
                                f"device {call.device_id} has no RECORDSTART recording running")
            recording = running[-1]
            if meta:
                recording.meta.update(meta)
            self._end_recording(call, recording, STOP_RECORDSTOP, end)
        return recording

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
                for recording in call.recordings():
                    recording.meta.update(update.meta)
                    if recording.record_id is not None:
                        self._update_row(recording.record_id, update)
                        self._publish("RECORDINGUPDATE", call, recording)
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
        self.update_recording(record_id, update)
        return "recording"

    def update_recording(self, record_id: int, update: CallUpdate) -> None:
        """Update a stored recording by RECORDID (CALLUPDATE post-recording)."""
        with self._lock:
            live = next(((c, r) for d in self._devices.all() for c in d.active.values()
                         for r in c.recordings() if r.record_id == record_id), None)
        if live is not None:
            # Keep the live call in step, or its stop would not know the new metadata.
            with live[0].lock:
                live[1].meta.update(update.meta)
                if not live[1].partial:
                    live[0].meta.update(update.meta)
        if not self._update_row(record_id, update):
            raise CallError(ResultCode.API_RECORDID_INVALID, f"no recording {record_id}")
        self._publish_stored_update(record_id)

    # --- blackouts ---------------------------------------------------------------------------

    def blackout_start(self, device: DeviceQuery, instance: str | None,
                       offset_seconds: int = 0) -> LiveCall:
        """BLACKOUTSTART: silence the call from now plus ``offset_seconds`` (may be negative)."""
        return self._blackout(device, instance, offset_seconds, self._start_blackout)

    def blackout_stop(self, device: DeviceQuery, instance: str | None,
                      offset_seconds: int = 0) -> LiveCall:
        """BLACKOUTSTOP: the silence ends at now plus ``offset_seconds``, never before its start."""
        return self._blackout(device, instance, offset_seconds, self._stop_blackout)

    def _blackout(self, device: DeviceQuery, instance: str | None, offset_seconds: int,
                  change: Callable[[LiveCall, int], None]) -> LiveCall:
        with self._lock:
            call = self._find_call(device, instance)
            position = self._offset_position(call, offset_seconds)
        with call.lock:
            change(call, position)
        return call

    def agent_blackout_start(self, devices: list[str], offset_seconds: int = 0) -> None:
        """AGENTBLACKOUTSTART: every call of the agent's ``devices`` is silenced, including
        calls that start before AGENTBLACKOUTSTOP."""
        with self._lock:
            if any(d in self._agent_blackouts for d in devices):
                raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                                "an agent blackout is already running on "
                                + ", ".join(d for d in devices if d in self._agent_blackouts))
            self._agent_blackouts.update(devices)
            calls = [(c, self._offset_position(c, offset_seconds))
                     for c in self._open_calls(devices)]
        for call, position in calls:
            with call.lock:
                if not call.blackouts.active:
                    self._start_blackout(call, position)

    def agent_blackout_stop(self, devices: list[str], offset_seconds: int = 0) -> None:
        with self._lock:
            if not any(d in self._agent_blackouts for d in devices):
                raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                                "no agent blackout is running for that agent")
            self._agent_blackouts.difference_update(devices)
            calls = [(c, self._offset_position(c, offset_seconds))
                     for c in self._open_calls(devices)]
        for call, position in calls:
            with call.lock:
                if call.blackouts.active:
                    self._stop_blackout(call, position)

    def agent_devices(self, sys_user: str | None, crm_user: str | None) -> list[str]:
        """The devices an agent named by SYS_USER or CRM_USER is on: their phones in the
        directory, and devices whose calls carry the name."""
        found: list[str] = []
        if sys_user or crm_user:
            try:
                users = self._store.find_users(UserQuery(sys_user=sys_user or None,
                                                         crm_user=crm_user or None))
            except StoreError as exc:
                raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
            found += [phone for user in users for phone in user.phones]
        with self._lock:
            device_id = self._devices.resolve(DeviceQuery(sys_user=sys_user, crm_user=crm_user))
        if device_id is not None and device_id not in found:
            found.append(device_id)
        return found

    def _start_blackout(self, call: LiveCall, position: int) -> None:
        try:
            call.blackouts.start(position)
        except BlackoutStateError as exc:
            raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                            f"device {call.device_id}: {exc}") from exc
        self._blackout_changed(call)
        logger.info("blackout on %s (instance %r) from sample %d", call.device_id,
                    call.instance, position)
        for recording in call.recordings():
            if recording.active:
                self._publish("RECORDINGPAUSED", call, recording)

    def _stop_blackout(self, call: LiveCall, position: int) -> None:
        try:
            start, end = call.blackouts.stop(position)
        except BlackoutStateError as exc:
            raise CallError(ResultCode.API_BLACKOUT_INVALID_STATE,
                            f"device {call.device_id}: {exc}") from exc
        self._blackout_changed(call)
        logger.info("blackout on %s (instance %r): samples %d-%d", call.device_id,
                    call.instance, start, end)
        for recording in call.recordings():
            if recording.active:
                self._publish("RECORDINGRESUMED", call, recording)

    def _blackout_changed(self, call: LiveCall) -> None:
        for recording in call.recordings():
            recording.session.blackout_reached_back()

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
            return [device_status_of(s) for s in states]

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

    def device_table_size(self) -> TableSize:
        """How many devices the live table holds (tapped, and tracked from calls)."""
        # Without the lock: the counts are plain len() reads, and /status must answer while
        # the scheduler is stuck.
        return self._devices.size()

    def in_progress(self, timeout: float = -1) -> list[InProgress] | None:
        """The recordings of the calls in progress, oldest call first.

        None if the scheduler's lock could not be had within ``timeout`` seconds (-1: wait),
        so a diagnostic asking during a hang answers instead of hanging with it.
        """
        if not self._lock.acquire(timeout=timeout):
            return None
        try:
            calls = [c for d in self._devices.all() for c in d.active.values()]
        finally:
            self._lock.release()
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

    # --- limits ------------------------------------------------------------------------------

    def _run_timer(self) -> None:
        while not self._stop.wait(LIMIT_INTERVAL):
            try:
                self.enforce_limits()
            except Exception:
                logger.exception("scheduler: checking recording limits failed")
            try:
                self._end_truncated()
                self._resume_after_disk_full()
            except Exception:
                logger.exception("scheduler: handling the full disk failed")
            self.heartbeat = time.monotonic()

    def enforce_limits(self) -> None:
        """End every recording that has reached its MAXRECORDTIME or MAXRECORDSILENCE."""
        with self._lock:
            calls = [c for d in self._devices.all() for c in d.active.values()]
        activity: dict[int, Any] = {}
        for call in calls:
            for recording in call.recordings():
                if not recording.active:
                    continue
                ended = self._limit_reached(call, recording, activity)
                if ended is not None:
                    reason, end = ended
                    with call.lock:
                        self._end_recording(call, recording, reason, end)

    def _limit_reached(self, call: LiveCall, recording: Recording,
                       activity: dict[int, Any]) -> tuple[str, int] | None:
        session = recording.session
        channel = session.channel
        sides: list[Side] = []
        if recording.max_record_silence > 0:
            for tap in session.channels:
                board = tap.board
                if id(board) not in activity:  # one consistent reading per board and check
                    activity[id(board)] = board.activity()
                analyzed, silent, _, silence_since = activity[id(board)]
                sides.append(Side(bool(silent[tap.index]), int(silence_since[tap.index]),
                                  int(analyzed)))
        ended = limit_reached(session.start, channel.position, channel.sample_rate,
                              Limits(recording.max_record_time, recording.max_record_silence),
                              sides)
        if ended is not None:
            seconds = (recording.max_record_time if ended[0] == STOP_MAXRECORDTIME
                       else recording.max_record_silence)
            logger.info("%s: %s of %d s reached", call.device_id, ended[0].upper(), seconds)
        return ended

    # --- internals ---------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise CallError(ResultCode.API_ERROR_SCHEDULER_NOT_RUNNING,
                            "the recorder is shutting down")

    def _find_call(self, device: DeviceQuery, instance: str | None) -> LiveCall:
        """The open call a request names (under the lock)."""
        device_id = self._resolve(device)
        state = self._devices.get(device_id)
        call = state.find(instance) if state else None
        if call is None:
            which = f"call instance {instance!r}" if instance else "a call"
            raise CallError(ResultCode.API_DEVICE_NOT_IN_CALL,
                            f"device {device_id} is not in {which}")
        return call

    def _find_by_global_id(self, global_id: str) -> LiveCall | None:
        return next((c for d in self._devices.all() for c in d.active.values()
                     if c.global_id == global_id), None)

    def _open_calls(self, devices: list[str]) -> list[LiveCall]:
        states = [self._devices.get(d) for d in devices]
        return [c for s in states if s is not None for c in s.active.values()]

    def _active_recordings(self) -> list[ActiveRecording]:
        """Main recordings in progress: what counts against the concurrent-recordings limit."""
        return [ActiveRecording(c.global_id, c.priority if c.priority is not None else 0,
                                c.start_time)
                for d in self._devices.all() for c in d.active.values()
                if c.main is not None and c.main.active]

    def _facts(self, call: LiveCall, start: CallStart, agent_name: str) -> CallFacts:
        return CallFacts(
            device_id=call.device_id, channel_id=call.channel, meta=dict(call.meta),
            agent=agent_name, at=datetime.fromtimestamp(call.start_time),
            call_key=call.global_id, priority=start.priority,
            max_record_time=start.max_record_time, max_record_silence=start.max_record_silence,
            keep_days=start.keep_days, archive_action=start.archive_action)

    def _agent_of(self, device_id: str) -> tuple[str, str]:
        """(AGENTID, user name) of the agent whose phone the device is; ("", "") if none.

        Kept in memory between directory changes (``directory_changed``), so a CALLSTART does
        not read the database (and wait for its lock behind the recordings' commits).
        """
        return self._agents.get(device_id, self._read_agent_of)

    def _read_agent_of(self, device_id: str) -> tuple[str, str] | None:
        """The database's answer for ``_agent_of``; None (not kept) when it cannot be read."""
        try:
            users = self._store.find_users(UserQuery(phone_id=device_id))
        except StoreError:
            logger.exception("cannot look up the agent of %s; recording without", device_id)
            return None
        if not users:
            return "", ""
        return str(users[0].user_id), users[0].username

    def directory_changed(self) -> None:
        """Users or their phones may have changed (IMPORTUSER, IMPORTAGENTPHONE): the next
        CALLSTART on any device looks its agent up again."""
        self._agents.clear()

    def _resolve(self, query: DeviceQuery) -> str:
        if not query:
            raise CallError(ResultCode.API_DEVICE_INVALID, "one of DEVICEID, DEVICEALIAS, "
                            "SYS_USER, CRM_USER or STATIONNAME is required")
        device_id = self._devices.resolve(query)
        if device_id is None and query.station:
            device_id = self._station_device(query.station)
        if device_id is None and (query.sys_user or query.crm_user):
            device_id = self._agent_phone(query.sys_user, query.crm_user)
        if device_id is None:
            raise CallError(ResultCode.API_DEVICE_INVALID,
                            "Could not find a device matching given parameters")
        return device_id

    def _agent_phone(self, sys_user: str | None, crm_user: str | None) -> str | None:
        """The phone (IMPORTAGENTPHONE) of the one agent with that SYS_USER or CRM_USER."""
        try:
            users = self._store.find_users(UserQuery(sys_user=sys_user or None,
                                                     crm_user=crm_user or None))
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
        phones = [phone for user in users for phone in user.phones]
        return phones[0] if phones else None

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

    def _offset_position(self, call: LiveCall, offset_seconds: int) -> int:
        channel = self._capture.channel_for_device(call.device_id)
        if channel is None:
            return 0
        return max(0, channel.position + offset_seconds * channel.sample_rate)

    def _position(self, call: LiveCall) -> int:
        # From the channel, not the session: a CALLSTOP can arrive while the session is still
        # being created, and must still end the recording at the sample it arrived at.
        channel = self._capture.channel_for_device(call.device_id)
        return channel.position if channel is not None else 0

    def _begin_recording(self, call: LiveCall, position: int, *, partial: bool,
                         max_time: int, max_silence: int,
                         meta: dict[str, str] | None = None) -> Recording | None:
        taps = self._capture.channels_for_device(call.device_id)
        for tap in taps:
            tap.status.enter(Phase.PREPARING)
        try:
            recording = self._open_recording(call, taps, position, partial=partial, meta=meta,
                                             max_time=max(0, max_time))
        finally:
            for tap in taps:
                tap.status.leave(Phase.PREPARING)
        if recording is None:
            return None
        for tap in taps:
            tap.status.enter(Phase.RECORDING)
        recording.max_record_time = max(0, max_time)
        recording.max_record_silence = max(0, max_silence)
        self._publish("RECORDINGSTARTED", call, recording)
        if call.blackouts.active:
            self._publish("RECORDINGPAUSED", call, recording)
        return recording

    def _open_recording(self, call: LiveCall, taps: tuple[Channel, ...], position: int, *,
                        partial: bool, meta: dict[str, str] | None,
                        max_time: int) -> Recording | None:
        channel = taps[0]
        sides = 2 if len(taps) == 2 and self._stereo else 1
        started = datetime.fromtimestamp(self._clock() if partial else call.start_time)
        wanted = recording_path(self._recordings_dir, call.device_id, started,
                                file_extension(self._stored.recorded_as))
        fmt = self._stored.recorded_as
        options = {} if self._stored.after_call else dict(self._stored.options)
        try:
            path, file = create_unique(wanted)
            try:
                writer = open_writer(fmt, file, channel.sample_rate, sides, **options)
            except Exception:
                file.close()
                path.unlink(missing_ok=True)  # nothing of the call is in it yet
                raise
        except Exception as exc:
            # The writer's header write wraps its OSError in a CodecError.
            cause = exc if isinstance(exc, OSError) else exc.__cause__
            no_space = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC,
                                                                      errno.EDQUOT)
            if no_space:
                self._disk_full(wanted, 0.0)  # refuse the next ones until there is room
            reason = (ResultCode.API_ERROR_OUT_OF_DISK_SPACE if no_space
                      else ResultCode.API_ERROR_NO_DEFAULT_RECORDING_PATH)
            if not partial:
                call.decision = Decision(False, reason, f"cannot create {wanted}: {exc}")
            logger.exception("call on %s not recorded: cannot create %s", call.device_id, wanted)
            self._publish("RECORDINGSTARTED", call, reason=reason.label)
            return None
        delay = round(self._commit_delay_seconds * channel.sample_rate)
        session = RecordingSession(taps, writer, path, position, delay,
                                   blackouts=call.blackouts, fmt=fmt, options=options,
                                   written=self._writer.bytes_written)
        if max_time:
            session.stop_at = position + max_time * channel.sample_rate
        recording = Recording(session=session, partial=partial, meta=dict(meta or call.meta))
        row = self._new_row(call, recording, channel)
        try:
            recording.record_id = self._store.insert_recording(row)
        except StoreError:
            # The audio matters more than the row: keep recording; the row is written when the
            # call stops (or, after a crash, from the journal).
            logger.exception("call on %s: recording to %s without a row for now",
                             call.device_id, path)
        # In the journal, on disk, before the first sample and before the request that
        # started it is answered: a crash from here on cannot lose the recording.
        self._journal_begin(recording, row, fmt, sides, options)
        self._writer.add(session)
        self.stats.count("started")
        # At INFO although the line at its end says more: a field engineer following a long
        # call in the log must see that it is being recorded, and where.
        logger.info("recording %s%s on channel %d to %s (RECORDID %s)", call.device_id,
                    " (RECORDSTART)" if partial else "", channel.id, path, recording.record_id)
        return recording

    def _end_call_recordings(self, call: LiveCall, reason: str, end: int) -> None:
        """The call ended: its main recording stops with ``reason``, its partials with it."""
        for recording in call.partials:
            self._end_recording(call, recording, STOP_CALL_ENDED
                                if reason == STOP_CALLSTOP else reason, end)
        if call.main is not None:
            self._end_recording(call, call.main, reason, end)

    def _end_recording(self, call: LiveCall, recording: Recording, reason: str,
                       end: int) -> None:
        session = recording.session
        if session.closed or recording.ending:
            return
        recording.ending = True
        recording.stop_reason = reason
        if recording is call.main:
            call.stop_reason = reason
        statuses = [tap.status for tap in session.channels]
        if session.ready_to_finish(end):
            self._writer.discard(session)
            for status in statuses:
                status.leave(Phase.RECORDING)
            self._complete(call, recording, reason, session.finish(end))
            return
        # The last audio is still inside the commit delay: the writer closes the file once it
        # has passed, and completes the row then.
        for status in statuses:
            status.move(Phase.RECORDING, Phase.FINISHING)

        def done(result: SessionResult) -> None:
            for status in statuses:
                status.leave(Phase.FINISHING)
            with call.lock:
                self._complete(call, recording, reason, result)

        self._writer.finish_later(session, end, done)

    def _complete(self, call: LiveCall, recording: Recording, reason: str,
                  result: SessionResult) -> None:
        session = recording.session
        reason = self._truncated_reason(call, recording, reason)
        stop_time = call.stop_time if call.stop_time is not None else self._clock()
        done = FinishedRecording(
            stop_time=stop_time, duration=result.duration, audio_size=result.size,
            audio_hash=result.sha256, stop_reason=reason, lost_samples=result.lost_samples,
        )
        stopped_reason = "NONE" if reason in NORMAL_STOPS else reason.upper()
        saved = False
        try:
            if recording.record_id is None:
                recording.record_id = self._store.insert_recording(
                    self._new_row(call, recording, session.channel))
            self._store.finish_recording(recording.record_id, done)
            saved = True
            self._journal_end(recording)
        except StoreError:
            # Start-up completes the row from the file and transcodes it then.
            logger.exception("recording %s is complete but its row could not be written",
                             result.path)
        self.stats.count("completed")
        self._publish("RECORDINGSTOPPED", call, recording, reason=stopped_reason)
        if saved:
            self._publish("RECORDINGUPDATE", call, recording)
            if self._after_call is not None and not session.failed:
                self._after_call.submit(result.path)
        logger.info("recorded %s%s on channel %d to %s: %.2f s, %d bytes, %s (RECORDID %s)",
                    call.device_id, " (RECORDSTART)" if recording.partial else "",
                    session.channel.id, result.path, result.duration, result.size, reason,
                    recording.record_id)

    def _journal_begin(self, recording: Recording, row: NewRecording, fmt: str, sides: int,
                       options: dict[str, Any]) -> None:
        if self._journal is None:
            return
        session = recording.session
        try:
            recording.journal_key = self._journal.begin(
                path=session.path, fmt=fmt, sample_rate=session.channel.sample_rate,
                channels=sides, row=row, record_id=recording.record_id, options=options)
        except OSError:
            # Recording it matters more than the promise of recovering it after a crash.
            logger.exception("%s: not in the crash journal; recording anyway", session.path)

    def _journal_end(self, recording: Recording) -> None:
        if self._journal is None or recording.journal_key is None:
            return
        try:
            self._journal.end(recording.journal_key)
        except OSError:
            # Harmless: the next start finds the row complete and leaves it.
            logger.exception("%s: cannot end its crash journal entry", recording.session.path)
        recording.journal_key = None

    def _update_row(self, record_id: int, update: CallUpdate) -> bool:
        try:
            return self._store.update_recording(record_id, RecordingUpdate(
                meta=update.meta, keep_days=update.keep_days,
                archive_action=update.archive_action))
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc

    def _new_row(self, call: LiveCall, recording: Recording, channel: Channel) -> NewRecording:
        return NewRecording(
            device_id=call.device_id, call_instance=call.instance, channel=channel.id,
            filename=recording.filename, media_format=self._stored.format,
            sample_rate=channel.sample_rate,
            start_time=call.start_time if not recording.partial else self._clock(),
            core_ident=self._core_ident, meta=dict(recording.meta),
            priority=call.priority, keep_days=call.keep_days,
            archive_action=call.archive_action, cti_initiated=call.cti_initiated,
            agent_initiated=call.agent_initiated, global_id=call.global_id,
        )

    # --- a full disk ------------------------------------------------------------------------

    def _end_truncated(self) -> None:
        """End every recording a full disk stopped writing (on the limits timer's thread)."""
        with self._lock:
            calls = [c for d in self._devices.all() for c in d.active.values()]
        for call in calls:
            for recording in call.recordings():
                if recording.active and recording.session.out_of_space:
                    with call.lock:
                        self._note_disk_full(call, recording)
                        self._end_recording(call, recording, STOP_TRUNCATED,
                                            self._position(call))

    def _note_disk_full(self, call: LiveCall, recording: Recording) -> None:
        """The disk guard refuses new recordings; the call, while up, waits for room."""
        session = recording.session
        self._disk_full(session.path, session.bytes_per_second)
        with self._cut_lock:
            self._disk_full_seen = True
            if call.stop_time is None:
                self._cut_calls[call.global_id] = call

    def _truncated_reason(self, call: LiveCall, recording: Recording, reason: str) -> str:
        """``truncated`` for a file a full disk cut short, whatever ended it (a CALLSTOP whose
        last write found the disk full included); else ``reason``."""
        if not recording.session.out_of_space:
            return reason
        if reason != STOP_TRUNCATED:
            self._note_disk_full(call, recording)
        recording.stop_reason = STOP_TRUNCATED
        if recording is call.main:
            call.stop_reason = STOP_TRUNCATED
        return STOP_TRUNCATED

    def _resume_after_disk_full(self) -> None:
        """Once a second after a full disk: when the disk guard has room again, every call
        still up that lost its recording to it gets a new one (as RECORDSTART would)."""
        now = time.monotonic()
        with self._cut_lock:
            if not self._disk_full_seen or now < self._next_room_check:
                return
            self._next_room_check = now + ROOM_CHECK_SECONDS
        if not self._disk_ok():
            return
        with self._cut_lock:
            self._disk_full_seen = False
            waiting = list(self._cut_calls.values())
            self._cut_calls.clear()
        with self._lock:
            up = {id(c) for d in self._devices.all() for c in d.active.values()}
        for call in waiting:
            if id(call) in up:
                with call.lock:
                    self._continue_recording(call)

    def _continue_recording(self, call: LiveCall) -> None:
        """A new partial recording of ``call`` from now, with its metadata and its limits."""
        channel = self._capture.channel_for_device(call.device_id)
        if call.stop_time is not None or channel is None or any(
                r.active for r in call.recordings()):
            return
        cut = call.main if call.main is not None else call.partials[-1]
        max_time = cut.max_record_time
        if max_time:
            # MAXRECORDTIME bounds the call's recording, not each file of it.
            elapsed = (channel.position - cut.session.start) // channel.sample_rate
            max_time -= int(elapsed)
            if max_time <= 0:
                return
        recording = self._begin_recording(call, channel.position, partial=True,
                                          meta=dict(call.meta), max_time=max_time,
                                          max_silence=cut.max_record_silence)
        if recording is not None:
            call.partials.append(recording)
            logger.info("%s: recording continues after the full disk in %s (RECORDID %s)",
                        call.device_id, recording.filename, recording.record_id)
        else:
            # The file could not be made (the disk filled again before it, most likely): try
            # again at the next look for room, or the rest of the call would never be
            # recorded. Only while the call is up, once a second.
            with self._cut_lock:
                self._disk_full_seen = True
                self._cut_calls[call.global_id] = call

    # --- events ------------------------------------------------------------------------------

    def _publish(self, event_type: str, call: LiveCall, recording: Recording | None = None,
                 reason: str = "NONE") -> None:
        try:
            self._events.publish(call_event(event_type, call, self._core_ident, recording,
                                            reason))
        except Exception:
            logger.exception("publishing %s for %s failed", event_type, call.device_id)

    def _publish_stored_update(self, record_id: int) -> None:
        """RECORDINGUPDATE for a stored recording changed by CALLUPDATE."""
        try:
            row = self._store.get_recording(record_id)
            if row is not None:
                self._events.publish(stored_update_event(row))
        except StoreError as exc:
            # The database is away: the update waits in the spool, the row cannot be read.
            logger.warning("RECORDINGUPDATE for %d not published: %s", record_id, exc)
        except Exception:
            logger.exception("RECORDINGUPDATE for %d could not be published", record_id)


__all__ = ["AgentCache", "InProgress", "Scheduler", "SchedulerStats", "StoredFormat"]
