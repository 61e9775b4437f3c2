"""The SQLite connection behind the store: opening, schema migrations, locking, transactions."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recorder.errors import StoreError
from recorder.store.schema import MIGRATIONS, SCHEMA_VERSION, Step
from recorder.store.sealing import Sealing

logger = logging.getLogger(__name__)


def casefold(value: str | None) -> str | None:
    """Names are matched the way their Windows and directory sources match them: ignoring case.

    Registered as the SQL function ``casefold`` because SQLite's own NOCASE and lower() only
    fold ASCII, and a directory holds names like "Zoë" and "ÉRIC".
    """
    return value.casefold() if isinstance(value, str) else value


class SqliteConnection:
    """One connection shared under a lock (WAL, fully synchronous)."""

    backend = "sqlite"

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        self.path = path
        # How long a statement waits for another connection's write lock before it fails.
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._errors = 0
        self._errors_lock = threading.Lock()
        # A schema step with a Python part ran at open (the evidence's: its audit head is
        # written once the store is open).
        self.stepped = False
        # Plain or keyed seals (storage.seal_key_file): open_store sets it before opening.
        self.sealing = Sealing()

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def errors(self) -> int:
        """StoreErrors raised since the store was made, whoever called (for the metrics)."""
        return self._errors

    def _failed(self) -> None:
        with self._errors_lock:
            self._errors += 1

    def open(self) -> None:
        try:
            self._open()
        except StoreError:
            self._failed()
            raise

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {round(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            # A recording's row must survive a power cut once CALLSTART/CALLSTOP has answered.
            conn.execute("PRAGMA synchronous = FULL")
            conn.create_function("casefold", 1, casefold, deterministic=True)
            self._migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        self._conn = conn
        logger.info("store: SQLite database %s (schema %d)", self.path, SCHEMA_VERSION)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema {version}, newer than this recorder's "
                f"{SCHEMA_VERSION}; upgrade the recorder or restore a matching backup"
            )
        if version == 0 and SCHEMA_VERSION:
            # A new database is built by the same steps as an upgrade (one history for both),
            # but it is not an upgrade: one line says what happened.
            logger.info("store: creating %s at schema %d", self.path, SCHEMA_VERSION)
        for step in range(version, SCHEMA_VERSION):
            if version:
                logger.info("store: upgrading %s from schema %d to %d", self.path, step,
                            step + 1)
            # executescript() commits whatever is pending before it runs, so the transaction
            # that makes each step all-or-nothing has to be part of the script itself.
            migration = MIGRATIONS[step]
            try:
                if isinstance(migration, Step):
                    # The script leaves its transaction open for the Python part to finish.
                    conn.executescript(f"BEGIN;\n{migration.script}")
                    key = self.sealing.key
                    migration.then(conn, key.secret if key is not None else None)
                    self.stepped = True
                    conn.execute(f"PRAGMA user_version = {step + 1}")
                    conn.execute("COMMIT")
                else:
                    conn.executescript(
                        f"BEGIN;\n{migration}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
            except BaseException:
                # (A step's Python part may refuse too: StoreError.)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _db(self, what: str) -> Iterator[sqlite3.Connection]:
        # Every StoreError leaving a query is counted here, whether SQLite raised it or the
        # code inside the block did (every query of the store goes through this).
        try:
            with self._lock:
                yield self._locked(what)
        except sqlite3.Error as exc:
            self._failed()
            raise StoreError(f"{what}: {exc}") from exc
        except StoreError:
            self._failed()
            raise

    @contextmanager
    def _db_now(self, what: str) -> Iterator[sqlite3.Connection | None]:
        """``_db``, or None at once if another thread holds the connection (for a caller on
        an event loop, which has a slower way)."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self._locked(what)
        except sqlite3.Error as exc:
            self._failed()
            raise StoreError(f"{what}: {exc}") from exc
        except StoreError:
            self._failed()
            raise
        finally:
            self._lock.release()

    def _locked(self, what: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{what}: the store is not open")
        return self._conn

    @contextmanager
    def _tx(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything in it happens, or (on any exception) nothing."""
        with self._db(what) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:  # SQLite ends some failed transactions by itself
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")


def fold(value: str) -> str:
    """A name as the store compares it: without case (what the SQL function casefold does)."""
    return value.casefold()


def rowid(cursor: sqlite3.Cursor, what: str) -> int:
    if cursor.lastrowid is None:
        raise StoreError(f"{what}: no row id assigned")
    return cursor.lastrowid


def set_pair(conn: sqlite3.Connection, table: str, columns: tuple[str, str],
              values: tuple[Any, Any], present: bool) -> bool:
    """Make the row (a, b) of a two-column link table present or absent; True if it changed."""
    if present:
        cursor = conn.execute(f"INSERT INTO {table} ({columns[0]}, {columns[1]}) VALUES (?, ?)"
                              " ON CONFLICT DO NOTHING", values)
    else:
        cursor = conn.execute(f"DELETE FROM {table} WHERE {columns[0]} = ? AND {columns[1]} = ?",
                              values)
    return cursor.rowcount > 0
