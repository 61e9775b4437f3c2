"""The database-outage spool's reads (``SpoolingStore``'s base): while changes wait in the spool,
the database lacks them, so a read of recordings (CALLLIST, EXPORT, retention's scans) or a
write that builds on rows (a chat session, a purge mark) would answer from a past the callers
never saw. Each goes to the database only while nothing waits; otherwise StoreError ("database
unavailable: N changes waiting in the spool"), which the API answers 23. recorder.store.spool
says when changes wait."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from recorder.store.recordings import RecordingStore
from recorder.store.records import ExpiryRule, RecordingQuery, RecordingRow, ScanCursor

_T = TypeVar("_T")


class CurrentReads(RecordingStore):
    """Delegates to ``_inner`` what must see every change: only while ``_check_current`` lets
    it."""

    _inner: RecordingStore

    def _check_current(self) -> None:
        """StoreError while the database lacks changes (the spool's)."""
        raise NotImplementedError

    def _current(self, call: Callable[[], _T]) -> _T:
        self._check_current()
        return call()

    def count_recordings(self) -> int:
        return self._current(self._inner.count_recordings)

    def get_recording(self, ident: int) -> RecordingRow | None:
        return self._current(lambda: self._inner.get_recording(ident))

    def find_recording(self, unique_field: str, value: str) -> RecordingRow | None:
        return self._current(lambda: self._inner.find_recording(unique_field, value))

    def last_recording_id(self, device_id: str) -> int | None:
        return self._current(lambda: self._inner.last_recording_id(device_id))

    def list_recordings(self, query: RecordingQuery) -> list[RecordingRow]:
        return self._current(lambda: self._inner.list_recordings(query))

    def calllist_fields(self, query: RecordingQuery,
                        now: float) -> list[tuple[str, ...]] | None:
        return self._current(lambda: self._inner.calllist_fields(query, now))

    def interrupted_recordings(self) -> list[RecordingRow]:
        return self._current(self._inner.interrupted_recordings)

    def mark_listened(self, ident: int) -> bool:
        return self._current(lambda: self._inner.mark_listened(ident))

    def delete_recording(self, ident: int) -> bool:
        return self._current(lambda: self._inner.delete_recording(ident))

    def recording_blackouts(self, ident: int) -> tuple[tuple[float, float], ...]:
        return self._current(lambda: self._inner.recording_blackouts(ident))

    def untranscoded_recordings(self, audio_formats: Sequence[str]) -> list[RecordingRow]:
        return self._current(lambda: self._inner.untranscoded_recordings(audio_formats))

    def expired_recordings(self, now: float, rule: ExpiryRule, limit: int,
                           after: ScanCursor | None = None) -> list[RecordingRow]:
        return self._current(lambda: self._inner.expired_recordings(now, rule, limit, after))

    def count_expired(self, now: float, rule: ExpiryRule) -> int:
        return self._current(lambda: self._inner.count_expired(now, rule))

    def mark_purged(self, ident: int, when: float) -> bool:
        return self._current(lambda: self._inner.mark_purged(ident, when))

    def oldest_unpurged(self, limit: int, after: ScanCursor | None = None) -> list[RecordingRow]:
        return self._current(lambda: self._inner.oldest_unpurged(limit, after))

    def stop_chat(self, session_id: str, stop_time: float) -> int | None:
        return self._current(lambda: self._inner.stop_chat(session_id, stop_time))

    def update_chat(self, session_id: str, meta: Mapping[str, str]) -> int | None:
        return self._current(lambda: self._inner.update_chat(session_id, meta))


__all__ = ["CurrentReads"]
