"""The database schema, one script per ``PRAGMA user_version``.

Version 1 is the recordings table: every column the manual lists under UNIQUEFIELD, plus the
recorder's own. Column names are the manual's (lower case), so EXPORT's UNIQUEFIELD can name them
directly. Version 2 adds the directory: users and their phones, workstations, groups, roles and
permissions, chat sessions and agent windows. Version 3 adds retention: when a recording's files
were purged (the row itself stays). Version 4 adds indexes for CALLLIST's selective filters,
version 5 for the rest of them (USER1-USER15, GROUP, GATE, DNIS). Version 6 adds the audit
trail (the portal's sign-ins, searches, plays, downloads and deletes), append-only, and the
portal's bookmarks. Version 7 adds the evidence that nothing was changed (``evidence_schema``):
each complete recording's row sealed, the audit trail made a hash chain with a purge anchor.
Version 8 adds the WebAPI's bearer tokens (hashed). Version 9 keeps a complete recording's
blackouts (the portal marks them on its player): only the silenced audio showed them before.
Version 10 adds an encrypted recording's wrapped file key to its row (docs/encryption.md;
empty for a recording in clear). Version 11 makes a row's seal cover its blackout marks
(``recorder-row/2``): rows whose ``recorder-row/1`` seal still matches are sealed again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recorder.store.evidence_schema import (
    CREATE_EVIDENCE,
    CREATE_MARKS_SEALED,
    migrate_evidence,
    reseal_with_marks,
)
from recorder.store.records import FILTER_FIELDS, METADATA_FIELDS

SCHEMA_VERSION = 11

# API field name -> column, for the call metadata a recording keeps: the lower-case name, but
# where the manual's table spells the column otherwise.
_RENAMED = {"DEVICEID": "device_id", "DEVICEALIAS": "device_alias", "STATIONNAME": "station",
            "GROUP": "sgroup"}
META_COLUMNS: dict[str, str] = {f: _RENAMED.get(f, f.lower()) for f in METADATA_FIELDS}
FILTER_COLUMNS: dict[str, str] = {f: _RENAMED.get(f, f.lower()) for f in FILTER_FIELDS}

# The manual's UNIQUEFIELD list, in its order.
MANUAL_COLUMNS: tuple[str, ...] = (
    "agent_id", "ani", "archive_action_id", "audio_hash", "audio_size",
    "calldirection", "callid", "channel", "device_alias", "device_id",
    "dnis", "duration", "filename", "filename_video", "gate",
    "globalid", "ident", "keepdays", "locked", "listenedto",
    "medialabel", "overridden", "priority", "qa_forms", "qa_group_id",
    "qa_poss_score", "qa_score", "recording_time", "recording_type", "screen_capture",
    "sgroup", "user1", "user2", "user3", "user4",
    "user5", "user6", "user7", "user8", "user9",
    "user10", "user11", "user12", "user13", "user14",
    "user15", "video_hash", "video_size", "wrap_duration",
)

_USER_COLUMNS = ",\n".join(f"    user{i} TEXT NOT NULL DEFAULT ''" for i in range(1, 16))

CREATE_V1 = f"""
CREATE TABLE recordings (
    ident INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id INTEGER,
    ani TEXT NOT NULL DEFAULT '',
    archive_action_id INTEGER,
    audio_hash TEXT,
    audio_size INTEGER,
    calldirection TEXT NOT NULL DEFAULT '',
    callid TEXT NOT NULL DEFAULT '',
    channel INTEGER,
    device_alias TEXT NOT NULL DEFAULT '',
    device_id TEXT NOT NULL,
    dnis TEXT NOT NULL DEFAULT '',
    duration REAL,
    filename TEXT NOT NULL,
    filename_video TEXT NOT NULL DEFAULT '',
    gate TEXT NOT NULL DEFAULT '',
    globalid TEXT NOT NULL DEFAULT '',
    keepdays INTEGER,
    locked INTEGER NOT NULL DEFAULT 0,
    listenedto INTEGER NOT NULL DEFAULT 0,
    medialabel TEXT NOT NULL DEFAULT '',
    overridden INTEGER NOT NULL DEFAULT 0,
    priority INTEGER,
    qa_forms TEXT NOT NULL DEFAULT '',
    qa_group_id INTEGER,
    qa_poss_score REAL,
    qa_score REAL,
    recording_time INTEGER NOT NULL,
    recording_type TEXT NOT NULL DEFAULT 'audio',
    screen_capture INTEGER NOT NULL DEFAULT 0,
    sgroup TEXT NOT NULL DEFAULT '',
{_USER_COLUMNS},
    video_hash TEXT,
    video_size INTEGER,
    wrap_duration INTEGER,
    -- the recorder's own columns
    call_instance TEXT NOT NULL DEFAULT '',
    sys_user TEXT NOT NULL DEFAULT '',
    crm_user TEXT NOT NULL DEFAULT '',
    station TEXT NOT NULL DEFAULT '',
    cti_initiated TEXT NOT NULL DEFAULT '',
    agent_initiated TEXT NOT NULL DEFAULT '',
    media_format TEXT NOT NULL,
    sample_rate INTEGER NOT NULL,
    start_time REAL NOT NULL,
    stop_time REAL,
    status TEXT NOT NULL,
    stop_reason TEXT NOT NULL DEFAULT '',
    lost_samples INTEGER NOT NULL DEFAULT 0,
    core_ident INTEGER NOT NULL
);
CREATE INDEX recordings_by_time ON recordings (recording_time DESC, ident DESC);
CREATE INDEX recordings_by_device ON recordings (device_id, recording_time DESC, ident DESC);
"""

# The directory. Deleted users keep their row (the manual: so past records still identify the
# right user); "agent_groups" because GROUPS is an SQL keyword.
CREATE_V2 = """
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL DEFAULT '',
    employee_id TEXT NOT NULL DEFAULT '',
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'A',
    deleted INTEGER NOT NULL DEFAULT 0,
    add_time REAL NOT NULL,
    mod_time REAL,
    delete_time REAL,
    sys_user TEXT NOT NULL DEFAULT '',
    sys_domain TEXT NOT NULL DEFAULT '',
    email TEXT NOT NULL DEFAULT '',
    crm_user TEXT NOT NULL DEFAULT '',
    site_id INTEGER,
    password_hash TEXT,
    allow_self_record TEXT NOT NULL DEFAULT '',
    allow_self_download TEXT NOT NULL DEFAULT ''
);
CREATE TABLE agent_phones (
    phone_id TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    assigned_time REAL NOT NULL
);
CREATE INDEX agent_phones_by_user ON agent_phones (user_id);
CREATE TABLE stations (
    station_name TEXT NOT NULL,
    device_id TEXT NOT NULL,
    location_id INTEGER NOT NULL
);
CREATE TABLE agent_groups (
    group_id INTEGER PRIMARY KEY AUTOINCREMENT,
    group_name TEXT NOT NULL
);
CREATE TABLE group_users (
    group_id INTEGER NOT NULL REFERENCES agent_groups (group_id),
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    PRIMARY KEY (group_id, user_id)
);
CREATE TABLE group_devices (
    group_id INTEGER NOT NULL REFERENCES agent_groups (group_id),
    device_id TEXT NOT NULL,
    PRIMARY KEY (group_id, device_id)
);
CREATE TABLE roles (
    role_id INTEGER PRIMARY KEY AUTOINCREMENT,
    role_name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE role_groups (
    role_id INTEGER NOT NULL REFERENCES roles (role_id),
    group_id INTEGER NOT NULL REFERENCES agent_groups (group_id),
    PRIMARY KEY (role_id, group_id)
);
CREATE TABLE user_roles (
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    role_id INTEGER NOT NULL REFERENCES roles (role_id),
    PRIMARY KEY (user_id, role_id)
);
CREATE TABLE role_permissions (
    role_id INTEGER NOT NULL REFERENCES roles (role_id),
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);
CREATE TABLE chat_sessions (
    ident INTEGER PRIMARY KEY REFERENCES recordings (ident),
    session_id TEXT NOT NULL,
    open INTEGER NOT NULL
);
CREATE INDEX chat_sessions_by_session ON chat_sessions (session_id, open);
CREATE TABLE agent_windows (
    computer_name TEXT NOT NULL,
    user_name TEXT NOT NULL,
    computer_key TEXT NOT NULL,
    user_key TEXT NOT NULL,
    domain TEXT NOT NULL DEFAULT '',
    ip_address TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    application_title TEXT NOT NULL DEFAULT '',
    last_update REAL NOT NULL,
    PRIMARY KEY (computer_key, user_key)
);
CREATE INDEX recordings_by_agent ON recordings (agent_id);
"""

# Retention (recorder.rules.retention). The partial index holds only the rows a purge can still
# touch, so it shrinks as recordings are purged. It holds every column the expiry query reads
# (SQLite does not count a partial index's own WHERE columns as covered), so rows that are not due
# are rejected without reading the table.
CREATE_V3 = """
ALTER TABLE recordings ADD COLUMN purged_time REAL;
CREATE INDEX recordings_unpurged
    ON recordings (start_time, ident, keepdays, archive_action_id, purged_time, status)
    WHERE purged_time IS NULL AND status = 'complete';
-- EXPORT and EMAIL find a recording by a UNIQUEFIELD; these are the unique ones a CTI link
-- keeps (its call id, the recorder's GLOBALCALLID), so those lookups stay fast in a large store.
CREATE INDEX recordings_by_callid ON recordings (callid);
CREATE INDEX recordings_by_globalid ON recordings (globalid);
"""

# CALLLIST (benchmarks/calllist.py, BENCHMARKS.md): a filter on a value few recordings share
# (a caller, an agent, a device's alias) otherwise walks recordings_by_time from the newest row
# until it has enough matches, the whole table for a rare caller (over a second at 1,000,000
# rows). Each index leads with the filtered column and ends in CALLLIST's order, so the newest
# matches are read first and no sort is needed, with or without a date range. GROUP, GATE and
# DNIS are left out: few values, each matching many rows, so walking by time finds a page of
# them at once. USER1-USER15 are left out too: fifteen indexes on fields most sites leave empty.
# (Version 5 indexes all of those after all, partially.)
CREATE_V4 = """
CREATE INDEX recordings_by_ani ON recordings (ani, recording_time DESC, ident DESC);
CREATE INDEX recordings_by_crm_user ON recordings (crm_user, recording_time DESC, ident DESC);
CREATE INDEX recordings_by_sys_user ON recordings (sys_user, recording_time DESC, ident DESC);
CREATE INDEX recordings_by_alias ON recordings (device_alias, recording_time DESC, ident DESC);
"""

# CALLLIST's other filters (BENCHMARKS.md): without an index, USER1 = an account number walked
# the whole table (1.9 s at 1,000,000 rows), and so would a GROUP, GATE or DNIS that few
# recordings carry. Each index is partial, holding only the rows whose field is not blank: a
# field a site leaves empty costs nothing on insert or on disk. SQLite uses a partial index only
# for a query that states its WHERE itself, so the store's CALLLIST query adds "AND col != ''"
# for each such filter. Same column order as version 4's: the newest matches are read first,
# no sort, with or without a date range.
# The columns with such an index: a query filtering on one must say "col != ''" to use it.
PARTIAL_INDEXED: tuple[str, ...] = (
    *(f"user{i}" for i in range(1, 16)), "sgroup", "gate", "dnis")
# Written out, not generated from PARTIAL_INDEXED: a migration must stay what it was.
CREATE_V5 = """
CREATE INDEX recordings_by_user1
    ON recordings (user1, recording_time DESC, ident DESC) WHERE user1 != '';
CREATE INDEX recordings_by_user2
    ON recordings (user2, recording_time DESC, ident DESC) WHERE user2 != '';
CREATE INDEX recordings_by_user3
    ON recordings (user3, recording_time DESC, ident DESC) WHERE user3 != '';
CREATE INDEX recordings_by_user4
    ON recordings (user4, recording_time DESC, ident DESC) WHERE user4 != '';
CREATE INDEX recordings_by_user5
    ON recordings (user5, recording_time DESC, ident DESC) WHERE user5 != '';
CREATE INDEX recordings_by_user6
    ON recordings (user6, recording_time DESC, ident DESC) WHERE user6 != '';
CREATE INDEX recordings_by_user7
    ON recordings (user7, recording_time DESC, ident DESC) WHERE user7 != '';
CREATE INDEX recordings_by_user8
    ON recordings (user8, recording_time DESC, ident DESC) WHERE user8 != '';
CREATE INDEX recordings_by_user9
    ON recordings (user9, recording_time DESC, ident DESC) WHERE user9 != '';
CREATE INDEX recordings_by_user10
    ON recordings (user10, recording_time DESC, ident DESC) WHERE user10 != '';
CREATE INDEX recordings_by_user11
    ON recordings (user11, recording_time DESC, ident DESC) WHERE user11 != '';
CREATE INDEX recordings_by_user12
    ON recordings (user12, recording_time DESC, ident DESC) WHERE user12 != '';
CREATE INDEX recordings_by_user13
    ON recordings (user13, recording_time DESC, ident DESC) WHERE user13 != '';
CREATE INDEX recordings_by_user14
    ON recordings (user14, recording_time DESC, ident DESC) WHERE user14 != '';
CREATE INDEX recordings_by_user15
    ON recordings (user15, recording_time DESC, ident DESC) WHERE user15 != '';
CREATE INDEX recordings_by_group
    ON recordings (sgroup, recording_time DESC, ident DESC) WHERE sgroup != '';
CREATE INDEX recordings_by_gate
    ON recordings (gate, recording_time DESC, ident DESC) WHERE gate != '';
CREATE INDEX recordings_by_dnis
    ON recordings (dnis, recording_time DESC, ident DESC) WHERE dnis != '';
"""

# The audit trail (recorder.store.audit). Append-only in the database itself: the triggers
# refuse any UPDATE or DELETE, whoever runs it.
CREATE_V6 = """
CREATE TABLE audit (
    entry_id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    user_id INTEGER,
    username TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_time ON audit (time);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE bookmarks (
    bookmark_id INTEGER PRIMARY KEY AUTOINCREMENT,
    ident INTEGER NOT NULL REFERENCES recordings (ident),
    user_id INTEGER NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    offset_seconds REAL NOT NULL,
    comment TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX bookmarks_by_recording ON bookmarks (ident, offset_seconds);
"""



@dataclass(frozen=True)
class Step:
    """A migration that needs Python after its SQL (hashes SQLite cannot compute): ``then``
    runs on the connection in the same transaction as ``script``, given the seal key the
    store was opened with (bytes, or None)."""

    script: str
    then: Callable[[Any, Any], None]


# The WebAPI's bearer tokens (recorder.store.tokens): only their SHA-256 is kept; revoked ones
# stay, so the trail of who had which token is not lost.
CREATE_V8 = """
CREATE TABLE api_tokens (
    token_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (user_id),
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL DEFAULT '',
    hint TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    revoked REAL
);
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
"""

# A complete recording's blackouts, seconds from its file's first frame (written with the
# completed row; recorder.recording.completion).
CREATE_V9 = """
CREATE TABLE recording_blackouts (
    ident INTEGER NOT NULL REFERENCES recordings (ident),
    start_seconds REAL NOT NULL,
    end_seconds REAL NOT NULL
);
CREATE INDEX recording_blackouts_by_recording ON recording_blackouts (ident, start_seconds);
"""

# An encrypted recording's file key, wrapped by the master key (docs/encryption.md); not part
# of the row's seal, so a key rotation re-wraps it without touching the evidence.
CREATE_V10 = """
ALTER TABLE recordings ADD COLUMN file_key TEXT NOT NULL DEFAULT '';
"""

# MIGRATIONS[n] takes a database from version n to n + 1.
MIGRATIONS: tuple[str | Step, ...] = (CREATE_V1, CREATE_V2, CREATE_V3, CREATE_V4, CREATE_V5,
                                      CREATE_V6, Step(CREATE_EVIDENCE, migrate_evidence),
                                      CREATE_V8, CREATE_V9, CREATE_V10,
                                      Step(CREATE_MARKS_SEALED, reseal_with_marks))
