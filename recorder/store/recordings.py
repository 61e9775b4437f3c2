"""The recordings' interface: what the recorder asks of the database about recordings.

A backend (SQLite now, PostgreSQL for multi-server sites later) implements ``RecordingStore``;
nothing outside ``recorder.store`` knows which one is in use or what its tables look like.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

from recorder.store.records import (
    ChatStart,
    ExpiryRule,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
    ScanCursor,
)


class RecordingStore(ABC):
    """Durable home of recording rows (and chat sessions, which are recordings of a screen).

    Thread-safe: API workers and the scheduler share it. The outage spool
    (``recorder.store.spool``) wraps one, the directory (``DirectoryStore``) is apart.
    """

    @abstractmethod
    def open(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    def close(self) -> None: ...

    # For diagnostics (/status, /metrics): which backend, where, and how it has fared.
    backend: str = ""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the database is: a file, a server."""

    @property
    @abstractmethod
    def errors(self) -> int:
        """How many StoreErrors the store has raised since it was made, whoever called."""

    @abstractmethod
    def count_recordings(self) -> int:
        """How many recording rows there are (purged ones included): a trivial read."""

    @property
    def spooled(self) -> int:
        """Changes waiting in the outage spool for the database to come back (0: none)."""
        return 0

    @property
    def held(self) -> int:
        """Changes accepted but kept in memory only, as neither the database nor the spool had
        room for them (0: every accepted change is on disk; ``recorder.store.spool``)."""
        return 0

    @abstractmethod
    def insert_recording(self, rec: NewRecording, ident: int | None = None) -> int:
        """Store a starting recording; returns its RECORDID.

        ``ident``: the RECORDID to store it under, already handed out while the database was
        away (``recorder.store.spool``); None lets the store pick the next one.
        """

    @property
    def batches_atomically(self) -> bool:
        """Whether ``insert_recordings`` and ``finish_recordings`` write a batch all or none
        (one transaction), so a failed batch can be written again item by item: only then
        are concurrent writes grouped (``recorder.recording.groupcommit``)."""
        return False

    def insert_recordings(self, recs: Sequence[NewRecording]) -> list[int]:
        """Store several starting recordings at once, all or none; their RECORDIDs in order.

        A store that can should make it one transaction, one sync to disk for them all (group
        commit: ``recorder.recording.groupcommit``); this one stores them one by one, which
        may leave some stored when it raises."""
        return [self.insert_recording(rec) for rec in recs]

    def finish_recordings(self, done: Sequence[tuple[int, FinishedRecording]]) -> None:
        """``finish_recording`` for several recordings at once, all or none where the store
        can (one transaction, one sync); this one finishes them one by one."""
        for ident, finished in done:
            self.finish_recording(ident, finished)

    @abstractmethod
    def max_recording_id(self) -> int:
        """The highest RECORDID the store has ever handed out (0: none), deleted rows
        included, so that one handed out next can never have been used."""

    def reserve_recording_ids(self, count: int) -> list[int]:
        """Up to ``count`` RECORDIDs taken for the outage spool to hand out later, that the
        store will give no one else (``spoolids``); [] where the spool's own count is safe
        (one writer: SQLite)."""
        del count
        return []

    @abstractmethod
    def finish_recording(self, ident: int, done: FinishedRecording) -> None: ...

    @abstractmethod
    def update_recording(self, ident: int, update: RecordingUpdate) -> bool:
        """Apply an update; False if there is no recording ``ident``."""

    @abstractmethod
    def get_recording(self, ident: int) -> RecordingRow | None: ...

    @abstractmethod
    def find_recording(self, unique_field: str, value: str) -> RecordingRow | None:
        """The recording whose ``unique_field`` (a name from the manual's UNIQUEFIELD list, lower
        case, e.g. "user2", "ident") equals ``value``: the newest complete match, else the
        newest still recording. ValueError for a field not in the list."""

    @abstractmethod
    def last_recording_id(self, device_id: str) -> int | None:
        """RECORDID of the device's most recent recording."""

    @abstractmethod
    def list_recordings(self, query: RecordingQuery) -> list[RecordingRow]: ...

    def calllist_fields(self, query: RecordingQuery,
                        now: float) -> list[tuple[str, ...]] | None:
        """The rows ``list_recordings`` finds, each as the text of its CALLLIST fields
        (``records.CALLLIST_FIELDS``, as the API writes them: DURATION rounded, a recording in
        progress's counted to ``now``), straight from the query with no row objects; None if
        this store does not offer it (the API then maps ``list_recordings``' rows)."""
        return None

    @abstractmethod
    def mark_listened(self, ident: int) -> bool:
        """Set the recording's LISTENEDTO; False if there is no recording ``ident``."""

    @abstractmethod
    def recording_blackouts(self, ident: int) -> tuple[tuple[float, float], ...]:
        """A complete recording's blackouts, (start, end) seconds from its file's start, in
        order; empty for none (or no such recording)."""

    @abstractmethod
    def delete_recording(self, ident: int) -> bool:
        """Delete the row of a complete, unlocked recording (its file is the caller's); False,
        changing nothing, if there is no such row."""

    @abstractmethod
    def interrupted_recordings(self) -> list[RecordingRow]:
        """Recordings still marked in progress: at start-up, those a crash interrupted."""

    @abstractmethod
    def untranscoded_recordings(self, audio_formats: Sequence[str]) -> list[RecordingRow]:
        """Complete recordings still in a WAV file although stored as one of ``audio_formats``
        (after-call encoding that a stop or a crash cut short), oldest first."""

    @abstractmethod
    def replace_recording_file(self, old: str, new: str, media_format: str, audio_size: int,
                               audio_hash: str, *, file_key: str = "") -> bool:
        """Point the recording whose file is ``old`` (or already ``new``) at ``new``, whose
        wrapped file key is ``file_key`` ("": it is not encrypted).

        Idempotent, so after-call transcoding redone after a crash can call it again.
        False if no recording has either file.
        """

    @abstractmethod
    def expired_recordings(self, now: float, rule: ExpiryRule, limit: int,
                           after: ScanCursor | None = None) -> list[RecordingRow]:
        """Complete, unpurged recordings ``rule`` says are due at ``now``, oldest first (by
        start time, then RECORDID), at most ``limit``, starting after the cursor ``after``."""

    @abstractmethod
    def count_expired(self, now: float, rule: ExpiryRule) -> int:
        """How many recordings ``expired_recordings`` would list in all."""

    @abstractmethod
    def mark_purged(self, ident: int, when: float) -> bool:
        """Record that recording ``ident``'s files were purged at ``when``.

        False, changing nothing, unless it is complete and not already purged."""

    @abstractmethod
    def oldest_unpurged(self, limit: int, after: ScanCursor | None = None) -> list[RecordingRow]:
        """Complete, unpurged recordings that have a file, oldest first (by start time, then
        RECORDID), at most ``limit``, starting after the cursor ``after``."""

    # --- screen-capture (chat) sessions --------------------------------------------------------

    @abstractmethod
    def start_chat(self, chat: ChatStart) -> tuple[int, int | None]:
        """Store the session as a screen-only recording; returns its RECORDID and that of an
        open session with the same SESSIONID that it ended ("replaced"), if any."""

    @abstractmethod
    def stop_chat(self, session_id: str, stop_time: float) -> int | None:
        """Complete the open session's recording; its RECORDID, or None if none is open."""

    @abstractmethod
    def update_chat(self, session_id: str, meta: Mapping[str, str]) -> int | None:
        """Update the open session's recording, else the newest with that SESSIONID; its
        RECORDID, or None if there is none."""
