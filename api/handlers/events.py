"""The event interface: the EVENTS request, the ``<CALLCOPYEVENT>`` documents it streams, and the
events screen sessions (CHATSTART, CHATSTOP, CHATUPDATE) publish.

The subscription itself belongs to a connection, so the transports carry it out (the socket
API after an EVENTS request, the WebAPI's request page and its Server-Sent Events at
``/events``); this module is what they share: reading EVENTCLASS and EVENTVALUE, the result,
and the XML of each event. See docs/events.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from lxml import etree

from recorder.api.context import ApiContext
from recorder.api.protocol.fields import FIELDS
from recorder.api.protocol.params import Params
from recorder.api.protocol.xmlcodec import NOT_XML
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.events.types import CALL, CHAT, EVENT_CLASSES, RECORD, Event
from recorder.resultcodes import ResultCode
from recorder.store.records import USER_FIELDS, RecordingRow
from recorder.timefmt import manual_datetime

# EVENTCLASS as a client may send it (any case) -> the event classes it receives.
CLASSES: dict[str, frozenset[str]] = {
    "ALL": frozenset(EVENT_CLASSES),
    CALL: frozenset({CALL}),
    RECORD: frozenset({RECORD}),
    CHAT: frozenset({CHAT}),
}
SSE_PATH = "/events"
DEVICE_MAX = FIELDS["DEVICEID"].max_len or 64

# EVENTDATA of the CHAT class's events, in the order of the RECORD events' common fields.
CHAT_FIELDS: tuple[str, ...] = (
    "SESSIONID", "RECORDID", "DEVICEID", "DEVICEALIAS", "SYS_USER", "CRM_USER", "AGENTID",
    "GATE", "ANI", "DNIS", *USER_FIELDS, "GROUP", "CALLDIRECTION", "CALLID", "STARTTIME",
    "STOPTIME", "COREIDENT")


@dataclass(frozen=True)
class EventFilter:
    """What a subscriber asked for: EVENTCLASS (as the manual spells it) and EVENTVALUE."""

    event_class: str
    classes: frozenset[str]
    devices: frozenset[str]  # empty: every device


def event_filter(event_class: str | None, event_value: str | None) -> EventFilter:
    """EVENTCLASS and EVENTVALUE checked: missing class -> 16, unknown class -> 30.

    EVENTVALUE is a DEVICEID, or several separated by "," (what the WebAPI makes of a repeated
    parameter); empty means every device.
    """
    if not event_class:
        raise invalid(f"EVENTCLASS is required ({', '.join(CLASSES)})")
    name = event_class.strip().upper()
    classes = CLASSES.get(name)
    if classes is None:
        raise RequestError(ResultCode.API_EVENT_TYPE_INVALID,
                           f"EVENTCLASS must be one of {', '.join(CLASSES)}, not "
                           f"{event_class[:40]!r}")
    devices = frozenset(d.strip() for d in (event_value or "").split(",") if d.strip())
    for device in devices:
        if len(device) > DEVICE_MAX:
            raise invalid(f"EVENTVALUE: DEVICEID {device[:40]!r}... is longer than "
                          f"{DEVICE_MAX} characters")
    return EventFilter(name, classes, devices)


def params_filter(params: Params) -> EventFilter:
    return event_filter(params.text("EVENTCLASS"), params.text("EVENTVALUE"))


def subscribed(wanted: EventFilter, xref: int) -> ApiResult:
    """The manual's "Request Result Schema": EVENTXREF, EVENTCLASS and an empty EVENTTYPE."""
    return ApiResult(ResultCode.API_OK, "API_OK", (
        ("EVENTXREF", str(xref)), ("EVENTCLASS", wanted.event_class), ("EVENTTYPE", "")))


def events_elsewhere(ctx: ApiContext, params: Params) -> ApiResult:
    """EVENTS where no stream can follow the answer: 15. Both transports subscribe instead (the
    socket connection, the WebAPI response); this is the dispatcher's answer for any other
    caller of it."""
    params_filter(params)  # a wrong EVENTCLASS is still told apart
    raise RequestError(
        ResultCode.API_INVALID_REQUEST_TYPE,
        "EVENTS streams events on the connection that sends it: send it on a socket API "
        f"connection (port 5620 unless configured otherwise), or open the Server-Sent Events "
        f"stream GET {SSE_PATH}?class=ALL on this web port")


def render_event(event: Event, xref: int) -> bytes:
    """``event`` as one line of UTF-8 XML (no CR or LF inside), carrying EVENTXREF ``xref``."""
    root = etree.Element("CALLCOPYEVENT")
    for tag, text in (("EVENTCLASS", event.event_class), ("EVENTTYPE", event.event_type),
                      ("MODULE", event.module), ("EVENTXREF", str(xref))):
        etree.SubElement(root, tag).text = text
    data = etree.SubElement(root, "EVENTDATA")
    for name, value in event.data:
        # Values come from clients (USER1...) and may hold anything a request could carry.
        etree.SubElement(data, name).text = NOT_XML.sub("\ufffd", value)
    return etree.tostring(root, encoding="utf-8").replace(b"\n", b"&#10;")


def chat_event(ctx: ApiContext, event_type: str, row: RecordingRow, session_id: str) -> Event:
    """CHATSTART, CHATSTOP or CHATUPDATE (class CHAT) about the screen session ``row``."""
    values: Mapping[str, str] = {
        **row.meta,
        "SESSIONID": session_id,
        "RECORDID": str(row.ident),
        "DEVICEID": row.device_id,
        "AGENTID": str(row.agent_id) if row.agent_id is not None else "",
        "STARTTIME": manual_datetime(row.start_time),
        "STOPTIME": manual_datetime(row.stop_time),
        "COREIDENT": str(ctx.core_ident),
    }
    return Event(CHAT, event_type, tuple((name, values.get(name, "")) for name in CHAT_FIELDS))
