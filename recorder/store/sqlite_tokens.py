"""API tokens in SQLite: table ``api_tokens`` (schema 8), keyed by the token's hash."""

from __future__ import annotations

from recorder.store.sqlite_conn import SqliteConnection, rowid
from recorder.store.tokens import TokenRow, TokenStore, token_hash

HINT_CHARS = 8


class SqliteTokens(SqliteConnection, TokenStore):
    def add_token(self, user_id: int, token: str, label: str, *, now: float) -> int:
        with self._tx(f"add a token of user {user_id}") as conn:
            cursor = conn.execute(
                "INSERT INTO api_tokens (user_id, token_hash, label, hint, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (user_id, token_hash(token), label, token[:HINT_CHARS], now))
            return rowid(cursor, "add token")

    def list_tokens(self, user_id: int | None = None) -> list[TokenRow]:
        sql = ("SELECT t.token_id, t.user_id, COALESCE(u.username, ''), t.label, t.created,"
               " t.revoked, t.hint FROM api_tokens t LEFT JOIN users u"
               " ON u.user_id = t.user_id")
        args: tuple[int, ...] = ()
        if user_id is not None:
            sql += " WHERE t.user_id = ?"
            args = (user_id,)
        with self._db("list tokens") as conn:
            rows = conn.execute(sql + " ORDER BY t.token_id", args).fetchall()
        return [TokenRow(*row) for row in rows]

    def revoke_tokens(self, user_id: int, token_id: int | None = None, *, now: float) -> int:
        sql = "UPDATE api_tokens SET revoked = ? WHERE user_id = ? AND revoked IS NULL"
        args: tuple[float | int, ...] = (now, user_id)
        if token_id is not None:
            sql += " AND token_id = ?"
            args = (*args, token_id)
        with self._tx(f"revoke tokens of user {user_id}") as conn:
            return conn.execute(sql, args).rowcount

    def token_user(self, token: str) -> int | None:
        # A deleted user's tokens stop working with them.
        with self._db("find a token") as conn:
            row = conn.execute(
                "SELECT t.user_id FROM api_tokens t JOIN users u ON u.user_id = t.user_id"
                " WHERE t.token_hash = ? AND t.revoked IS NULL AND u.deleted = 0",
                (token_hash(token),)).fetchone()
        return None if row is None else int(row[0])
