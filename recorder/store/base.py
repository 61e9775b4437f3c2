"""The recording store's interface. Callers speak in recordings and API field names, never SQL.

A backend (SQLite now, PostgreSQL for multi-server sites later) implements ``Store``; nothing
outside ``recorder.store`` knows which one is in use or what its tables look like.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from recorder.store.directory import DirectoryStore

# The call metadata a recording row keeps, by the API names the manual uses for them.
USER_FIELDS: tuple[str, ...] = tuple(f"USER{i}" for i in range(1, 16))
METADATA_FIELDS: tuple[str, ...] = (
    "DEVICEALIAS", "SYS_USER", "CRM_USER", "STATIONNAME", "GROUP", "GATE", "ANI", "DNIS",
    "CALLID", "CALLDIRECTION", *USER_FIELDS,
)
# What CALLLIST may filter on (the manual's CALLLIST parameters, minus count and dates).
FILTER_FIELDS: tuple[str, ...] = (
    "DEVICEID", "CRM_USER", "SYS_USER", "DEVICEALIAS", "GROUP", "GATE", "ANI", "DNIS",
    *USER_FIELDS,
)

STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"

# What a recording holds: a call's audio, or only the agent's screen (CHATSTART, no audio file).
TYPE_AUDIO = "audio"
TYPE_SCREEN = "screen"


@dataclass(frozen=True)
class NewRecording:
    """A recording as it starts: where it is written and the call it belongs to."""

    device_id: str
    call_instance: str
    channel: int | None
    filename: str
    media_format: str
    sample_rate: int
    start_time: float  # unix seconds
    core_ident: int
    meta: Mapping[str, str] = field(default_factory=dict)
    priority: int | None = None
    keep_days: int | None = None
    archive_action: int | None = None
    cti_initiated: str = ""
    agent_initiated: str = ""
    # The agent on the call. None: whoever has the device as their phone (IMPORTAGENTPHONE)
    # when the recording starts, so a phone given to someone else later keeps its history.
    agent_id: int | None = None
    global_id: str = ""  # the call's GLOBALCALLID, shared by its partial recordings


@dataclass(frozen=True)
class FinishedRecording:
    """What is known once a recording's file is closed."""

    stop_time: float
    duration: float  # seconds of audio in the file
    audio_size: int  # bytes
    audio_hash: str  # sha256 of the file, hex
    stop_reason: str
    lost_samples: int = 0


@dataclass(frozen=True)
class RecordingUpdate:
    """Metadata changed after the recording started (CALLUPDATE)."""

    meta: Mapping[str, str] = field(default_factory=dict)
    keep_days: int | None = None
    archive_action: int | None = None


@dataclass(frozen=True)
class RecordingRow:
    """One recording as stored."""

    ident: int
    device_id: str
    call_instance: str
    channel: int | None
    filename: str
    media_format: str
    sample_rate: int
    recording_time: int  # unix seconds the recording started (CALLLIST's RECORDINGTIME)
    start_time: float
    stop_time: float | None
    duration: float | None
    audio_size: int | None
    audio_hash: str | None
    status: str
    stop_reason: str
    lost_samples: int
    core_ident: int
    meta: Mapping[str, str]
    priority: int | None
    keep_days: int | None
    archive_action: int | None
    cti_initiated: str
    agent_initiated: str
    agent_id: int | None = None
    agent_first_name: str = ""  # the agent's names as the directory holds them now
    agent_last_name: str = ""
    recording_type: str = TYPE_AUDIO
    purged_time: float | None = None  # when retention deleted its files (the row stays)
    global_id: str = ""  # GLOBALCALLID of the call it recorded


DAY_SECONDS = 86400.0

# Where a batched scan over recordings goes on from: the last row's (start_time, ident).
ScanCursor = tuple[float, int]


@dataclass(frozen=True)
class ExpiryRule:
    """Which complete recordings retention may purge, in the store's terms.

    A recording is kept for a number of days from its start: its own KEEPDAYS when above 0,
    else its ARCHIVEACTION's entry in ``archive_keep_days``, else ``default_keep_days``.
    0 days: due as soon as it is complete; None: kept forever. ``recorder.retention`` builds
    this from the configuration and owns the rule; the store only evaluates it in bulk.
    """

    default_keep_days: int | None = None
    archive_keep_days: Mapping[int, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordingQuery:
    """CALLLIST's question: equality filters (AND), a time range, newest first, at most limit."""

    equals: Mapping[str, str] = field(default_factory=dict)  # FILTER_FIELDS name -> value
    start: int | None = None  # recording_time >= start (unix seconds)
    end: int | None = None  # recording_time <= end
    limit: int = 100


class Store(DirectoryStore, ABC):
    """Durable home of recording rows and the directory (``DirectoryStore``).

    Thread-safe: API workers and the scheduler share it.
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

    @abstractmethod
    def insert_recording(self, rec: NewRecording, ident: int | None = None) -> int:
        """Store a starting recording; returns its RECORDID.

        ``ident``: the RECORDID to store it under, already handed out while the database was
        away (``recorder.store.spool``); None lets the store pick the next one.
        """

    @abstractmethod
    def max_recording_id(self) -> int:
        """The highest RECORDID the store has ever handed out (0: none), deleted rows
        included, so that one handed out next can never have been used."""

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

    @abstractmethod
    def interrupted_recordings(self) -> list[RecordingRow]:
        """Recordings still marked in progress: at start-up, those a crash interrupted."""

    @abstractmethod
    def untranscoded_recordings(self, audio_formats: Sequence[str]) -> list[RecordingRow]:
        """Complete recordings still in a WAV file although stored as one of ``audio_formats``
        (after-call encoding that a stop or a crash cut short), oldest first."""

    @abstractmethod
    def replace_recording_file(self, old: str, new: str, media_format: str, audio_size: int,
                               audio_hash: str) -> bool:
        """Point the recording whose file is ``old`` (or already ``new``) at ``new``.

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
