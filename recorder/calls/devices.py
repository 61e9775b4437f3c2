"""The live device table: every device the recorder knows, its calls, and how to find it.

A device is known because a channel taps it or because a call was reported on it. Lookups by
DEVICEALIAS, SYS_USER, CRM_USER, STATIONNAME or CALLID go through the calls reported on each
device, as the manual says: those parameters "can be used only if a device ID has already been
associated" with them. Not thread-safe on its own: the scheduler guards it with its lock.

The table is bounded: a CTI naming a new DEVICEID in every CALLSTART must not grow it without
end. Devices a channel taps stay for good, and so does a device while it has an open call or a
recording still open; the others (all that is left of them is their last, finished call) are
forgotten least recently used first once there are more than ``max_tracked`` of them. What a
forgotten device's requests then see is in docs/call-model.md ("Devices the recorder tracks").
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from recorder.calls.model import LiveCall
from recorder.calls.requests import DeviceQuery

# recording.max_tracked_devices' default: far more phones than one recorder's CTI feed serves,
# and a few megabytes of finished calls at most.
DEFAULT_MAX_TRACKED_DEVICES = 10_000


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
            found = self.active.get(instance)
            if found is None and instance:
                # A CTI's CALLINSTANCE attached to a SIPREC session's call.
                found = next((c for c in self.active.values() if instance in c.aliases), None)
            return found
        if self.last is not None and self.last.stop_time is None:
            return self.last
        return next(reversed(self.active.values()), None)

    @property
    def busy(self) -> bool:
        """It has an open call, or its last call still has a file open (a recording finishing
        inside the commit delay): forgetting it now would lose what a request may still ask."""
        if self.active:
            return True
        last = self.last
        return last is not None and any(not r.session.closed for r in last.recordings())


@dataclass(frozen=True)
class TableSize:
    """How big the device table is (/status and /metrics show it)."""

    tapped: int  # devices a channel taps: never forgotten
    tracked: int  # the others: named by calls, forgotten beyond ``max_tracked``
    max_tracked: int
    evicted: int  # devices forgotten since start


class DeviceTable:
    """Devices by DEVICEID, and lookups by the other names a request may use.

    Devices added with a channel are kept for good. Devices added without one (named only by
    calls) are kept in least-recently-used order; adding one beyond ``max_tracked`` forgets the
    least recently used that is not ``busy``. ``add`` and ``get`` count as a use.
    """

    def __init__(self, max_tracked: int = DEFAULT_MAX_TRACKED_DEVICES) -> None:
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be at least 1, not {max_tracked}")
        self.max_tracked = max_tracked
        # Every device, in the order it was first seen (DEVICELIST's order).
        self._devices: dict[str, DeviceState] = {}
        # The untapped ones by DEVICEID, least recently used first.
        self._lru: OrderedDict[str, None] = OrderedDict()
        self._tapped = 0
        self.evicted = 0

    def add(self, device_id: str, channel: int | None) -> DeviceState:
        """The device ``device_id``, added if new (pinned for good when a channel taps it)."""
        state = self._devices.get(device_id)
        if state is not None:
            self._touch(device_id)
            return state
        if channel is None:
            # Room is made before the new device goes in: it has no call yet (the caller
            # attaches one next), so it would otherwise look like the first to forget.
            self._make_room()
            self._lru[device_id] = None
        else:
            self._tapped += 1
        state = self._devices[device_id] = DeviceState(device_id, channel)
        return state

    def get(self, device_id: str) -> DeviceState | None:
        state = self._devices.get(device_id)
        if state is not None:
            self._touch(device_id)
        return state

    def size(self) -> TableSize:
        """The table's size: plain reads of counts, so callers need not hold the lock."""
        return TableSize(tapped=self._tapped, tracked=len(self._lru),
                         max_tracked=self.max_tracked, evicted=self.evicted)

    def __len__(self) -> int:
        return len(self._devices)

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def _touch(self, device_id: str) -> None:
        if device_id in self._lru:
            self._lru.move_to_end(device_id)

    def _make_room(self) -> None:
        """Forget untapped devices, least recently used first, until one more fits.

        A busy device met on the way moves to the young end (it is in use), so the next call
        does not walk past it again; the walk visits each device at most once, so a table full
        of busy devices (more open calls than ``max_tracked``) grows instead of spinning.
        """
        for _ in range(len(self._lru)):
            if len(self._lru) < self.max_tracked:
                return
            device_id = next(iter(self._lru))
            if self._devices[device_id].busy:
                self._lru.move_to_end(device_id)
                continue
            del self._lru[device_id]
            del self._devices[device_id]
            self.evicted += 1

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
