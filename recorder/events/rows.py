"""The manual's events about stored recordings, built from their rows (no live call behind
them): RECORDINGUPDATE after a CALLUPDATE by RECORDID, and the RECORDINGSTOPPED of a recording a
crash interrupted, completed at the next start. ``recorder.calls.events`` builds the others.
"""

from __future__ import annotations

from recorder.events.types import Event, make_event
from recorder.store.records import NewRecording, RecordingRow
from recorder.timefmt import manual_datetime

NOT_SET = "-1"  # a number not set, as the manual's examples send KEEPDAYS and ARCHIVEACTION


def number(value: int | None) -> str:
    return str(value) if value is not None else NOT_SET


def stored_update_event(row: RecordingRow) -> Event:
    """RECORDINGUPDATE for a stored recording changed after its call (CALLUPDATE by RECORDID)."""
    return make_event("RECORDINGUPDATE", {
        "GLOBALCALLID": row.global_id, "DEVICEID": row.device_id,
        "KEEPDAYS": number(row.keep_days), "FILENAME": row.filename,
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
        "ISTRUNK": "", "KEEPDAYS": number(row.keep_days),
        "ARCHIVEACTION": number(row.archive_action),
        "STARTTIME": manual_datetime(row.start_time), "COREIDENT": str(row.core_ident),
        "FILENAME": row.filename,
        "CHANNEL": str(row.channel) if row.channel is not None else "",
        "ERRORREASON": reason, "RECORDID": str(record_id) if record_id else "",
    })
