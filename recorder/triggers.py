"""Channel triggers: start and stop recordings from the audio or the line, not only from CTI.

- ``api``: nothing here; CTI and the API drive the channel.
- ``vox``: a recording starts once speech has lasted ``vox_start_seconds`` and stops after
  ``vox_hold_seconds`` of silence. It starts at the sample the speech began (the scheduler adds
  the pre-roll) and ends at the end of the hold time, so no syllable is clipped.
- ``line``: the board's off-hook starts a recording, on-hook (or a loop-current drop, or the end
  of the device's audio stream) stops it. Caller ID seen while the line rang becomes the ANI,
  and a call that rang before going off-hook is inbound (CALLDIRECTION I), else outbound (O).
- ``always``: every channel records all the time; a recording ended by anyone else is started
  again.

Each decision is a pure function of the channel's measurements or its line events; the loop
only applies them. A trigger produces the same CallStart and call stop the API would, with
CTIINITIATED and AGENTINITIATED both N, so the scheduler sees one kind of call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from recorder.calls import STOP_TRIGGER, CallStart, DeviceQuery
from recorder.capture import CaptureCore, Channel, StampedEvent
from recorder.devices import LiveCall
from recorder.drivers import LineEventKind
from recorder.errors import ResultError
from recorder.scheduler import Scheduler

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.02


# --- decisions (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class VoxParams:
    start_frames: int  # speech this long starts a recording
    hold_frames: int  # silence this long stops it


@dataclass(frozen=True)
class Action:
    kind: str  # "start" or "stop"
    position: int  # the sample the call starts or ends at
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Activity:
    """A channel's level meter: measured up to ``measured``; the current run began at ..."""

    measured: int
    silent: bool
    speech_since: int
    silence_since: int


def vox_step(active: bool, now: Activity, params: VoxParams, armed_from: int = 0) -> Action | None:
    """What a vox channel does now.

    ``armed_from``: only speech that began at or after this position starts a recording (after
    someone else stopped the last one, the speech it was stopped in does not restart it).
    """
    if (not active and not now.silent and now.speech_since >= armed_from
            and now.measured - now.speech_since >= params.start_frames):
        return Action("start", now.speech_since)
    if active and now.silent and now.measured - now.silence_since >= params.hold_frames:
        return Action("stop", now.silence_since + params.hold_frames)
    return None


@dataclass(frozen=True)
class LineState:
    in_call: bool = False
    rang_at: int | None = None  # position of the last ring (or caller ID) not yet answered
    caller: dict[str, str] = field(default_factory=dict)  # caller ID fields as delivered


LINE_ENDS = frozenset({LineEventKind.ON_HOOK, LineEventKind.LOOP_DROP,
                       LineEventKind.END_OF_STREAM})
# Rings come every 6 s or so (4 s pause on most exchanges): an off-hook longer than this after
# the last ring is a new (outbound) call, not the answer to a call that rang out unanswered.
RING_MEMORY_SECONDS = 10.0


def line_step(state: LineState, event: StampedEvent,
              ring_memory_frames: int = round(RING_MEMORY_SECONDS * 8000),
              ) -> tuple[LineState, Action | None]:
    """What a line-triggered channel does on one line event."""
    kind = event.event.kind
    if kind is LineEventKind.RING:
        return replace(state, rang_at=event.position), None
    if kind is LineEventKind.CALLER_ID:
        return replace(state, rang_at=event.position,
                       caller={**state.caller, **event.event.data}), None
    if kind is LineEventKind.OFF_HOOK and not state.in_call:
        rang = (state.rang_at is not None
                and event.position - state.rang_at <= ring_memory_frames)
        meta = {"CALLDIRECTION": "I" if rang else "O"}
        number = state.caller.get("NMBR", "").strip() if rang else ""
        if number:
            meta["ANI"] = number
        return LineState(in_call=True), Action("start", event.position, meta)
    if kind in LINE_ENDS:
        return LineState(), Action("stop", event.position) if state.in_call else None
    return state, None


# --- the loop ------------------------------------------------------------------------------------


def combine(parts: Sequence[Activity]) -> Activity:
    """The activity of a device tapped in both directions: speech if either side speaks."""
    if len(parts) == 1:
        return parts[0]
    speaking = [p for p in parts if not p.silent]
    measured = min(p.measured for p in parts)
    if speaking:
        return Activity(measured, False, min(p.speech_since for p in speaking), 0)
    return Activity(measured, True, 0, max(p.silence_since for p in parts))


