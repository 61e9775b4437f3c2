"""Bookmarks in SQLite: table ``bookmarks`` (schema 6)."""

from __future__ import annotations

from recorder.store.bookmarks import Bookmark, BookmarkStore
from recorder.store.sqlite_conn import SqliteConnection, rowid


class SqliteBookmarks(SqliteConnection, BookmarkStore):
    def add_bookmark(self, bookmark: Bookmark) -> int:
        with self._db(f"bookmark recording {bookmark.ident}") as conn:
            cursor = conn.execute(
                "INSERT INTO bookmarks (ident, user_id, username, offset_seconds, comment, time)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (bookmark.ident, bookmark.user_id, bookmark.username, bookmark.offset,
                 bookmark.comment, bookmark.time))
            return rowid(cursor, "bookmark")

    def list_bookmarks(self, ident: int) -> list[Bookmark]:
        with self._db(f"bookmarks of recording {ident}") as conn:
            rows = conn.execute(
                "SELECT bookmark_id, ident, user_id, username, offset_seconds, comment, time"
                " FROM bookmarks WHERE ident = ? ORDER BY offset_seconds, bookmark_id",
                (ident,)).fetchall()
        return [Bookmark(ident=r[1], user_id=r[2], username=r[3], offset=r[4], comment=r[5],
                         time=r[6], bookmark_id=r[0]) for r in rows]

    def get_bookmark(self, ident: int, bookmark_id: int) -> Bookmark | None:
        with self._db(f"bookmark {bookmark_id} of recording {ident}") as conn:
            r = conn.execute(
                "SELECT bookmark_id, ident, user_id, username, offset_seconds, comment, time"
                " FROM bookmarks WHERE ident = ? AND bookmark_id = ?",
                (ident, bookmark_id)).fetchone()
        return None if r is None else Bookmark(ident=r[1], user_id=r[2], username=r[3],
                                               offset=r[4], comment=r[5], time=r[6],
                                               bookmark_id=r[0])

    def change_bookmark(self, ident: int, bookmark_id: int, comment: str | None) -> bool:
        with self._db(f"change bookmark {bookmark_id} of recording {ident}") as conn:
            if comment is None:
                cursor = conn.execute("DELETE FROM bookmarks WHERE ident = ? AND bookmark_id = ?",
                                      (ident, bookmark_id))
            else:
                cursor = conn.execute("UPDATE bookmarks SET comment = ? WHERE ident = ?"
                                      " AND bookmark_id = ?", (comment, ident, bookmark_id))
            return cursor.rowcount > 0
