"""Status functions: CALLLIST (stored recordings); DEVICELIST, DEVICESTATUS and
DEVICERECORDINGSTATUS (live devices)."""

from __future__ import annotations

from itertools import chain

from recorder.api.context import ApiContext
from recorder.api.protocol.params import Params
from recorder.api.protocol.xmlcodec import NOT_XML, text_escaped
from recorder.api.request import RAW, ApiResult, Node, RequestError, invalid
from recorder.calls.requests import DeviceQuery
from recorder.calls.status import NORMAL_STOPS, CallStatus, DeviceStatus
from recorder.errors import StoreError
from recorder.resultcodes import ResultCode
from recorder.store.factory import Store
from recorder.store.records import (
    CALLLIST_FIELDS,
    FILTER_FIELDS,
    USER_FIELDS,
    RecordingQuery,
    RecordingRow,
)
from recorder.timefmt import manual_datetime


def call_list(ctx: ApiContext, params: Params) -> ApiResult:
    return stored_calls(ctx.store, params, ctx.calllist_max_rows, ctx.clock())


def stored_calls(store: Store, params: Params, max_rows: int, now: float) -> ApiResult:
    """CALLLIST's answer from ``store``: the handler's, and ``recorderctl calls --offline``'s
    on a data directory whose service is down."""
    # A blank filter (<ANI></ANI>) filters nothing: clients send the manual's full field list.
    equals = {name: value for name in FILTER_FIELDS if (value := params.nonblank(name))}
    start, end = params.integer("CALLDATESTART"), params.integer("CALLDATEEND")
    if start is not None and end is not None and start > end:
        raise invalid(f"CALLDATESTART ({start}) is after CALLDATEEND ({end})")
    count = params.integer("CALLCOUNT")
    limit = min(count or max_rows, max_rows)
    query = RecordingQuery(equals=equals, start=start, end=end, limit=limit)
    body: list[Node] = [("TYPE", "CALLLIST")]  # the manual's example result carries it
    try:
        texts = store.recordings.calllist_fields(query, now)
        written = None if texts is None else _written(texts)
        if written is not None:
            found = len(texts or ())
            body.append((RAW, written))
        else:
            rows = store.recordings.list_recordings(query)
            found = len(rows)
            body += [("SEARCHRESULT", _search_result(n, row, now))
                     for n, row in enumerate(rows, 1)]
    except StoreError as exc:
        raise RequestError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
    message = "API_OK"
    if count is not None and count > max_rows and found == limit:
        message = f"showing the newest {limit} calls (api.calllist_max_rows)"
    return ApiResult(ResultCode.API_OK, message, body)


# One SEARCHRESULT: CALLNUMBER, then the fields of records.CALLLIST_FIELDS, each filled with
# its text already escaped.
_SEARCHRESULT = ("<SEARCHRESULT><CALLNUMBER>%d</CALLNUMBER>"
                 + "".join(f"<{name}>%s</{name}>" for name in CALLLIST_FIELDS)
                 + "</SEARCHRESULT>")
_SEP = "\x00"  # between values: a character no value may hold (XML cannot carry it)


def _written(rows: list[tuple[str, ...]]) -> str | None:
    """The SEARCHRESULT elements of ``rows`` (calllist_fields') as XML text, escaping every
    value in one pass over them all and formatting each row once; None if a value holds a
    character XML cannot carry (the general path then answers it, as it always did)."""
    width = len(CALLLIST_FIELDS)
    try:
        values = _SEP.join(chain.from_iterable(rows))
    except TypeError:  # a value that is not text: the general path writes it
        return None
    if values.count(_SEP) != max(0, len(rows) * width - 1) or NOT_XML.search(
            values.replace(_SEP, "")):
        return None
    escaped = text_escaped(values).split(_SEP)
    return "".join(_SEARCHRESULT % (n, *escaped[i:i + width])
                   for n, i in enumerate(range(0, len(escaped) if rows else 0, width), 1))


def _search_result(number: int, row: RecordingRow, now: float) -> list[Node]:
    meta = row.meta
    # A recording still in progress has no stored duration yet: show how long it has run.
    duration = row.duration if row.duration is not None else max(0.0, now - row.start_time)
    return [
        ("CALLNUMBER", str(number)),
        ("DEVICEID", row.device_id),
        ("DEVICEALIAS", meta["DEVICEALIAS"]),
        ("ANI", meta["ANI"]),
        ("DNIS", meta["DNIS"]),
        ("CALLDIRECTION", meta["CALLDIRECTION"]),
        ("GROUP", meta["GROUP"]),
        ("GATE", meta["GATE"]),
        *((name, meta[name]) for name in USER_FIELDS),
        ("RECORDID", str(row.ident)),
        ("RECORDINGTIME", str(row.recording_time)),
        ("DURATION", str(round(duration))),
        # The agent whose phone the device was when the call was recorded (IMPORTAGENTPHONE).
        ("AGENTFIRSTNAME", row.agent_first_name or ""),
        ("AGENTLASTNAME", row.agent_last_name or ""),
        ("CRM_USER", meta["CRM_USER"]),
        ("SYS_USER", meta["SYS_USER"]),
        ("FILENAME", row.filename),
        ("CALLINSTANCE", row.call_instance),
    ]


