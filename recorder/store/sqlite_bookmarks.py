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
