"""Wrapped file keys in SQLite: the ``file_key`` column of ``recordings`` (schema 7)."""

from __future__ import annotations

from recorder.store.filekeys import FileKeyStore
from recorder.store.sqlite_conn import SqliteConnection


class SqliteFileKeys(SqliteConnection, FileKeyStore):
    def file_keys(self) -> list[tuple[int, str, str]]:
        with self._db("wrapped file keys") as conn:
            rows = conn.execute("SELECT ident, filename, file_key FROM recordings"
                                " WHERE file_key != '' ORDER BY ident").fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def file_key(self, ident: int) -> str:
        with self._db(f"wrapped file key of recording {ident}") as conn:
            row = conn.execute("SELECT file_key FROM recordings WHERE ident = ?",
                               (ident,)).fetchone()
        return str(row[0]) if row is not None else ""

    def set_file_key(self, ident: int, wrapped: str, *, was: str | None = None) -> bool:
        with self._db(f"wrapped file key of recording {ident}") as conn:
            if was is None:
                changed = conn.execute("UPDATE recordings SET file_key = ? WHERE ident = ?",
                                       (wrapped, ident)).rowcount
            else:
                changed = conn.execute("UPDATE recordings SET file_key = ? WHERE ident = ?"
                                       " AND file_key = ?", (wrapped, ident, was)).rowcount
        return bool(changed)
