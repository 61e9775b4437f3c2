"""What the event interface says about calls and recordings, in the manual's words.

The core publishes an ``Event`` at each step of a call (CALLSTART, RECORDINGSTARTED, ...) to an
``EventSink``; the sink (recorder.events.bus) fans it out to subscribers without ever blocking the
publisher. The fields of each event type, and their order, are those of the manual's examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

CALL = "CALL"
RECORD = "RECORD"
CHAT = "CHAT"
EVENT_CLASSES: frozenset[str] = frozenset({CALL, RECORD, CHAT})

_USERS: tuple[str, ...] = tuple(f"USER{i}" for i in range(1, 16))

# EVENTDATA field order per event type, as in the manual's examples (with the fields an example
# left out by a page break restored where the other examples show them).
FIELDS: dict[str, tuple[str, ...]] = {
    "CALLSTART": (
        "GLOBALCALLID", "DEVICEID", "DEVICEALIAS", "SYS_USER", "CRM_USER", "GATE", "ANI", "DNIS",
        "AGENTID", *_USERS, "GROUP", "CALLINSTANCE", "CALLDIRECTION", "STATION", "ISTRUNK",
        "KEEPDAYS", "ARCHIVEACTION", "STARTTIME", "COREIDENT"),
    "CALLSTOP": (
        "DEVICEALIAS", "SYS_USER", "CRM_USER", "GATE", "ANI", "DNIS", "AGENTID", *_USERS[:10],
        "CALLINSTANCE", *_USERS[10:], "GROUP", "KEEPDAYS", "ARCHIVEACTION", "GLOBALCALLID",
        "DEVICEID", "COREIDENT"),
    "RECORDINGSTARTED": (
        "DEVICEID", "FILENAME", "CHANNEL", "ERRORREASON", "GLOBALCALLID", "DEVICEALIAS", "GATE",
        "ANI", "DNIS", "AGENTID", *_USERS[:13], "CALLINSTANCE", *_USERS[13:], "GROUP",
        "KEEPDAYS", "ARCHIVEACTION", "COREIDENT"),
    "RECORDINGSTOPPED": (
        "GLOBALCALLID", "DEVICEID", "DEVICEALIAS", "GATE", "ANI", "DNIS", "AGENTID",
        *_USERS[:5], "KEEPDAYS", "RECORDID", "COREIDENT"),
    "RECORDINGUPDATE": (
        "GLOBALCALLID", "DEVICEID", "KEEPDAYS", "FILENAME", "RECORDID", "COREIDENT"),
}
FIELDS["RECORDINGPAUSED"] = FIELDS["RECORDINGRESUMED"] = FIELDS["RECORDINGSTARTED"]
# Fields the recorder sends beyond the manual's example, always after all of the manual's (one
# rule for every event: a client reading by position finds the manual's fields where the manual
# shows them). docs/events.md lists them.
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "RECORDINGSTOPPED": (*_USERS[5:], "CALLINSTANCE", "GROUP", "FILENAME", "CHANNEL",
                         "ERRORREASON", "ARCHIVEACTION"),
}
for _type, _extra in EXTRA_FIELDS.items():
    FIELDS[_type] += _extra

# MODULE as the manual's examples give it: the call events and the start, pause and resume of a
# recording come from the API module; a recording's stop and its database update name none.
QUIET_MODULE: frozenset[str] = frozenset({"RECORDINGSTOPPED", "RECORDINGUPDATE"})

CLASS_OF: dict[str, str] = {
    "CALLSTART": CALL, "CALLSTOP": CALL, "RECORDINGSTARTED": RECORD,
    "RECORDINGSTOPPED": RECORD, "RECORDINGUPDATE": RECORD, "RECORDINGPAUSED": RECORD,
    "RECORDINGRESUMED": RECORD,
}


@dataclass(frozen=True)
class Event:
    """One ``<CALLCOPYEVENT>``: its class and type, and EVENTDATA's fields in order."""

    event_class: str  # CALL, RECORD (or CHAT for screen sessions)
    event_type: str
    data: tuple[tuple[str, str], ...]
    module: str = "Api"
    xref: int = 0

    @property
    def device_id(self) -> str:
        """The device the event is about (what EVENTVALUE filters on)."""
        return next((value for name, value in self.data if name == "DEVICEID"), "")

    def get(self, name: str) -> str:
        return next((value for name_, value in self.data if name_ == name), "")

    def with_values(self, **values: str) -> Event:
        """The same event with the named fields' values replaced (fields keep their order)."""
        return replace(self, data=tuple((name, values.get(name, value))
                                        for name, value in self.data))


def make_event(event_type: str, values: Mapping[str, str], *,
               fields: Sequence[str] | None = None, module: str | None = None) -> Event:
    """The event ``event_type`` with the manual's fields, taken from ``values`` ("" if absent).

    ``module`` defaults to what the manual's example of that event type shows.
    """
    names = FIELDS[event_type] if fields is None else tuple(fields)
    if module is None:
        module = "" if event_type in QUIET_MODULE else "Api"
    return Event(CLASS_OF.get(event_type, CALL), event_type,
                 tuple((name, values.get(name, "")) for name in names), module)


class EventSink(Protocol):
    """Where the core publishes events; ``publish`` never blocks and never raises."""

    def publish(self, event: Event) -> None: ...


class NoEvents:
    """A sink for components used without the event interface (tools, some tests)."""

    def publish(self, event: Event) -> None:
        pass


class CollectedEvents:
    """A sink that keeps every event in order: for tests and the selftest."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def types(self, device_id: str | None = None) -> list[str]:
        return [e.event_type for e in self.events
                if device_id is None or e.device_id == device_id]


__all__ = ["CALL", "CHAT", "CLASS_OF", "EVENT_CLASSES", "FIELDS", "RECORD", "CollectedEvents",
           "Event", "EventSink", "NoEvents", "make_event"]
