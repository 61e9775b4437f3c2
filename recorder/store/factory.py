"""The store the configuration asks for, opened: its recordings behind the outage spool, and
its directory."""

from __future__ import annotations

from recorder.config.sections import StorageConfig
from recorder.store.audit import AuditStore
from recorder.store.bookmarks import BookmarkStore
from recorder.store.directory import DirectoryStore
from recorder.store.evidence import EvidenceStore
from recorder.store.filekeys import FileKeyStore
from recorder.store.recordings import RecordingStore
from recorder.store.spool import SpoolingStore
from recorder.store.sqlite import SqliteStore
from recorder.store.tokens import TokenStore

# With the spool behind it, a write that meets another process's lock need not wait long: it is
# spooled and replayed later, while a call start waiting on it would be answered late.
BUSY_TIMEOUT_SECONDS = 1.0


class Store:
    """One database, seen as its parts: ``recordings`` (rows of recordings and chat
    sessions; their writes wait in the spool while the database is away), ``directory``
    (users, phones, stations, groups, roles, agent windows; straight to the database) and
    ``audit`` (the append-only audit trail), ``bookmarks`` (the portal's) and ``tokens`` (the
    WebAPI's bearer tokens; all three straight to the database)."""

    def __init__(self, recordings: RecordingStore, directory: DirectoryStore,
                 audit: AuditStore | None = None, bookmarks: BookmarkStore | None = None, *,
                 evidence: EvidenceStore | None = None,
                 tokens: TokenStore | None = None,
                 file_keys: FileKeyStore | None = None) -> None:
        self.recordings = recordings
        self.directory = directory
        # Tests build a Store from parts; one without these audits nowhere, bookmarks nothing.
        self.audit = audit
        self.bookmarks = bookmarks
        # The rows' seals and the audit chain as the checks read them (docs/storage.md).
        self.evidence = evidence
        self.tokens = tokens  # None: no token is accepted
        self.file_keys = file_keys  # encrypted recordings' wrapped keys (key rotation)

    @property
    def backend(self) -> str:
        return self.recordings.backend

    @property
    def location(self) -> str:
        return self.recordings.location

    @property
    def errors(self) -> int:
        return self.recordings.errors

    def close(self) -> None:
        """Close the database (both parts share one connection)."""
        self.recordings.close()


def open_store(config: StorageConfig) -> Store:
    """The store the config asks for (today: SQLite in the data directory), opened, its
    recordings behind the outage spool (``recorder.store.spool``, in
    ``<data_dir>/store-spool.jsonl``)."""
    database = SqliteStore(config.database_path, BUSY_TIMEOUT_SECONDS)
    recordings = SpoolingStore(database, config.spool_path, config.spool_retry_seconds)
    recordings.open()
    return Store(recordings, database, audit=database, bookmarks=database, evidence=database,
                 tokens=database, file_keys=database)
