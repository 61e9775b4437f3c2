"""The PostgreSQL connection behind the store: a psycopg 3 connection pool, schema migrations
(the same versions as SQLite's, ``pg_schema``), transactions, and the dialect.

The store's queries are written once, in the SQL both engines share; ``PgSession`` runs them on
PostgreSQL, rewriting the few spellings that differ (``dialect``). A query whose PostgreSQL
text differs beyond that lives in the ``pg_*`` module that overrides its method.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from recorder.errors import StoreError
from recorder.store.pg_schema import PG_MIGRATIONS, PgStep
from recorder.store.schema import SCHEMA_VERSION
from recorder.store.sealing import Sealing

logger = logging.getLogger(__name__)

# Every table whose rows get a number from a sequence, and that number's column: an INSERT into
# one returns it (what SQLite's lastrowid gives).
ID_COLUMNS = {"recordings": "ident", "users": "user_id", "agent_groups": "group_id",
              "roles": "role_id", "bookmarks": "bookmark_id", "api_tokens": "token_id",
              "audit": "entry_id", "stations": "rowid", "agent_phones": "rowid",
              "agent_windows": "rowid"}
# Migrations and the schema's version are changed under this advisory lock: several recorder
# servers may start at once against one database.
MIGRATION_LOCK = 0x7265636F  # "reco"
# How long a request waits for a free connection of the pool, or for a new one to connect.
CONNECT_TIMEOUT_SECONDS = 5.0

_PLACEHOLDER = re.compile(r"\?")
# SQLite's "+col" keeps a column's index out of a query's plan; PostgreSQL has no unary plus
# for text, and its planner has statistics, so the term is written plainly.
_UNARY_PLUS = re.compile(r"(^|[\s(,])\+(r\.\w+)")
_SEQUENCE = re.compile(r"SELECT seq FROM sqlite_sequence WHERE name = '(\w+)'")
# SQLite's max() of several values is PostgreSQL's greatest() (max of one is the aggregate).
_SCALAR_MAX = re.compile(r"\bmax\(([^(),]+),", re.IGNORECASE)
_INSERT = re.compile(r"^\s*INSERT INTO (\w+)", re.IGNORECASE)
_ONLY = re.compile(r"\bonly\b")
# Statements of a migration's Python part whose PostgreSQL text is another (evidence_schema).
_EQUIVALENTS = {
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit\n"
    "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END":
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW"
    " EXECUTE FUNCTION audit_append_only()",
}


@lru_cache(maxsize=2048)
def dialect(sql: str) -> tuple[str, str | None]:
    """``sql`` as PostgreSQL takes it, and the id column an INSERT of it returns (or None)."""
    if sql in _EQUIVALENTS:
        return _EQUIVALENTS[sql], None
    text = _SEQUENCE.sub(lambda m: f"SELECT last_value FROM {m[1]}_{ID_COLUMNS[m[1]]}_seq"
                         " WHERE is_called", sql)
    text = _UNARY_PLUS.sub(r"\1\2", text)
    text = _SCALAR_MAX.sub(r"greatest(\1,", text)
    text = text.replace(" IS NOT ?", " IS DISTINCT FROM ?")
    if "audit_anchor" in text:
        text = _ONLY.sub('"only"', text)  # a reserved word in PostgreSQL
    text = _PLACEHOLDER.sub("%s", text.replace("%", "%%"))
    returning = None
    insert = _INSERT.match(text)
    if insert and insert[1] in ID_COLUMNS and "RETURNING" not in text.upper():
        returning = ID_COLUMNS[insert[1]]
        text += f" RETURNING {returning}"
    return text, returning


class PgCursor:
    """What the store's code reads of a statement's result (the sqlite3 cursor's part)."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]], returning: str | None) -> None:
        self._cursor = cursor
        self.lastrowid: int | None = None
        self.rowcount = cursor.rowcount
        if returning is not None:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row is not None else None

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone() if self._cursor.description is not None else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall() if self._cursor.description is not None else []

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgSession:
    """One pooled connection (autocommit; ``_tx`` opens its transactions) that takes the
    store's SQL as the sqlite3 connection does: ``execute``, ``executemany``,
    ``in_transaction``."""

    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self.conn = conn

    @property
    def in_transaction(self) -> bool:
        return self.conn.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PgCursor:
        text, returning = dialect(sql)
        cursor = self.conn.cursor()
        cursor.execute(text, tuple(params))
        return PgCursor(cursor, returning)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        text, _ = dialect(sql)
        if " RETURNING " in text:
            text = text[:text.rindex(" RETURNING ")]
        batch = [tuple(r) for r in rows]
        if batch:
            with self.conn.cursor() as cursor:
                cursor.executemany(text, batch)


def redacted(conninfo: str) -> str:
    """The database as it may be logged and shown: its libpq parameters but any password."""
    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "(a PostgreSQL database)"
    params.pop("password", None)
    host, port, dbname, user = (str(params.get(name, "")) for name in
                                ("host", "port", "dbname", "user"))
    return f"postgresql://{user + '@' if user else ''}{host}{':' + str(port) if port else ''}" \
           f"/{dbname}"


class PgConnection:
    """A pool of connections to one PostgreSQL database (the SqliteConnection's part)."""

    backend = "postgresql"

    def __init__(self, conninfo: str, data_dir: Path, *, password_file: str = "",
                 pool_size: int = 8) -> None:
        self.conninfo = conninfo
        self.password_file = password_file
        self.pool_size = pool_size
        # The files that stay beside the recordings (the audit head, its writer's lock) are
        # named from this path, as they are from the SQLite file's.
        self.path = data_dir / "postgresql"
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] | None = None
        self._errors = 0
        self._errors_lock = threading.Lock()
        self.stepped = False
        self.sealing = Sealing()

    @property
    def location(self) -> str:
        return redacted(self.conninfo)

    @property
    def errors(self) -> int:
        return self._errors

    def _failed(self) -> None:
        with self._errors_lock:
            self._errors += 1

    def _password(self) -> dict[str, str]:
        if not self.password_file:
            return {}
        try:
            secret = Path(self.password_file).read_text(encoding="utf-8").strip("\r\n")
        except OSError as exc:
            raise StoreError(f"storage.database_password_file: cannot read "
                             f"{self.password_file}: {exc.strerror}") from exc
        return {"password": secret}

    def open(self) -> None:
        try:
            self._open()
        except StoreError:
            self._failed()
            raise

    def _open(self) -> None:
        conninfo = make_conninfo(self.conninfo, connect_timeout=int(CONNECT_TIMEOUT_SECONDS),
                                 application_name="recorderd", **self._password())
        pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo, min_size=1, max_size=self.pool_size, open=False,
            kwargs={"autocommit": True}, timeout=CONNECT_TIMEOUT_SECONDS,
            check=ConnectionPool.check_connection, name="recorder-store",
            # A server that is down: each attempt to reconnect fails fast and the pool tries
            # again, while the spool holds the rows.
            reconnect_timeout=0)
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_SECONDS)
            with pool.connection() as conn:
                self._migrate(PgSession(conn))
        except (psycopg.Error, PoolTimeout) as exc:
            pool.close()
            raise StoreError(f"cannot open database {self.location}: {exc}") from exc
        except BaseException:
            pool.close()
            raise
        self._pool = pool
        logger.info("store: PostgreSQL database %s (schema %d)", self.location, SCHEMA_VERSION)

    def _migrate(self, session: PgSession) -> None:
        session.execute("BEGIN")
        session.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
        # PRAGMA user_version's counterpart; and casefold(), which SQLite has from Python:
        # Unicode's lower case whatever the database's locale (ICU's root collation), so
        # "Zoë" and "ZOË" are one name on both engines.
        session.execute("CREATE TABLE IF NOT EXISTS recorder_schema"
                        " (version INTEGER NOT NULL)")
        session.execute("CREATE OR REPLACE FUNCTION casefold(name TEXT) RETURNS TEXT"
                        " LANGUAGE sql IMMUTABLE PARALLEL SAFE"
                        " AS $$ SELECT lower(name COLLATE \"und-x-icu\") $$")
        session.execute("COMMIT")
        found: int | None = None
        for step in range(SCHEMA_VERSION):
            session.execute("BEGIN")
            try:
                session.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
                version = self._version(session)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"database {self.location} has schema {version}, newer than this "
                        f"recorder's {SCHEMA_VERSION}; upgrade the recorder")
                if version > step:  # done already, by us or by another server
                    session.execute("COMMIT")
                    continue
                found = version if found is None else found
                if found == 0:
                    if version == 0:
                        logger.info("store: creating %s at schema %d", self.location,
                                    SCHEMA_VERSION)
                else:
                    logger.info("store: upgrading %s from schema %d to %d", self.location,
                                step, step + 1)
                migration = PG_MIGRATIONS[step]
                script = migration.script if isinstance(migration, PgStep) else migration
                if script.strip():
                    session.conn.execute(script.encode())  # several statements, no parameters
                if isinstance(migration, PgStep):
                    key = self.sealing.key
                    migration.then(session, key.secret if key is not None else None)
                    self.stepped = True
                session.execute("DELETE FROM recorder_schema")
                session.execute("INSERT INTO recorder_schema (version) VALUES (?)",
                                (step + 1,))
                session.execute("COMMIT")
            except BaseException:
                if session.in_transaction:
                    session.conn.rollback()
                raise

    @staticmethod
    def _version(session: PgSession) -> int:
        row = session.execute("SELECT max(version) FROM recorder_schema").fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @contextmanager
    def _db(self, what: str) -> Iterator[PgSession]:
        pool = self._pool
        if pool is None:
            self._failed()
            raise StoreError(f"{what}: the store is not open")
        try:
            with pool.connection() as conn:
                yield PgSession(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            self._failed()
            raise StoreError(f"{what}: {str(exc).strip()}") from exc
        except StoreError:
            self._failed()
            raise

    @contextmanager
    def _db_now(self, what: str) -> Iterator[PgSession | None]:
        """``_db``: a pool never keeps a caller on an event loop waiting on another thread's
        query (it waits for the server, as any read does)."""
        with self._db(what) as session:
            yield session

    @contextmanager
    def _tx(self, what: str) -> Iterator[PgSession]:
        """A write transaction: everything in it happens, or (on any exception) nothing."""
        with self._db(what) as session:
            session.execute("BEGIN")
            try:
                yield session
            except BaseException:
                if session.in_transaction and not session.conn.closed:
                    session.conn.rollback()
                raise
            session.execute("COMMIT")


__all__ = ["ID_COLUMNS", "PgConnection", "PgCursor", "PgSession", "dialect", "redacted"]
