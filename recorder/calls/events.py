"""The manual's events about a call and its recordings, built from the live call model.

``CallEvents`` publishes them for the scheduler and the blackouts (the completion worker
publishes RECORDINGSTOPPED and RECORDINGUPDATE from templates made here when a recording ends).
Each carries the call's metadata (a partial recording's own), its GLOBALCALLID, AGENTID,
KEEPDAYS and ARCHIVEACTION (-1 when not set, as in the manual's examples), the recording's file
and RECORDID, and ERRORREASON.
"""

from __future__ import annotations

import logging

from recorder.calls.model import LiveCall, Recording
from recorder.events.rows import number, stored_update_event
from recorder.events.types import Event, EventSink, make_event
from recorder.store.records import RecordingRow
from recorder.timefmt import manual_datetime

logger = logging.getLogger(__name__)



def call_event(event_type: str, call: LiveCall, core_ident: int,
               recording: Recording | None = None, reason: str = "NONE") -> Event:
    """``event_type`` about ``call`` (and one of its recordings) with the manual's fields."""
    meta = recording.meta if recording is not None else call.meta
    return make_event(event_type, {
        **meta,
        "GLOBALCALLID": call.global_id, "DEVICEID": call.device_id,
        "AGENTID": call.agent_id, "CALLINSTANCE": call.instance,
        "STATION": meta.get("STATIONNAME", ""), "ISTRUNK": "",
        "KEEPDAYS": number(call.keep_days), "ARCHIVEACTION": number(call.archive_action),
        "STARTTIME": manual_datetime(call.start_time),
        "COREIDENT": str(core_ident),
        "FILENAME": recording.filename if recording is not None else "",
        "CHANNEL": str(call.channel) if call.channel is not None else "",
        "ERRORREASON": reason,
        "RECORDID": str(recording.record_id) if recording and recording.record_id else "",
    })


class CallEvents:
    """Publishes the manual's events about calls to the event sink; never raises."""

    def __init__(self, sink: EventSink, core_ident: int) -> None:
        self._sink = sink
        self.core_ident = core_ident

    def event(self, event_type: str, call: LiveCall, recording: Recording | None = None,
              reason: str = "NONE") -> Event:
        return call_event(event_type, call, self.core_ident, recording, reason)

    def publish(self, event_type: str, call: LiveCall, recording: Recording | None = None,
                reason: str = "NONE") -> None:
        try:
            self._sink.publish(self.event(event_type, call, recording, reason))
        except Exception:
            logger.exception("publishing %s for %s failed", event_type, call.device_id)

    def publish_stored_update(self, row: RecordingRow) -> None:
        """RECORDINGUPDATE for a stored recording changed by CALLUPDATE."""
        try:
            self._sink.publish(stored_update_event(row))
        except Exception:
            logger.exception("RECORDINGUPDATE for %d could not be published", row.ident)


__all__ = ["CallEvents", "call_event"]
