"""CALLUPDATE: new metadata for a call in progress (and every recording of it), or for a stored
recording by RECORDID or as the device's last one (UPDATE_IF_NOT_RECORDING=Y)."""

from __future__ import annotations

import logging

from recorder.calls.events import CallEvents
from recorder.calls.lookup import DeviceLookup
from recorder.calls.model import LiveCall
from recorder.calls.requests import CallError, CallUpdate, DeviceQuery
from recorder.calls.table import CallTable
from recorder.errors import StoreError
from recorder.resultcodes import ResultCode
from recorder.store.recordings import RecordingStore
from recorder.store.records import RecordingUpdate

logger = logging.getLogger(__name__)


class CallUpdates:
    """Applies CALLUPDATE to the live call and its rows; thread-safe (table lock, then the
    call's)."""

    def __init__(self, table: CallTable, lookup: DeviceLookup, recordings: RecordingStore,
                 events: CallEvents) -> None:
        self._table = table
        self._lookup = lookup
        self._recordings = recordings
        self._events = events

    def call(self, device: DeviceQuery, instance: str | None, update: CallUpdate,
                    if_not_recording: bool) -> str:
        """Update the device's open call, or with ``if_not_recording`` its last recording.

        Returns "call" or "recording": which of the two was updated.
        """
        device_id = self._lookup.resolve(device)
        with self._table.lock:
            state = self._table.devices.get(device_id)
            call = state.find(instance) if state else None
        if call is not None:
            self.apply(call, update)
            return "call"
        if not if_not_recording:
            raise CallError(ResultCode.API_DEVICE_NOT_IN_CALL, f"device {device_id} is not in a "
                            "call (send UPDATE_IF_NOT_RECORDING=Y to update its last recording)")
        try:
            record_id = self._recordings.last_recording_id(device_id)
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc
        if record_id is None:
            raise CallError(ResultCode.API_RECORDID_INVALID,
                            f"device {device_id} has no recording to update")
        self.recording(record_id, update)
        return "recording"

    def apply(self, call: LiveCall, update: CallUpdate) -> None:
        """Update a call in progress and the rows of its recordings (RECORDINGUPDATE each)."""
        with call.lock:
            call.meta.update(update.meta)
            if update.keep_days is not None:
                call.keep_days = update.keep_days
            if update.archive_action is not None:
                call.archive_action = update.archive_action
            for recording in call.recordings():
                recording.meta.update(update.meta)
                if recording.record_id is not None:
                    self._update_row(recording.record_id, update)
                    self._events.publish("RECORDINGUPDATE", call, recording)

    def recording(self, record_id: int, update: CallUpdate) -> None:
        """Update a stored recording by RECORDID (CALLUPDATE post-recording)."""
        with self._table.lock:
            live = next(((c, r) for c in self._table.open_calls() for r in c.recordings()
                         if r.record_id == record_id), None)
        if live is not None:
            # Keep the live call in step, or its stop would not know the new metadata.
            with live[0].lock:
                live[1].meta.update(update.meta)
                if not live[1].partial:
                    live[0].meta.update(update.meta)
        if not self._update_row(record_id, update):
            raise CallError(ResultCode.API_RECORDID_INVALID, f"no recording {record_id}")
        try:
            row = self._recordings.get_recording(record_id)
        except StoreError as exc:
            # The database is away: the update waits in the spool, the row cannot be read.
            logger.warning("RECORDINGUPDATE for %d not published: %s", record_id, exc)
            return
        if row is not None:
            self._events.publish_stored_update(row)

    def _update_row(self, record_id: int, update: CallUpdate) -> bool:
        try:
            return self._recordings.update_recording(record_id, RecordingUpdate(
                meta=update.meta, keep_days=update.keep_days,
                archive_action=update.archive_action))
        except StoreError as exc:
            raise CallError(ResultCode.API_DATABASE_QUERY_ERROR, str(exc)) from exc

