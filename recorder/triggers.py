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

import numpy as np
import numpy.typing as npt

from recorder.calls import STOP_TRIGGER, CallStart, DeviceQuery
from recorder.capture import CaptureBoard, CaptureCore, Channel, StampedEvent
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


Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class VoxState:
    """Every vox device of a board at once (arrays, one entry per device)."""

    measured: int
    silent: Bools
    speech_since: Ints
    silence_since: Ints


def vox_decide(active: Bools, now: VoxState, start_frames: Ints, hold_frames: Ints,
               armed_from: Ints) -> tuple[Bools, Bools]:
    """Which vox devices start a recording now, and which stop one, vectorized.

    A device starts once its speech has lasted ``start_frames`` (at the sample the speech began),
    and stops once silence has lasted ``hold_frames`` (at the end of that hold). ``armed_from``:
    only speech that began at or after it starts a recording (after someone else stopped the last
    one, the speech it was stopped in does not restart it).
    """
    start = (~active & ~now.silent & (now.speech_since >= armed_from)
             & (now.measured - now.speech_since >= start_frames))
    stop = active & now.silent & (now.measured - now.silence_since >= hold_frames)
    return start, stop


def vox_step(active: bool, now: Activity, params: VoxParams, armed_from: int = 0) -> Action | None:
    """``vox_decide`` for one channel, as an Action."""
    start, stop = vox_decide(
        np.array([active]),
        VoxState(now.measured, np.array([now.silent]), np.array([now.speech_since]),
                 np.array([now.silence_since])),
        np.array([params.start_frames]), np.array([params.hold_frames]), np.array([armed_from]))
    if start[0]:
        return Action("start", now.speech_since)
    if stop[0]:
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


class _VoxGroup:
    """The vox devices of one board, as arrays for ``vox_decide``."""

    def __init__(self, board: CaptureBoard, devices: list[_Tracked],
                 params: list[VoxParams]) -> None:
        self.board = board
        self.devices = devices
        self.first = np.array([t.taps[0].index for t in devices], dtype=np.int64)
        self.second = np.array([t.taps[-1].index for t in devices], dtype=np.int64)
        self.start_frames = np.array([p.start_frames for p in params], dtype=np.int64)
        self.hold_frames = np.array([p.hold_frames for p in params], dtype=np.int64)
        self.active = np.zeros(len(devices), dtype=bool)
        self.armed_from = np.zeros(len(devices), dtype=np.int64)


def combine_sides(measured: int, silent: Bools, speech: Ints, silence: Ints, *, first: Ints,
                  second: Ints) -> VoxState:
    """Per device, from its channels' meters: speech if either side speaks (since the earliest
    side that is speaking), silence since the later side fell silent. A device tapped once has
    ``second == first``."""
    s1, s2 = silent[first], silent[second]
    speech_since = np.where(~s1 & ~s2, np.minimum(speech[first], speech[second]),
                            np.where(~s1, speech[first], speech[second]))
    return VoxState(measured, s1 & s2, speech_since,
                    np.maximum(silence[first], silence[second]))


def combine(parts: Sequence[Activity]) -> Activity:
    """``combine_sides`` for one device of one or two channels."""
    pair = [parts[0], parts[-1]]
    both = combine_sides(min(p.measured for p in parts), np.array([p.silent for p in pair]),
                         np.array([p.speech_since for p in pair]),
                         np.array([p.silence_since for p in pair]),
                         first=np.array([0]), second=np.array([1]))
    silent = bool(both.silent[0])
    return Activity(both.measured, silent, 0 if silent else int(both.speech_since[0]),
                    int(both.silence_since[0]) if silent else 0)


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
        self._always = [t for t in self._devices if t.channel.trigger == "always"]
        # Vox devices by board, evaluated as arrays: thousands of channels cost a few numpy
        # calls a tick, and Python only touches the devices that start or stop.
        params = {c.id: p for c, p in zip(capture.channels, vox or [], strict=False)
                  if p is not None}
        self._vox_groups: list[_VoxGroup] = []
        for board in capture.boards:
            devices = [t for t in self._devices if t.channel.board is board
                       and t.channel.trigger == "vox" and params.get(t.channel.id)]
            if devices:
                self._vox_groups.append(_VoxGroup(
                    board, devices, [params[t.channel.id] for t in devices]))
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
        if self._vox_groups:
            self._capture.measure()  # up to the newest window, not the monitor's last pass
            for group in self._vox_groups:
                self._vox_tick(group)
        for tracked in self._always:
            if not tracked.active:
                self._apply(tracked, Action("start", tracked.channel.position))

    def _vox_tick(self, group: _VoxGroup) -> None:
        # Calls the API (or anyone else) ended since the last tick: re-arm those devices.
        for k in np.flatnonzero(group.active):
            tracked = group.devices[k]
            if not tracked.active:
                tracked.check_ended_elsewhere()
                group.active[k] = False
                group.armed_from[k] = tracked.armed_from
        measured, silent, speech, silence = group.board.activity()
        now = combine_sides(measured, silent, speech, silence, first=group.first,
                            second=group.second)
        start, stop = vox_decide(group.active, now, group.start_frames, group.hold_frames,
                                 group.armed_from)
        for k in np.flatnonzero(start):
            self._apply(group.devices[k], Action("start", int(now.speech_since[k])))
            group.active[k] = group.devices[k].active
        for k in np.flatnonzero(stop):
            position = int(now.silence_since[k] + group.hold_frames[k])
            self._apply(group.devices[k], Action("stop", position))
            group.active[k] = False

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
