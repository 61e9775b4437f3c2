"""The trigger loop: starts and stops recordings from the audio or the line, not only from CTI.

- ``api``: nothing here; CTI and the API drive the channel.
- ``vox`` and ``line``: ``recorder.rules.triggers`` decides from the channel's level meters or
  its line events; this loop applies the decisions every TICK_SECONDS.
- ``always``: every channel records all the time; a recording ended by anyone else is started
  again.

The loop is also the one reader of the capture core's event queue: SIPREC sessions' events go
on to ``recorder.calls.sessions``.

A trigger produces the same CallStart and call stop the API would, with CTIINITIATED and
AGENTINITIATED both N, so the scheduler sees one kind of call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from recorder.calls.model import LiveCall
from recorder.calls.requests import CallStart, DeviceQuery
from recorder.calls.scheduler import Scheduler
from recorder.calls.sessions import SessionCalls
from recorder.capture.core import CaptureBoard, CaptureCore, Channel
from recorder.drivers.lineevents import SESSION_KINDS
from recorder.errors import ResultError
from recorder.rules.triggers import (
    RING_MEMORY_SECONDS,
    Action,
    LineState,
    VoxParams,
    combine_sides,
    line_step,
    vox_decide,
)
from recorder.store.records import STOP_TRIGGER
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

TICK_SECONDS = 0.02




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


class TriggerLoop(PeriodicWorker):
    """Applies every channel's trigger every TICK_SECONDS, on its own thread."""

    def __init__(self, capture: CaptureCore, scheduler: Scheduler,
                 vox: Sequence[VoxParams | None] | None = None,
                 sessions: SessionCalls | None = None) -> None:
        super().__init__("triggers", TICK_SECONDS)
        self._capture = capture
        self._scheduler = scheduler
        # The SIPREC sessions' events come through the same queue as the lines': this loop is
        # its one reader, and hands them on by kind.
        self._sessions = sessions
        # Keyed by the id of every channel tapping the device, so a line event of either
        # direction reaches the device's one trigger.
        self._tracked: dict[int, _Tracked] = {}
        self._devices: list[_Tracked] = []
        for channel in capture.channels:
            if channel.trigger == "api" or not channel.device_id:
                continue
            taps = capture.channels_for_device(channel.device_id)
            if channel is taps[0]:
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

    def start(self) -> None:
        counts: dict[str, int] = {}
        for tracked in self._devices:
            counts[tracked.channel.trigger] = counts.get(tracked.channel.trigger, 0) + 1
        if counts:
            logger.info("triggers: %s", ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        super().start()

    def turn(self) -> None:
        self.tick()

    def tick(self) -> None:
        """One pass: line events first (they are exact), then voice activity, then always."""
        for event in self._capture.events():
            if event.event.kind in SESSION_KINDS:
                if self._sessions is not None:
                    self._sessions.handle(event)
                continue
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
