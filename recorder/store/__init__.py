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
from recorder.store.sqlite import SqliteStore


def open_store(config: StorageConfig) -> Store:
    """The store the config asks for (today: SQLite in the data directory), opened."""
    store = SqliteStore(config.database_path)
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
