"""The scheduler: keeps the call table and turns call events into recordings.

For each CALLSTART it finds the device and the channel tapping it, asks ``decide`` whether to
record (schedules, blocked filters, priority and capacity, the free-space floor), and if so
opens the recording (``recorder.recording.files``). CALLSTOP ends the recording at the sample
the stop arrived at; the completion worker then completes its row and publishes how it ended.
RECORDSTART/RECORDSTOP add partial recordings to a call. Around it: ``lookup`` (which device a
request means), ``blackouts``, ``status`` (status snapshots) and ``watch`` (the limits).

Locks, in the order they may be taken (docs/architecture.md): the table's lock (short: lookups
and updates of the table only), then a call's lock (held while its recordings start or end, so
calls on different devices never wait for each other's disk), then a session's lock and the
writer's. Nobody waits for the completion worker while holding the table's lock; the worker
takes none of these locks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from recorder.calllog import call_log
from recorder.calls.adoption import adopt, early_cti_call
from recorder.calls.blackouts import BlackoutControl
from recorder.calls.events import CallEvents
from recorder.calls.lookup import DeviceLookup
from recorder.calls.model import LiveCall, Recording, refused_for_disk
from recorder.calls.opening import RecordingOpening
from recorder.calls.requests import CallError, CallStart, CallUpdate, DeviceQuery, WouldBlock
from recorder.calls.status import StatusViews
from recorder.calls.table import CallTable
from recorder.calls.updates import CallUpdates
from recorder.capture.core import CaptureCore, Channel
from recorder.events.types import EventSink, NoEvents
from recorder.recording.completion import Closing
from recorder.recording.files import RecordingFiles, wait_completed
from recorder.resultcodes import ResultCode
from recorder.rules.decision import CallFacts, Decision, Policy, decide
from recorder.store.factory import Store
from recorder.store.records import (
    STOP_CALLSTOP,
    STOP_PREEMPTED,
    STOP_RECORDSTOP,
    STOP_REPLACED,
    STOP_SHUTDOWN,
)

logger = logging.getLogger(__name__)


class Scheduler:
    """Owns the call table and every recording in progress."""

    def __init__(self, *, capture: CaptureCore, store: Store, files: RecordingFiles,
                 core_ident: int, preroll_seconds: float = 0.0, policy: Policy | None = None,
                 events: EventSink | None = None, disk_ok: Callable[[], bool] | None = None,
                 max_tracked_devices: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._capture = capture
        self._store = store
        self._files = files
        self._core_ident = core_ident
        self._clock = clock
        self._preroll_seconds = preroll_seconds
        self._policy = policy or Policy()
        self._disk_ok = disk_ok or (lambda: True)
        self.table = (CallTable(core_ident) if max_tracked_devices is None
                      else CallTable(core_ident, max_tracked_devices))
        for channel in capture.channels:
            if channel.device_id:  # not a channel bound to calls as they come (SIPREC)
                self.table.devices.add(channel.device_id, channel.id)
        self.events = CallEvents(events or NoEvents(), core_ident)
        self._opening = RecordingOpening(files, self.events, clock, core_ident)
        self.lookup = DeviceLookup(self.table, store.directory)
        self.blackouts = BlackoutControl(self.table, self.lookup, capture, self.events,
                                         noted=files.note_blackouts)
        self.status = StatusViews(self.table, self.lookup, capture, clock)
        self.updates = CallUpdates(self.table, self.lookup, store.recordings, self.events)
        self.stats = files.stats
        self._running = True

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Refuse new calls and finish every recording in progress (file closed, row complete)."""
        with self.table.lock:
            self._running = False
            calls = self.table.open_calls()
            for dev in self.table.devices.all():
                dev.active.clear()
            # One moment ends every call, its stop time and its audio alike: capture goes on
            # while thousands of calls are ended one by one, and none of that is theirs.
            now, ends = self._clock(), [(call, self._position(call)) for call in calls]
        closings: list[Closing] = []
        for call, end in ends:
            call.stop_time = now
            # The recorder stops following the call: subscribers hear so, as for a CALLSTOP.
            self.events.publish("CALLSTOP", call)
            with call.lock:
                closings += self._opening.end_call(call, STOP_SHUTDOWN, end)
        wait_completed(closings)
        if calls:
            logger.info("scheduler: %d call(s) ended by shutdown", len(calls))

    def set_policy(self, policy: Policy) -> None:
        """New schedules, filters and limits (a reload); calls in progress keep theirs."""
        with self.table.lock:
            self._policy = policy
        logger.info("scheduler: recording policy replaced")

    # --- call events -------------------------------------------------------------------------

    def call_start(self, start: CallStart, *, inline: bool = False) -> LiveCall:
        """A call began: track it and record it if ``decide`` says so. A SIPREC session's call
        adopts the device's CTI call that began first, if any (``adoption``).

        ``inline`` (the API's event loop): only a call that waits for nothing is started, one
        that is not recorded and replaces, preempts and attaches to no other; anything else
        raises WouldBlock having changed nothing, to be started again on a worker.
        """
        if inline and start.siprec:
            raise WouldBlock
        # Outside the lock: it may look at the disk (a statvfs, at most once per its cache's
        # interval, which inline accepts: it is what the disk guard's floor costs).
        disk_ok = self._disk_ok()
        self._check_running()
        device_id = self.lookup.resolve(start.device, inline=inline)
        if not start.siprec:
            attached = self._attach(device_id, start, inline=inline)
            if attached is not None:
                return attached
        agent_id, agent_name = self.lookup.agent_of(device_id, inline=inline)
        taps = self._taps(start, device_id)
        channel = taps[0] if taps else None
        with self.table.lock:
            self._check_running()
            # The recording begins at the sample the call began at (the CALLSTART's arrival,
            # or the trigger's own sample), however long the file and the row then take.
            position = self._start_position(start, channel)
            tapped = channel.id if channel is not None and not start.channels else None
            device = self.table.devices.add(device_id, tapped)
            if inline and start.instance in device.active:
                raise WouldBlock  # it replaces a call, whose recordings end
            if start.channels and channel is not None:
                device.channel = channel.id  # while its session lasts (end_call)
            early = early_cti_call(device) if start.siprec and channel is not None else None
            replaced = None if early else device.active.pop(start.instance, None)
            call = early or LiveCall(
                device_id=device_id, instance=start.instance, meta=dict(start.meta),
                start_time=self._clock(), priority=start.priority,
                max_record_time=start.max_record_time,
                max_record_silence=start.max_record_silence, keep_days=start.keep_days,
                archive_action=start.archive_action, cti_initiated=start.cti_initiated,
                agent_initiated=start.agent_initiated,
                channel=channel.id if channel else None, taps=taps, siprec=start.siprec,
                global_id=start.global_id or self.table.peek_global_id(), agent_id=agent_id,
            )
            facts = (adopt(call, start, taps, position) if early else
                     CallFacts.of(start, device_id, call.channel, agent=agent_name,
                                  at=datetime.fromtimestamp(call.start_time),
                                  call_key=call.global_id))
            decision = decide(facts, self._policy, self.table.active_recordings(),
                              disk_ok=disk_ok)
            if inline and ((decision.record and channel is not None) or decision.preempt):
                raise WouldBlock  # its file, row and journal entry are made on a worker
            if not early and not start.global_id:
                self.table.next_global_id()  # the one peeked at above, taken now
            if not early:  # the statistics count calls, at their start
                self.stats.decided(decision.record, decision.reason.label)
            call.facts = facts
            call.start_position = position
            self._apply(call, decision)
            preempted = (self.table.find_by_global_id(decision.preempt) if decision.preempt
                         else None)
            if device_id in self.table.agent_blackouts and not call.blackouts.active:
                call.blackouts.start(position)
            if not early:  # (an early call's lock is taken already)
                call.lock.acquire()  # released once the recording has begun (or failed to)
                device.active[start.instance] = call
            device.last = call
        try:
            if early:
                logger.info("SIPREC session %s of %s adopts its CTI call %r", start.siprec,
                            device_id, call.instance)
            else:
                self.events.publish("CALLSTART", call)
            if replaced is not None:
                replaced.stop_time = call.start_time
                with replaced.lock:
                    wait_completed(self._opening.end_call(replaced, STOP_REPLACED, position))
                self.events.publish("CALLSTOP", replaced)
            if preempted is not None and preempted.main is not None:
                logger.info("recording of %s (priority %s) preempted by %s (priority %d)",
                            preempted.device_id, preempted.priority, device_id,
                            decision.priority)
                with preempted.lock:
                    wait_completed(self._opening.end(preempted, preempted.main, STOP_PREEMPTED,
                                                     self._position(preempted)))
            if decision.record and channel is not None:
                call.main = self._opening.begin(call, position, partial=False,
                                                max_time=decision.max_record_time,
                                                max_silence=decision.max_record_silence,
                                                started=self._clock() if early else None)
            else:
                call_log.info("call on %s (instance %r) not recorded: %s (%s)", device_id,
                              call.instance, decision.reason.label, decision.detail)
                self.events.publish("RECORDINGSTARTED", call, reason=decision.reason.label)
            if call.main is None and not early:
                self.stats.count("refused")
        finally:
            call.lock.release()
        return call

    def call_stop(self, device: DeviceQuery, instance: str | None,
                  position: int | None = None, reason: str = STOP_CALLSTOP, *,
                  inline: bool = False) -> LiveCall:
        """A call ended: stop its recordings at ``position``, else where the stop arrived.

        ``inline`` (the API's event loop): only a call with no recording running is stopped
        (nothing to close, complete or wait for), and only if its lock is free; else
        WouldBlock, having changed nothing.
        """
        self._check_running()
        device_id = self.lookup.resolve(device, inline=inline)
        with self.table.lock:
            self._check_running()
            call = self.table.find_call(device_id, instance)
            if inline:
                if call.siprec or not call.lock.acquire(blocking=False):
                    raise WouldBlock
                if any(not (r.session.closed or r.ending) for r in call.recordings()):
                    call.lock.release()
                    raise WouldBlock
                # Its lock is held from here, so nothing starts a recording of it before it
                # is ended (a RECORDSTART that found it waits for the lock, then sees it
                # stopped, as after any CALLSTOP).
                try:
                    self._close_entry(call)
                except BaseException:
                    call.lock.release()
                    raise
            elif call.siprec:
                # A SIPREC session's call: the CTI's CALLSTOP is heard, its BYE ends it.
                if instance:
                    call.aliases.discard(instance)
                logger.info("CALLSTOP for %s: its SIPREC session %s goes on until its BYE",
                            device_id, call.siprec)
                return call
            else:
                self._close_entry(call)
            end = self._position(call)
            if position is not None:
                end = min(end, position)
        if inline:
            try:
                self.events.publish("CALLSTOP", call)
            finally:
                call.lock.release()
            return call
        self._stop_call(call, reason, end)
        return call

    def end_call(self, call: LiveCall, position: int, reason: str = STOP_CALLSTOP) -> None:
        """End ``call`` itself at ``position`` (its SIPREC session is over); nothing if it has
        ended already (a shutdown, or a CALLSTART that replaced it)."""
        with self.table.lock:
            state = self.table.devices.get(call.device_id)
            if state is None or state.active.get(call.instance) is not call:
                return
            self._close_entry(call)
            end = min(self._position(call), position)
        self._stop_call(call, reason, end)

    def _close_entry(self, call: LiveCall) -> None:
        """Take the call off its device (under the table's lock)."""
        state = self.table.devices.get(call.device_id)
        assert state is not None
        del state.active[call.instance]
        call.stop_time = self._clock()
        if call.siprec and state.channel == call.channel:
            # The device keeps the channel of a SIPREC call still up on it, if any.
            state.channel = next((c.channel for c in reversed(state.active.values())
                                  if c.siprec), None)

    def _stop_call(self, call: LiveCall, reason: str, end: int) -> None:
        self.events.publish("CALLSTOP", call)
        with call.lock:
            closings = self._opening.end_call(call, reason, end)
        wait_completed(closings)

    def _attach(self, device_id: str, start: CallStart, *,
                inline: bool = False) -> LiveCall | None:
        """A CTI CALLSTART for a device with a SIPREC call up: its fields go to that call and
        its rows (RECORDINGUPDATE), its CALLINSTANCE names that call too; None if none is up.
        ``inline``: WouldBlock if there is one (its rows are written)."""
        with self.table.lock:
            state = self.table.devices.get(device_id)
            sessions = [c for c in state.active.values() if c.siprec] if state else []
            if not sessions:
                return None
            if inline:
                raise WouldBlock
            call = next((c for c in sessions if c.instance == start.instance), sessions[-1])
            if start.instance:
                call.aliases.add(start.instance)
        logger.info("CALLSTART for %s attached to its SIPREC session %s", device_id,
                    call.siprec)
        self.updates.apply(call, CallUpdate(meta=start.meta, keep_days=start.keep_days,
                                            archive_action=start.archive_action))
        return call

    def record_start(self, start: CallStart) -> Recording:
        """RECORDSTART: an additional, partial recording of a call in progress (own file, row)."""
        call = self._open_call(start.device, start.instance)
        channel = call.taps[0] if call.taps else None
        if channel is None:
            raise CallError(ResultCode.API_DEVICE_INVALID,
                            f"device {call.device_id} is not tapped by any channel")
        if not self._disk_ok():
            raise CallError(ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                            "free space is below storage's floor; nothing new is recorded")
        policy = self._policy
        with call.lock:
            recording = self._opening.begin(
                call, channel.position, partial=True, meta={**call.meta, **start.meta},
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
        call = self._open_call(device, instance)
        end = self._position(call)
        with call.lock:
            running = [r for r in call.partials if r.active]
            if not running:
                raise CallError(ResultCode.API_DEVICE_NOT_RECORDING,
                                f"device {call.device_id} has no RECORDSTART recording running")
            recording = running[-1]
            if meta:
                recording.meta.update(meta)
            closings = self._opening.end(call, recording, STOP_RECORDSTOP, end)
        wait_completed(closings)
        return recording

    # --- for the limits watch ----------------------------------------------------------------

    def end_recording(self, call: LiveCall, recording: Recording, reason: str,
                      end: int) -> None:
        """End one recording of ``call`` at sample ``end`` (a limit, a full disk)."""
        with call.lock:
            self._opening.end(call, recording, reason, end)

    def continue_recording(self, call: LiveCall) -> None:
        """A new partial recording of ``call`` from now, with its metadata and its limits
        (after a full disk cut its recording short)."""
        with call.lock:
            channel = call.taps[0] if call.taps else None
            if call.stop_time is not None or channel is None or any(
                    r.active for r in call.recordings()):
                return
            cut = call.partials[-1] if call.partials else call.main
            assert cut is not None
            max_time = cut.max_record_time
            if max_time:
                # MAXRECORDTIME bounds the call's recording, not each file of it.
                elapsed = (channel.position - cut.session.start) // channel.sample_rate
                max_time -= int(elapsed)
                if max_time <= 0:
                    return
            # The audio between the end of the cut file and now is lost audio of the call.
            session = cut.session
            lost = channel.position - (session.start + session.writer.frames)
            recording = self._opening.begin(call, channel.position, partial=True,
                                            meta=dict(call.meta), max_time=max_time,
                                            max_silence=cut.max_record_silence, lost=lost)
            if recording is not None:
                call.partials.append(recording)
                logger.info("%s: recording continues after the full disk in %s (RECORDID %s)",
                            call.device_id, recording.filename, recording.record_id)

    def record_after_disk_full(self, call: LiveCall) -> None:
        """Record ``call`` from now as its main recording: it was refused because the disk was
        full (or below the floor), and there is room now.

        Decided again on the facts of its CALLSTART (its schedule, blocked filters, capacity
        and preemption, as at its start); the audio from its start to now is counted as lost in
        the row. Takes no call lock while holding another.
        """
        channel = call.taps[0] if call.taps else None
        if channel is None or call.facts is None:
            return
        with self.table.lock:
            if not self._running or not refused_for_disk(call):
                return
            decision = decide(call.facts, self._policy, self.table.active_recordings())
            preempted = (self.table.find_by_global_id(decision.preempt) if decision.preempt
                         else None)
        # Not counted again in the decisions' statistics: they count calls, at their start.
        if preempted is not None and preempted.main is not None:
            logger.info("recording of %s (priority %s) preempted by %s (priority %d), whose "
                        "call waited for disk space", preempted.device_id, preempted.priority,
                        call.device_id, decision.priority)
            with preempted.lock:
                wait_completed(self._opening.end(preempted, preempted.main, STOP_PREEMPTED,
                                                 self._position(preempted)))
        with call.lock:
            # A CALLSTOP sets the stop time before it takes the call's lock: seen unset here,
            # that CALLSTOP ends the recording begun now.
            if call.stop_time is not None or not refused_for_disk(call):
                return
            self._apply(call, decision)
            if not decision.record:
                logger.info("call on %s (instance %r), refused while the disk was full, still "
                            "not recorded: %s (%s)", call.device_id, call.instance,
                            decision.reason.label, decision.detail)
                self.events.publish("RECORDINGSTARTED", call, reason=decision.reason.label)
                return
            position = channel.position
            call.main = self._opening.begin(call, position, partial=False,
                                            max_time=decision.max_record_time,
                                            max_silence=decision.max_record_silence,
                                            started=self._clock(),
                                            lost=position - call.start_position)
            if call.main is not None:
                logger.info("%s: recorded from now on, its call having started while the disk "
                            "was full (%.1f s of it lost)", call.device_id,
                            (position - call.start_position) / channel.sample_rate)

    # --- recordings --------------------------------------------------------------------------

    def _apply(self, call: LiveCall, decision: Decision) -> None:
        """``decision`` and the terms it gives the call (under the table's or the call's lock)."""
        call.decision = decision
        call.priority = decision.priority
        call.keep_days = decision.keep_days
        call.archive_action = decision.archive_action

    # --- internals ---------------------------------------------------------------------------

    def _check_running(self) -> None:
        if not self._running:
            raise CallError(ResultCode.API_ERROR_SCHEDULER_NOT_RUNNING,
                            "the recorder is shutting down")

    def _open_call(self, device: DeviceQuery, instance: str | None) -> LiveCall:
        self._check_running()
        device_id = self.lookup.resolve(device)
        with self.table.lock:
            self._check_running()
            return self.table.find_call(device_id, instance)

    def _taps(self, start: CallStart, device_id: str) -> tuple[Channel, ...]:
        if not start.channels:
            return self._capture.channels_for_device(device_id)
        found = [self._capture.channel(i) for i in start.channels]
        return tuple(c for c in found if c is not None)

    def _start_position(self, start: CallStart, channel: Channel | None) -> int:
        if channel is None:
            return 0
        now = channel.position
        at = now if start.position is None else min(start.position, now)
        preroll = 0 if start.siprec else round(self._preroll_seconds * channel.sample_rate)
        # Never further back than the ring still holds, nor before the board started.
        return max(at - preroll, channel.oldest)

    def _position(self, call: LiveCall) -> int:
        # From the channel, not the session: a CALLSTOP can arrive while the session is still
        # being created, and must still end the recording at the sample it arrived at.
        return call.taps[0].position if call.taps else 0


__all__ = ["Scheduler"]
