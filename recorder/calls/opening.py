"""Opening and closing a call's recordings: the file, its row and journal entry
(``RecordingFiles``), and the RECORDINGSTARTED/STOPPED events that say so. The scheduler
decides when; this does it, under the call's lock the scheduler holds."""

from __future__ import annotations

from collections.abc import Callable

from recorder.calls.events import CallEvents
from recorder.calls.model import LiveCall, Recording
from recorder.calls.status import NORMAL_STOPS
from recorder.recording.completion import Closing
from recorder.recording.files import OpenFailed, RecordingFiles
from recorder.rules.decision import Decision
from recorder.store.records import STOP_CALL_ENDED, STOP_CALLSTOP


class RecordingOpening:
    """Begins and ends the recordings of calls (each under its call's lock)."""

    def __init__(self, files: RecordingFiles, events: CallEvents, clock: Callable[[], float],
                 core_ident: int) -> None:
        self._files = files
        self._events = events
        self._clock = clock
        self._core_ident = core_ident

    def begin(self, call: LiveCall, position: int, *, partial: bool, max_time: int,
               max_silence: int, meta: dict[str, str] | None = None,
               started: float | None = None, lost: int = 0) -> Recording | None:
        """Open a recording of ``call`` from ``position`` (under the call's lock); ``started``:
        its start time (a partial one's: now; a main one's: its call's); ``lost``: samples of
        the call lost before ``position``."""
        taps = call.taps
        meta = dict(meta if meta is not None else call.meta)
        if started is None:
            started = self._clock() if partial else call.start_time
        label = call.device_id + (" (RECORDSTART)" if partial else "")
        try:
            opened = self._files.open(taps, position, started=started,
                                      row=call.new_row(meta, started, self._core_ident),
                                      blackouts=call.blackouts, max_time=max(0, max_time),
                                      label=label, lost_before=lost)
        except OpenFailed as exc:
            if not partial:
                call.decision = Decision(False, exc.code, str(exc))
                call.open_failed = True
            self._events.publish("RECORDINGSTARTED", call, reason=exc.code.label)
            return None
        recording = Recording(file=opened, partial=partial, meta=meta,
                              max_record_time=max(0, max_time),
                              max_record_silence=max(0, max_silence))
        self._events.publish("RECORDINGSTARTED", call, recording)
        if call.blackouts.active:
            self._events.publish("RECORDINGPAUSED", call, recording)
        return recording

    def end_call(self, call: LiveCall, reason: str, end: int) -> list[Closing]:
        """The call ended: its main recording stops with ``reason``, its partials with it."""
        closings: list[Closing] = []
        for recording in call.partials:
            closings += self.end(call, recording,
                                  STOP_CALL_ENDED if reason == STOP_CALLSTOP else reason, end)
        if call.main is not None:
            closings += self.end(call, call.main, reason, end)
        return closings

    def end(self, call: LiveCall, recording: Recording, reason: str,
             end: int) -> list[Closing]:
        """End ``recording`` at ``end`` (under the call's lock); its closing, if it ran."""
        if recording.session.closed or recording.ending:
            return []
        recording.ending = True
        recording.reason = reason
        label = call.device_id + (" (RECORDSTART)" if recording.partial else "")
        return [self._files.close(
            recording.file, end, reason=reason,
            error_reason="NONE" if reason in NORMAL_STOPS else reason.upper(),
            stop_time=call.stop_time, label=label,
            stopped=self._events.event("RECORDINGSTOPPED", call, recording),
            update=self._events.event("RECORDINGUPDATE", call, recording))]


__all__ = ["RecordingOpening"]
