"""The call table: every device the recorder knows and its open calls, under one short lock.

The scheduler owns it; the blackouts, the limits watch and the status views read it through
the same lock. Only table lookups and updates happen under ``lock``: never a file, the
database or a wait for another lock (docs/architecture.md gives the lock order).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

from recorder.calls.devices import DEFAULT_MAX_TRACKED_DEVICES, DeviceState, DeviceTable
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallError
from recorder.resultcodes import ResultCode
from recorder.rules.decision import ActiveRecording


def global_ids(core_ident: int) -> Iterator[str]:
    """GLOBALCALLIDs: the core's ident and a counter seeded from the clock (in 1/100 s), so
    numbers stay unique across restarts unless calls arrive faster than 100 a second for
    longer than the recorder was down."""
    seed = int(time.time() * 100) % 10**11
    for n in itertools.count(seed):
        yield f"{core_ident % 10000:04d}{n % 10**11:011d}"


class _GlobalIds:
    """``global_ids`` with a look at the next one that does not use it up (a CALLSTART tried
    on the event loop decides with it, and may hand the call to a worker, which then takes
    that same number: no number is skipped, and the decision's sampling hash is the same)."""

    def __init__(self, core_ident: int) -> None:
        self._ids = global_ids(core_ident)
        self._next: str | None = None

    def peek(self) -> str:
        if self._next is None:
            self._next = next(self._ids)
        return self._next

    def take(self) -> str:
        found = self.peek()
        self._next = None
        return found


class CallTable:
    """Devices, their open calls, and the agents whose blackout is running.

    Methods without a lock of their own are called with ``lock`` held.
    """

    def __init__(self, core_ident: int,
                 max_tracked_devices: int = DEFAULT_MAX_TRACKED_DEVICES) -> None:
        self.lock = threading.Lock()
        self.devices = DeviceTable(max_tracked_devices)
        # AGENTBLACKOUTSTART: the devices whose agent's blackout is running (new calls on
        # them start blacked out until AGENTBLACKOUTSTOP).
        self.agent_blackouts: set[str] = set()
        self._global_ids = _GlobalIds(core_ident)

    def next_global_id(self) -> str:
        return self._global_ids.take()

    def peek_global_id(self) -> str:
        """The GLOBALCALLID ``next_global_id`` gives next (under ``lock``)."""
        return self._global_ids.peek()

    def find_call(self, device_id: str, instance: str | None) -> LiveCall:
        """The open call ``instance`` of the device (its newest open call without one)."""
        state = self.devices.get(device_id)
        call = state.find(instance) if state else None
        if call is None:
            which = f"call instance {instance!r}" if instance else "a call"
            raise CallError(ResultCode.API_DEVICE_NOT_IN_CALL,
                            f"device {device_id} is not in {which}")
        return call

    def open_calls(self, devices: list[str] | None = None) -> list[LiveCall]:
        """Every open call, or those of ``devices``."""
        states: list[DeviceState | None] = (
            list(self.devices.all()) if devices is None
            else [self.devices.get(d) for d in devices])
        return [c for s in states if s is not None for c in s.active.values()]

    def find_by_global_id(self, global_id: str) -> LiveCall | None:
        return next((c for c in self.open_calls() if c.global_id == global_id), None)

    def active_recordings(self) -> list[ActiveRecording]:
        """Main recordings in progress: what counts against the concurrent-recordings limit."""
        return [ActiveRecording(c.global_id, c.priority if c.priority is not None else 0,
                                c.start_time)
                for c in self.open_calls() if c.main is not None and c.main.active]

    def snapshot(self) -> list[LiveCall]:
        """Every open call, taking the lock for the read (for the loops that scan them)."""
        with self.lock:
            return self.open_calls()
