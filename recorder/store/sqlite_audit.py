"""The audit trail in SQLite: table ``audit`` (schema 6), whose triggers refuse UPDATE and
DELETE, so not even a bug here can rewrite history."""

from __future__ import annotations

from typing import Any

from recorder.store.audit import AuditEntry, AuditQuery, AuditStore
from recorder.store.sqlite_conn import SqliteConnection, fold, rowid


class SqliteAudit(SqliteConnection, AuditStore):
    def append_audit(self, entry: AuditEntry) -> int:
        with self._db(f"audit {entry.action}") as conn:
            cursor = conn.execute(
                "INSERT INTO audit (time, user_id, username, action, target, detail, address)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (entry.time, entry.user_id, entry.username, entry.action, entry.target,
                 entry.detail, entry.address))
            return rowid(cursor, "audit")

    def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        where: list[str] = []
        args: list[Any] = []
        if query.username is not None:
            where.append("casefold(username) = ?")
            args.append(fold(query.username))
        if query.action is not None:
            where.append("action = ?")
            args.append(query.action)
        if query.since is not None:
            where.append("time >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("time <= ?")
            args.append(query.until)
        sql = ("SELECT entry_id, time, user_id, username, action, target, detail, address"
               " FROM audit")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY entry_id DESC LIMIT ?"
        with self._db("read the audit trail") as conn:
            rows = conn.execute(sql, (*args, query.limit)).fetchall()
        return [AuditEntry(time=r[1], user_id=r[2], username=r[3], action=r[4], target=r[5],
                           detail=r[6], address=r[7], entry_id=r[0]) for r in rows]
