"""The store the configuration asks for, opened: its recordings behind the outage spool, and
its directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from recorder.config.sections import StorageConfig
from recorder.errors import StoreConfigError, StoreError
from recorder.store.audit import AuditEntry, AuditStore
from recorder.store.bookmarks import BookmarkStore
from recorder.store.directory import DirectoryStore
from recorder.store.evidence import EvidenceStore
from recorder.store.filekeys import FileKeyStore
from recorder.store.recordings import RecordingStore
from recorder.store.sealing import AUDIT_SEAL_KEY, Sealing
from recorder.store.sealkey import SealKeyError, load_seal_key
from recorder.store.spool import SpoolingStore
from recorder.store.sqlite import SqliteStore
from recorder.store.tokens import TokenStore

logger = logging.getLogger(__name__)

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
                 file_keys: FileKeyStore | None = None, sealing: Sealing | None = None) -> None:
        self.recordings = recordings
        self.directory = directory
        # Tests build a Store from parts; one without these audits nowhere, bookmarks nothing.
        self.audit = audit
        self.bookmarks = bookmarks
        # The rows' seals and the audit chain as the checks read them (docs/storage.md).
        self.evidence = evidence
        self.tokens = tokens  # None: no token is accepted
        self.file_keys = file_keys  # encrypted recordings' wrapped keys (key rotation)
        self.sealing = sealing  # plain or keyed seals (storage.seal_key_file)

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


def open_store(config: StorageConfig, *, offline: bool = False,
               seal_key_file: str | None = None) -> Store:
    """The store the config asks for (SQLite in the data directory, or the PostgreSQL
    database of ``storage.database``), opened, its
    recordings behind the outage spool (``recorder.store.spool``, in
    ``<data_dir>/store-spool.jsonl``), sealing with ``storage.seal_key_file`` (or
    ``seal_key_file``) when set.

    recorderd takes the seal key into use (``_take_seal_key``) and refuses to open a store
    sealed with a key it lacks. ``offline`` (recorderctl's commands) does neither: without the
    key such a store refuses only the seals a command would add."""
    database = _database(config)
    # Before the open: the spool replays its waiting changes then, sealing them.
    database.sealing = _sealing(config.seal_key_file if seal_key_file is None
                                else seal_key_file, offline)
    recordings = SpoolingStore(database, config.spool_path, config.spool_retry_seconds)
    recordings.open()
    if not offline:
        try:
            _take_seal_key(database)
        except BaseException:
            recordings.close()
            raise
    return Store(recordings, database, audit=database, bookmarks=database, evidence=database,
                 tokens=database, file_keys=database, sealing=database.sealing)


def _database(config: StorageConfig) -> SqliteStore:
    """The database storage.database names: PostgreSQL, or else SQLite in data_dir."""
    if not config.database:
        return SqliteStore(config.database_path, BUSY_TIMEOUT_SECONDS)
    try:
        from recorder.store.pg import PgStore  # noqa: PLC0415 - psycopg is an optional extra
    except ImportError as exc:
        raise StoreError("storage.database names a PostgreSQL database, and psycopg is not "
                         f"installed (pip install 'recorder[postgresql]'): {exc}") from exc
    return PgStore(config.database, config.data_dir,
                   password_file=config.database_password_file,
                   pool_size=config.database_pool_size)


def _sealing(path: str, offline: bool) -> Sealing:
    if not path:
        return Sealing(missing="storage.seal_key_file is not set")
    try:
        key = load_seal_key(Path(path))
    except SealKeyError as exc:
        if not offline:
            raise StoreError(f"storage.seal_key_file: {exc}") from exc
        return Sealing(missing=f"it cannot be read here: {exc}")
    return Sealing(key, active=not offline)


def _take_seal_key(database: SqliteStore) -> None:
    """recorderd's: a store not sealed with the key yet is from now on (its rows whose seal
    still matches re-sealed with the key, then an audit entry, keyed, saying so); one sealed
    with a key already must be sealed with this one."""
    key = database.sealing.key
    state = database.seal_state()
    if key is None:
        if state.keyed:
            which = f" ({state.key_id})" if state.key_id else ""
            raise StoreConfigError(
                f"this data directory's evidence is sealed with a seal key{which}; set "
                "storage.seal_key_file: recorderd adds no unkeyed seal to it")
        return
    if state.keyed:
        if state.key_id is not None and state.key_id != key.id:
            raise StoreConfigError(f"storage.seal_key_file: seal key {key.id} is not the one this "
                                   f"data directory is sealed with ({state.key_id}, since audit "
                                   f"entry {state.since_entry})")
        logger.info("evidence sealed with seal key %s", key.id)
        return
    resealed = database.reseal_with_key(key.secret)
    database.append_audit(AuditEntry(
        time=time.time(), user_id=None, username="", action=AUDIT_SEAL_KEY, target=key.id,
        detail=f"recorderd: recordings and audit entries sealed with seal key {key.id} from "
        f"here on; {resealed} recording(s) re-sealed", address="local"))
    logger.warning("took seal key %s into use: %d recording(s) re-sealed with it; the "
                   "evidence can only be checked with it from now on", key.id, resealed)
