"""The manual's events about a call and its recordings, built from the live call model.

The scheduler publishes these; this module only says what each carries: the call's metadata
(a partial recording's own), its GLOBALCALLID, AGENTID, KEEPDAYS and ARCHIVEACTION (-1 when not
set, as in the manual's examples), the recording's file and RECORDID, and ERRORREASON.
"""

from __future__ import annotations

from recorder.devices import LiveCall, Recording
from recorder.events import Event, make_event
from recorder.store import NewRecording, RecordingRow
from recorder.timefmt import manual_datetime

NOT_SET = "-1"


def _number(value: int | None) -> str:
    return str(value) if value is not None else NOT_SET


def call_event(event_type: str, call: LiveCall, core_ident: int,
               recording: Recording | None = None, reason: str = "NONE") -> Event:
    """``event_type`` about ``call`` (and one of its recordings) with the manual's fields."""
    meta = recording.meta if recording is not None else call.meta
    return make_event(event_type, {
        **meta,
        "GLOBALCALLID": call.global_id, "DEVICEID": call.device_id,
        "AGENTID": call.agent_id, "CALLINSTANCE": call.instance,
        "STATION": meta.get("STATIONNAME", ""), "ISTRUNK": "",
        "KEEPDAYS": _number(call.keep_days), "ARCHIVEACTION": _number(call.archive_action),
        "STARTTIME": manual_datetime(call.start_time),
        "COREIDENT": str(core_ident),
        "FILENAME": recording.filename if recording is not None else "",
        "CHANNEL": str(call.channel) if call.channel is not None else "",
        "ERRORREASON": reason,
        "RECORDID": str(recording.record_id) if recording and recording.record_id else "",
    })


def stored_update_event(row: RecordingRow) -> Event:
    """RECORDINGUPDATE for a stored recording changed after its call (CALLUPDATE by RECORDID)."""
    return make_event("RECORDINGUPDATE", {
        "GLOBALCALLID": row.global_id, "DEVICEID": row.device_id,
        "KEEPDAYS": _number(row.keep_days), "FILENAME": row.filename,
        "RECORDID": str(row.ident), "COREIDENT": str(row.core_ident),
    })


def recovered_event(row: NewRecording, record_id: int | None, reason: str = "RECOVERED",
                    ) -> Event:
    """RECORDINGSTOPPED for a recording a crash interrupted, completed at the next start.

    The same fields as the scheduler's, from what the crash journal kept of the call (its
    metadata as it was when the recording started)."""
    return make_event("RECORDINGSTOPPED", {
        **row.meta,
        "GLOBALCALLID": row.global_id, "DEVICEID": row.device_id, "AGENTID": "",
        "CALLINSTANCE": row.call_instance, "STATION": row.meta.get("STATIONNAME", ""),
        "ISTRUNK": "", "KEEPDAYS": _number(row.keep_days),
        "ARCHIVEACTION": _number(row.archive_action),
        "STARTTIME": manual_datetime(row.start_time), "COREIDENT": str(row.core_ident),
        "FILENAME": row.filename,
        "CHANNEL": str(row.channel) if row.channel is not None else "",
        "ERRORREASON": reason, "RECORDID": str(record_id) if record_id else "",
    })


__all__ = ["call_event", "recovered_event", "stored_update_event"]
