"""The live device table: every device the recorder knows, its calls, and how to find it.

A device is known because a channel taps it or because a call was reported on it. Lookups by
DEVICEALIAS, SYS_USER, CRM_USER, STATIONNAME or CALLID go through the calls reported on each
device, as the manual says: those parameters "can be used only if a device ID has already been
associated" with them. Not thread-safe on its own: the scheduler guards it with its lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from recorder.blackout import Blackouts
from recorder.calls import DeviceQuery
from recorder.decision import Decision
from recorder.session import RecordingSession


@dataclass(eq=False)
class Recording:
    """One file of a call: its main recording, or a partial one (RECORDSTART)."""

    session: RecordingSession
    partial: bool = False
    meta: dict[str, str] = field(default_factory=dict)  # a partial's own metadata
    record_id: int | None = None
    max_record_time: int = 0  # seconds; 0: no limit
    max_record_silence: int = 0  # seconds; 0: off
    ending: bool = False  # being (or already) ended
    stop_reason: str = ""

    @property
    def filename(self) -> str:
        return str(self.session.path)

    @property
    def active(self) -> bool:
        return not self.ending and not self.session.closed


@dataclass(eq=False)
class LiveCall:
    """One call instance on a device, from CALLSTART until CALLSTOP."""

    device_id: str
    instance: str
    meta: dict[str, str]
    start_time: float
    priority: int | None = None
    max_record_time: int | None = None
    max_record_silence: int | None = None
    keep_days: int | None = None
    archive_action: int | None = None
    cti_initiated: str = ""
    agent_initiated: str = ""
    stop_time: float | None = None
    decision: Decision | None = None
    channel: int | None = None
    global_id: str = ""  # GLOBALCALLID: unique across restarts and cores
    agent_id: str = ""  # AGENTID of the agent whose phone the device is ("" unknown)
    main: Recording | None = None
    partials: list[Recording] = field(default_factory=list)  # RECORDSTART, oldest first
    stop_reason: str = ""  # why the main recording ended, once it has
    blackouts: Blackouts = field(default_factory=Blackouts)
    # Held while the call's recordings are being started or ended, so a CALLSTOP that arrives
    # while the file is still being created waits for it instead of missing it.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def session(self) -> RecordingSession | None:
        return self.main.session if self.main is not None else None

    @property
    def record_id(self) -> int | None:
        return self.main.record_id if self.main is not None else None

    @property
    def filename(self) -> str:
        return self.main.filename if self.main is not None else ""

    @property
    def ending(self) -> bool:
        """Its main recording is being (or has been) ended."""
        return self.main is not None and self.main.ending

    @property
    def recording(self) -> bool:
        return self.main is not None and not self.main.session.closed

    @property
    def paused(self) -> bool:
        """A blackout is running: the recording goes on, as silence."""
        return self.blackouts.active

    def recordings(self) -> list[Recording]:
        return ([self.main] if self.main is not None else []) + list(self.partials)


@dataclass(eq=False)
class DeviceState:
    """A device: the channel tapping it (if any), its open calls, and its most recent call."""

    device_id: str
    channel: int | None
    active: dict[str, LiveCall] = field(default_factory=dict)  # by CALLINSTANCE, oldest first
    last: LiveCall | None = None  # the most recently active call, open or not

    def find(self, instance: str | None) -> LiveCall | None:
        """The open call ``instance``; without one, the device's last call that is open.

        A blank CALLINSTANCE names the blank instance if there is one, and otherwise counts as
        not given: clients send the manual's whole field list with the fields they do not use
        left empty.
        """
        if instance is not None and (instance or instance in self.active):
            return self.active.get(instance)
        if self.last is not None and self.last.stop_time is None:
            return self.last
        return next(reversed(self.active.values()), None)


class DeviceTable:
    """Devices by DEVICEID, and lookups by the other names a request may use."""

    def __init__(self) -> None:
        self._devices: dict[str, DeviceState] = {}

    def add(self, device_id: str, channel: int | None) -> DeviceState:
        state = self._devices.get(device_id)
        if state is None:
            state = self._devices[device_id] = DeviceState(device_id, channel)
        return state

    def get(self, device_id: str) -> DeviceState | None:
        return self._devices.get(device_id)

    def all(self) -> list[DeviceState]:
        return list(self._devices.values())

    def resolve(self, query: DeviceQuery) -> str | None:
        """The DEVICEID a query names: DEVICEID itself, else the device whose calls match."""
        if query.device_id:
            return query.device_id
        wanted = [(name, value) for name, value in (
            ("DEVICEALIAS", query.alias), ("SYS_USER", query.sys_user),
            ("CRM_USER", query.crm_user), ("STATIONNAME", query.station),
            ("CALLID", query.call_id),
        ) if value]
        if not wanted:
            return None
        best: tuple[bool, float] | None = None
        found: str | None = None
        for state in self._devices.values():
            for call in (*state.active.values(), state.last):
                if call is None or any(call.meta.get(k) != v for k, v in wanted):
                    continue
                # An open call outranks a finished one; then the most recent wins.
                rank = (call.stop_time is None, call.start_time)
                if best is None or rank > best:
                    best, found = rank, state.device_id
        return found
