"""The shared store: recordings, the directory, the audit trail, bookmarks, tokens and file
keys in a PostgreSQL database that several recorder servers may share.

``PgStore`` is ``SqliteStore``'s methods (their SQL is the one both engines take, rewritten
where the spelling differs by ``pg_conn.dialect``) on ``PgConnection``'s pool, with the
methods whose SQL is PostgreSQL's own overridden here: where RECORDIDs come from (a sequence,
which no two servers share a value of), the directory's version, the audit trail's writer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.store.pg_conn import PgConnection, PgSession
from recorder.store.records import NewRecording, RecordingQuery
from recorder.store.sqlite import SqliteStore
from recorder.store.sqlite_audit import HeadSink

# The audit chain has one writer at a time across every server sharing the database: an
# advisory lock of the transaction that appends (the file lock beside SQLite's database only
# covers one machine).
AUDIT_WRITER_LOCK = 0x61756469  # "audi"
_SEQUENCE = "recordings_ident_seq"


class PgStore(PgConnection, SqliteStore):  # type: ignore[misc]  # one connection, two bases
    """Recording rows and the rest of the store in a PostgreSQL database."""

    def __init__(self, conninfo: str, data_dir: Path, *, password_file: str = "",
                 pool_size: int = 8) -> None:
        PgConnection.__init__(self, conninfo, data_dir, password_file=password_file,
                              pool_size=pool_size)
        # What SqliteRoles and SqliteAudit set up beside their connection.
        self._directory_changes = 0
        self._audit_lock = threading.Lock()
        self._head_sinks: list[HeadSink] = []

    def insert_recording(self, rec: NewRecording, ident: int | None = None) -> int:
        stored = SqliteStore.insert_recording(self, rec, ident)
        if ident is not None:
            # Stored under a RECORDID handed out earlier (the spool's, taken from the
            # sequence): the sequence stays ahead of every RECORDID stored, as SQLite's does.
            with self._db("insert recording") as conn:
                conn.execute(f"SELECT setval('{_SEQUENCE}', greatest(?, (SELECT last_value"
                             f" FROM {_SEQUENCE})))", (ident,))
        return stored

    def calllist_fields(self, query: RecordingQuery,
                        now: float) -> list[tuple[str, ...]] | None:
        # SQLite's text of it counts a call in progress to "now" through a numbered parameter
        # (?1) used four times, which psycopg has no spelling for: the API maps the rows.
        return None

    def max_recording_id(self) -> int:
        with self._db("highest RECORDID") as conn:
            row = conn.execute(
                f"SELECT greatest((SELECT CASE WHEN is_called THEN last_value ELSE 0 END"
                f" FROM {_SEQUENCE}), (SELECT coalesce(max(ident), 0) FROM recordings))"
            ).fetchone()
        return int(row[0]) if row is not None else 0

    def reserve_recording_ids(self, count: int) -> list[int]:
        """``count`` RECORDIDs taken from the sequence now, for the spool to hand out while
        the database is away: no other server (nor this one) is given them again."""
        with self._db("reserve RECORDIDs") as conn:
            rows = conn.execute(f"SELECT nextval('{_SEQUENCE}') FROM generate_series(1, ?)",
                                (count,)).fetchall()
        return sorted(int(r[0]) for r in rows)

    def directory_version(self, *, wait: bool = True) -> tuple[int, int] | None:
        """Changes with every write to the directory: this store's own (counted), and any
        server's commit (the position of the database's write-ahead log, which every commit
        moves, whatever it changed, as SQLite's ``data_version``)."""
        del wait  # the pool has a connection for an event loop's caller too
        with self._db("read the directory's version") as conn:
            row = conn.execute("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
                               ).fetchone()
        return self._directory_changes, int(row[0]) if row is not None else 0

    # PgSession takes the store's SQL as the sqlite3.Connection the shared methods are typed
    # with does: the same calls, duck-typed.
    @contextmanager
    def _tx(self, what: str) -> Iterator[PgSession]:  # type: ignore[override]
        with PgConnection._tx(self, what) as conn:
            if what.startswith("audit "):
                # append_batch's transaction (its name): chained after the newest entry of
                # whichever server appended last.
                conn.execute("SELECT pg_advisory_xact_lock(?)", (AUDIT_WRITER_LOCK,))
            yield conn


__all__ = ["PgStore"]
