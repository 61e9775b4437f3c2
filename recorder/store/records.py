"""What the store holds of recordings, as callers speak of them: rows by the API's field names.

Plain values, no database: the rules (retention) and the API read them as well as the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
# CALLLIST's SEARCHRESULT fields after CALLNUMBER, in the order the API writes them: what
# ``RecordingStore.calllist_fields`` gives as text for each row.
CALLLIST_FIELDS: tuple[str, ...] = (
    "DEVICEID", "DEVICEALIAS", "ANI", "DNIS", "CALLDIRECTION", "GROUP", "GATE", *USER_FIELDS,
    "RECORDID", "RECORDINGTIME", "DURATION", "AGENTFIRSTNAME", "AGENTLASTNAME", "CRM_USER",
    "SYS_USER", "FILENAME", "CALLINSTANCE")

STATUS_RECORDING = "recording"
STATUS_COMPLETE = "complete"

# Why a recording ended, as its row keeps it (STOPREASON; ERRORREASON is it in capitals).
STOP_CALLSTOP = "callstop"
STOP_REPLACED = "replaced"  # a new CALLSTART came for the same device and call instance
STOP_SHUTDOWN = "shutdown"
STOP_TRIGGER = "trigger"  # the channel's vox, line or always trigger ended it
STOP_RECORDSTOP = "recordstop"  # a partial recording ended by RECORDSTOP
STOP_MAXRECORDTIME = "maxrecordtime"  # it reached its MAXRECORDTIME
STOP_MAXRECORDSILENCE = "maxrecordsilence"  # MAXRECORDSILENCE seconds of continuous silence
STOP_PREEMPTED = "preempted"  # a call with a higher PRIORITY needed its place
STOP_CALL_ENDED = "callended"  # a partial recording ended because its call did
STOP_TRUNCATED = "truncated"  # the disk was full: the file ends where the disk did
STOP_RECOVERED = "recovered"  # completed at start-up from what a crash left (recording.recovery)

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
    # An encrypted recording's wrapped file key (recorder/crypt/keys.py WrappedKey.to_text),
    # also kept beside the file; "" for a recording in clear.
    file_key: str = ""


@dataclass(frozen=True)
class FinishedRecording:
    """What is known once a recording's file is closed."""

    stop_time: float
    duration: float  # seconds of audio in the file
    audio_size: int  # bytes
    audio_hash: str  # sha256 of the file, hex
    stop_reason: str
    lost_samples: int = 0
    # The blackouts in the file: (start, end) seconds from its first frame, in order.
    blackouts: tuple[tuple[float, float], ...] = ()


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
    locked: bool = False  # the manual's LOCKED: kept from deletion
    listened_to: bool = False  # the manual's LISTENEDTO: someone has played it


DAY_SECONDS = 86400.0

# Where a batched scan over recordings goes on from: the last row's (start_time, ident).
ScanCursor = tuple[float, int]


@dataclass(frozen=True)
class ExpiryRule:
    """Which complete recordings retention may purge, in the store's terms.

    A recording is kept for a number of days from its start: its own KEEPDAYS when above 0,
    else its ARCHIVEACTION's entry in ``archive_keep_days``, else ``default_keep_days``.
    0 days: due as soon as it is complete; None: kept forever. ``recorder.rules.retention`` builds
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
    # The portal's further filters and paging (CALLLIST sends none of them).
    agent_id: int | None = None  # the agent at call time (the row's agent_id)
    min_duration: float | None = None  # seconds; a recording still in progress has none
    max_duration: float | None = None
    offset: int = 0  # rows skipped before the first one listed
    oldest_first: bool = False
    # Only rows recorded on one of these devices or with one of these agents (the groups a
    # user's roles narrow ALLOWVIEWALLRECORDS to); None: no such limit.
    within_devices: tuple[str, ...] | None = None
    within_agents: tuple[int, ...] = ()


@dataclass(frozen=True)
class ChatStart:
    """A screen-capture-only session began (CHATSTART): stored as a recording with no audio."""

    session_id: str
    agent_id: int
    device_id: str  # the agent's phone, or "" when they have none
    start_time: float
    core_ident: int
    meta: Mapping[str, str] = field(default_factory=dict)  # METADATA_FIELDS name -> value