@dataclass(eq=False)
class _Tracked:
    """One device's trigger: its first channel's, over all the channels tapping it."""

    taps: tuple[Channel, ...]
    call: LiveCall | None = None
    line: LineState = field(default_factory=LineState)
    armed_from: int = 0  # vox: speech before this does not start a recording

    @property
    def channel(self) -> Channel:
        return self.taps[0]

    @property
    def active(self) -> bool:
        return self.call is not None and self.call.stop_time is None and not self.call.ending

    def check_ended_elsewhere(self) -> None:
        """Notice a call the API (or a shutdown) ended, and re-arm from where it was."""
        if self.call is not None and not self.active:
            self.armed_from = self.channel.position
            self.call = None


class TriggerLoop:
    """Applies every channel's trigger every TICK_SECONDS, on its own thread."""

    def __init__(self, capture: CaptureCore, scheduler: Scheduler,
                 vox: Sequence[VoxParams | None] | None = None) -> None:
        self._capture = capture
        self._scheduler = scheduler
        # Keyed by the id of every channel tapping the device, so a line event of either
        # direction reaches the device's one trigger.
        self._tracked: dict[int, _Tracked] = {}
        self._devices: list[_Tracked] = []
        for channel in capture.channels:
            taps = capture.channels_for_device(channel.device_id)
            if channel is taps[0] and channel.trigger != "api":
                tracked = _Tracked(taps)
                self._devices.append(tracked)
                self._tracked.update((tap.id, tracked) for tap in taps)
        # Vox parameters per channel id; only for vox channels.
        self._vox: dict[int, VoxParams] = {}
        for channel, params in zip(capture.channels, vox or [], strict=False):
            if channel.trigger == "vox" and params is not None:
                self._vox[channel.id] = params
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="triggers", daemon=True)

    def start(self) -> None:
        counts: dict[str, int] = {}
        for tracked in self._devices:
            counts[tracked.channel.trigger] = counts.get(tracked.channel.trigger, 0) + 1
        if counts:
            logger.info("triggers: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick()
            except Exception:
                logger.exception("triggers: one pass failed")

    def tick(self) -> None:
        """One pass: line events first (they are exact), then voice activity, then always."""
        for event in self._capture.events():
            tracked = self._tracked.get(event.channel)
            if tracked is None or tracked.channel.trigger != "line":
                continue
            if not tracked.active:
                tracked.line = replace(tracked.line, in_call=False)
            memory = round(RING_MEMORY_SECONDS * tracked.channel.sample_rate)
            tracked.line, action = line_step(tracked.line, event, memory)
            if action is not None:
                self._apply(tracked, action)
        if self._vox:
            self._capture.measure()  # up to the newest window, not the monitor's last pass
            for board in self._capture.boards:
                devices = [t for t in self._devices
                           if t.channel.board is board and t.channel.id in self._vox]
                if not devices:
                    continue
                measured, silent, speech, silence = board.activity()
                for tracked in devices:
                    tracked.check_ended_elsewhere()
                    now = combine([
                        Activity(measured, bool(silent[i]), int(speech[i]), int(silence[i]))
                        for i in (tap.index for tap in tracked.taps)])
                    action = vox_step(tracked.active, now, self._vox[tracked.channel.id],
                                      tracked.armed_from)
                    if action is not None:
                        self._apply(tracked, action)
        for tracked in self._devices:
            if tracked.channel.trigger == "always" and not tracked.active:
                self._apply(tracked, Action("start", tracked.channel.position))

    def _apply(self, tracked: _Tracked, action: Action) -> None:
        channel = tracked.channel
        device = DeviceQuery(device_id=channel.device_id)
        try:
            if action.kind == "start":
                tracked.call = self._scheduler.call_start(CallStart(
                    device=device, meta=action.meta, cti_initiated="N", agent_initiated="N",
                    position=action.position, trigger=channel.trigger))
            elif tracked.active and tracked.call is not None:
                call, tracked.call = tracked.call, None
                self._scheduler.call_stop(device, call.instance,
                                          position=action.position, reason=STOP_TRIGGER)
        except ResultError as exc:
            logger.warning("channel %d (%s): %s trigger could not %s a call: %s", channel.id,
                           channel.device_id, channel.trigger, action.kind, exc)
