"""The recording store: the only package that knows SQL or which database is in use."""

from __future__ import annotations

from recorder.config import StorageConfig
from recorder.store.base import (
    FILTER_FIELDS,
    METADATA_FIELDS,
    USER_FIELDS,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
    Store,
)
from recorder.store.sqlite import SqliteStore


def open_store(config: StorageConfig) -> Store:
    """The store the config asks for (today: SQLite in the data directory), opened."""
    store = SqliteStore(config.database_path)
    store.open()
    return store


__all__ = [
    "FILTER_FIELDS",
    "METADATA_FIELDS",
    "USER_FIELDS",
    "FinishedRecording",
    "NewRecording",
    "RecordingQuery",
    "RecordingRow",
    "RecordingUpdate",
    "Store",
    "open_store",
]