def device_status(ctx: ApiContext, params: Params) -> ApiResult:
    devices = ctx.scheduler.status.device_status(params.device(call_id=True))
    body: list[Node] = [("DEVICES", [
        ("COUNT", str(len(devices))),
        *(("DEVICE", _device(ctx, d)) for d in devices),
    ])]
    return ApiResult(ResultCode.API_OK, "Found the following matching devices", body)


def device_list(ctx: ApiContext, params: Params) -> ApiResult:
    """Every device the recorder knows, each with its most recently active call."""
    devices = ctx.scheduler.status.device_status(DeviceQuery())
    body: list[Node] = [("DEVICES", [
        ("COUNT", str(len(devices))),
        *(("DEVICE", _device(ctx, d)) for d in devices),
    ])]
    return ApiResult(ResultCode.API_OK, "API_OK", body)


RECORDING_STATUS_MESSAGE = ("Following active call instances found for specified deviceID, "
                            "devicealias, crm_user or sys_user")


def device_recording_status(ctx: ApiContext, params: Params) -> ApiResult:
    """Every open call instance of a device (of every device with one, for no device)."""
    query = params.device()
    devices = ctx.scheduler.status.device_status(query)
    if not query:
        devices = [d for d in devices if d.open_calls]
    body: list[Node] = [("DEVICE", [
        ("DEVICEID", d.device_id),
        *_identity(d.open_calls[0] if d.open_calls else d.current),
        ("COREIDENT", str(ctx.core_ident)),
        *(("RECORDING", _instance(call)) for call in d.open_calls),
    ]) for d in devices]
    return ApiResult(ResultCode.API_OK, RECORDING_STATUS_MESSAGE, body)


def _identity(call: CallStatus | None) -> list[Node]:
    meta = call.meta if call else {}
    return [(name, meta.get(name, "")) for name in ("DEVICEALIAS", "SYS_USER", "CRM_USER")]


def _instance(call: CallStatus) -> list[Node]:
    meta = call.meta
    if not call.recording:
        status = "notrecording"
    elif call.paused:
        status = "recordpaused"
    else:
        status = "recording"
    return [
        *((name, meta.get(name, "")) for name in (
            "GROUP", "GATE", "ANI", "DNIS", *USER_FIELDS, "CALLDIRECTION")),
        ("ISTRUNK", ""),
        ("STATION", meta.get("STATIONNAME", "")),
        ("STARTTIME", manual_datetime(call.start_time)),
        ("STOPTIME", manual_datetime(call.stop_time)),
        ("ISRECORDING", "Y" if call.recording else "N"),
        ("ISRECORDINGVIDEO", "N"),
        ("FILENAME", call.filename),
        ("CALLID", meta.get("CALLID", "")),
        ("SESSIONID", ""),
        ("CALLINSTANCE", call.instance),
        ("STATUS", status),
        ("ERRORREASON", _error_reason(call)),
    ]


def _error_reason(call: CallStatus | None) -> str:
    """Why the call is not (or no longer) recorded, as events name it; NONE if it is."""
    if call is None or call.decision is None:
        return ""
    if not call.decision.record:
        return call.decision.reason.label
    if call.stop_reason and call.stop_reason not in NORMAL_STOPS:
        return call.stop_reason.upper()
    return "NONE"


def _device(ctx: ApiContext, device: DeviceStatus) -> list[Node]:
    call = device.current
    meta = call.meta if call else {}
    return [
        ("DEVICEID", device.device_id),
        *((name, meta.get(name, "")) for name in (
            "DEVICEALIAS", "SYS_USER", "CRM_USER", "GROUP", "GATE", "ANI", "DNIS", *USER_FIELDS,
            "CALLDIRECTION")),
        ("ISTRUNK", ""),
        ("STATION", meta.get("STATIONNAME", "")),
        ("STARTTIME", manual_datetime(call.start_time) if call else ""),
        ("STOPTIME", manual_datetime(call.stop_time) if call else ""),
        ("COREIDENT", str(ctx.core_ident)),
        ("RECORDING", _recording(call)),
    ]


def _recording(call: CallStatus | None) -> list[Node]:
    return [
        ("ISRECORDING", "Y" if call and call.recording else "N"),
        ("ISRECORDINGVIDEO", "N"),
        ("FILENAME", call.filename if call else ""),
        ("CALLID", call.meta.get("CALLID", "") if call else ""),
        ("SESSIONID", ""),
        ("CALLINSTANCE", call.instance if call else ""),
        # An extension: why the call is or is not recorded (docs/api-notes.md).
        ("ERRORREASON", _error_reason(call)),
    ]
