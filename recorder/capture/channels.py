"""A channel's state as the manual's STATE list has it, and when it last changed.

Three parties tell a channel's status: the driver (the device failed or is being reset), the
line (off-hook or on-hook, from a board that can see it) and the scheduler (a recording is
being prepared, is running, or is being finished). The state shown is derived from all three,
most important first, and its change time moves only when the derived state changes.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


class ChannelState(enum.IntEnum):
    """The manual's STATE values."""

    ON_HOOK = 0
    OFF_HOOK = 1
    RECORDING = 2
    PLAYBACK = 3
    WAITING = 4
    ERROR = 5
    RESETTING = 6
    RECORDING_PREP = 7
    FINISH_RECORDING = 8
    DIALING_FOR_PLAYBACK = 9


# How CHANNELS spells each state. The manual's example answers "Idle" and "PreparingToRecord";
# the rest follow the same style (docs/api-notes.md).
STATE_NAMES: dict[ChannelState, str] = {
    ChannelState.ON_HOOK: "Idle",
    ChannelState.OFF_HOOK: "OffHook",
    ChannelState.RECORDING: "Recording",
    ChannelState.PLAYBACK: "Playback",
    ChannelState.WAITING: "Waiting",
    ChannelState.ERROR: "Error",
    ChannelState.RESETTING: "Resetting",
    ChannelState.RECORDING_PREP: "PreparingToRecord",
    ChannelState.FINISH_RECORDING: "FinishingRecording",
    ChannelState.DIALING_FOR_PLAYBACK: "DialingForPlayback",
}


class Phase(enum.Enum):
    """Where one recording on the channel is."""

    PREPARING = "preparing"
    RECORDING = "recording"
    FINISHING = "finishing"


@dataclass(frozen=True)
class StateSnapshot:
    state: ChannelState
    since: float  # wall-clock time of the last change
    detail: str  # why the device is in ERROR or RESETTING, else ""


class ChannelStatus:
    """Thread-safe: drivers, triggers and the scheduler update it from their own threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._fault: ChannelState | None = None  # ERROR or RESETTING
        self._detail = ""
        self._off_hook = False
        self._phases: dict[Phase, int] = dict.fromkeys(Phase, 0)
        self._state = ChannelState.ON_HOOK
        self._since = clock()

    def snapshot(self) -> StateSnapshot:
        with self._lock:
            return StateSnapshot(self._state, self._since, self._detail)

    @property
    def off_hook(self) -> bool:
        return self._off_hook

    def set_fault(self, fault: ChannelState | None, detail: str = "") -> None:
        if fault not in (None, ChannelState.ERROR, ChannelState.RESETTING):
            raise ValueError(f"{fault} is not a device fault")
        with self._lock:
            self._fault, self._detail = fault, detail if fault is not None else ""
            self._refresh()

    def set_hook(self, off_hook: bool) -> None:
        with self._lock:
            self._off_hook = off_hook
            self._refresh()

    def enter(self, phase: Phase) -> None:
        with self._lock:
            self._phases[phase] += 1
            self._refresh()

    def leave(self, phase: Phase) -> None:
        with self._lock:
            self._phases[phase] = max(0, self._phases[phase] - 1)
            self._refresh()

    def move(self, old: Phase, new: Phase) -> None:
        """One recording goes from ``old`` to ``new`` (one change, not two)."""
        with self._lock:
            self._phases[old] = max(0, self._phases[old] - 1)
            self._phases[new] += 1
            self._refresh()

    def _refresh(self) -> None:
        state = derive_state(self._fault, self._phases, self._off_hook)
        if state != self._state:
            self._state, self._since = state, self._clock()


def derive_state(fault: ChannelState | None, phases: dict[Phase, int],
                 off_hook: bool) -> ChannelState:
    """The one state to show: a device fault, else the busiest recording phase, else the line."""
    if fault is not None:
        return fault
    if phases[Phase.RECORDING]:
        return ChannelState.RECORDING
    if phases[Phase.PREPARING]:
        return ChannelState.RECORDING_PREP
    if phases[Phase.FINISHING]:
        return ChannelState.FINISH_RECORDING
    return ChannelState.OFF_HOOK if off_hook else ChannelState.ON_HOOK
