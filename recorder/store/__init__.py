"""The recording store: the only package that knows SQL or which database is in use."""

from __future__ import annotations

from recorder.config import StorageConfig
from recorder.store.base import (
    FILTER_FIELDS,
    METADATA_FIELDS,
    TYPE_AUDIO,
    TYPE_SCREEN,
    USER_FIELDS,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
    Store,
)
from recorder.store.directory import (
    USER_ACTIVE,
    USER_INACTIVE,
    AgentWindow,
    ChatStart,
    DirectoryConflict,
    GroupRow,
    PhoneInUse,
    RoleRow,
    StationRow,
    UserExists,
    UserFields,
    UserQuery,
    UserRow,
)
from recorder.store.passwords import hash_password, verify_password
from recorder.store.spool import SpoolingStore
from recorder.store.sqlite import SqliteStore

# With the spool behind it, a write that meets another process's lock need not wait long: it is
# spooled and replayed later, while a call start waiting on it would be answered late.
BUSY_TIMEOUT_SECONDS = 1.0


def open_store(config: StorageConfig) -> Store:
    """The store the config asks for (today: SQLite in the data directory), opened, behind the
    outage spool (``recorder.store.spool``, in ``<data_dir>/store-spool.jsonl``)."""
    store = SpoolingStore(SqliteStore(config.database_path, BUSY_TIMEOUT_SECONDS),
                          config.spool_path, config.spool_retry_seconds)
    store.open()
    return store


__all__ = [
    "FILTER_FIELDS",
    "METADATA_FIELDS",
    "TYPE_AUDIO",
    "TYPE_SCREEN",
    "USER_ACTIVE",
    "USER_FIELDS",
    "USER_INACTIVE",
    "AgentWindow",
    "ChatStart",
    "DirectoryConflict",
    "FinishedRecording",
    "GroupRow",
    "NewRecording",
    "PhoneInUse",
    "RecordingQuery",
    "RecordingRow",
    "RecordingUpdate",
    "RoleRow",
    "SpoolingStore",
    "SqliteStore",
    "StationRow",
    "Store",
    "UserExists",
    "UserFields",
    "UserQuery",
    "UserRow",
    "hash_password",
    "open_store",
    "verify_password",
]
