"""The audit trail in SQLite: table ``audit``, a hash chain (schema 7, docs/storage.md) whose
triggers refuse UPDATE, and DELETE but of the entries a purge has anchored, so not even a bug
here can rewrite history; and a change made around them is found by ``recorderctl audit
verify``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recorder.store.audit import AuditEntry, AuditQuery, AuditStore
from recorder.store.audithead import head_path, read_head, write_head, writer_lock
from recorder.store.sqlite_conn import fold
from recorder.store.sqlite_evidence import SqliteEvidence, chain_entry

logger = logging.getLogger(__name__)

HeadSink = Callable[[int, str], None]


class SqliteAudit(SqliteEvidence, AuditStore):
    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        super().__init__(path, busy_timeout)
        # One writer: entries are chained and their heads written in one order, whichever
        # thread (portal workers, API workers) appends.
        self._audit_lock = threading.Lock()
        self._head_sinks: list[HeadSink] = []

    @property
    def head_path(self) -> Path:
        return head_path(self.path)

    def add_head_sink(self, sink: HeadSink) -> None:
        """Also tell ``sink(entry_id, entry_hash)`` each new head (recorderd: the journal)."""
        self._head_sinks.append(sink)

    def open(self) -> None:
        super().open()
        if self.stepped:
            # The existing entries were just chained: their head is the first one written
            # outside the database (a head file absent later is reported, never remade).
            trail = self.audit_trail()
            if trail.entries and read_head(self.head_path) is None:
                last = trail.entries[-1]
                write_head(self.head_path, last.entry_id, last.entry_hash or "")

    def append_audit(self, entry: AuditEntry) -> int:
        return self.append_batch([entry])[0][0]

    def append_batch(self, entries: Sequence[AuditEntry]) -> list[tuple[int, str]]:
        """Append ``entries`` in order, chained, in one transaction, and write the head once
        after them (``auditqueue``'s writer: one commit and one head for a batch); their ids
        and hashes."""
        if not entries:
            return []
        with self._audit_lock, writer_lock(self.path):
            ids: list[tuple[int, str]] = []
            with self._tx(f"audit {entries[0].action} (+{len(entries) - 1})") as conn:
                entry_id, prev = chain_entry(conn)
                for entry in entries:
                    entry_hash = self.sealing.audit_hash(
                        entry_id, entry.time, entry.user_id, username=entry.username,
                        action=entry.action, target=entry.target, detail=entry.detail,
                        address=entry.address, prev_hash=prev)
                    conn.execute(
                        "INSERT INTO audit (entry_id, time, user_id, username, action, target,"
                        " detail, address, prev_hash, entry_hash)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry_id, float(entry.time), entry.user_id, entry.username,
                         entry.action, entry.target, entry.detail, entry.address, prev,
                         entry_hash))
                    ids.append((entry_id, entry_hash))
                    entry_id, prev = entry_id + 1, entry_hash
            last_id, last_hash = ids[-1]
            # The entries are in: a head that cannot be written is reported by verify (the
            # entries after the head), not a reason to refuse the actions that were audited.
            try:
                write_head(self.head_path, last_id, last_hash)
            except OSError:
                logger.exception("cannot write the audit head %s", self.head_path)
            for sink in self._head_sinks:
                try:
                    sink(last_id, last_hash)
                except Exception:
                    logger.exception("cannot record the audit head (entry %d)", last_id)
            return ids

    def audit_after(self, entry_id: int) -> list[AuditEntry]:
        """The entries after ``entry_id``, oldest first (what a crash may have committed
        after the last head the crash journal holds)."""
        with self._db("read the newest audit entries") as conn:
            rows = conn.execute(
                "SELECT entry_id, time, user_id, username, action, target, detail, address"
                " FROM audit WHERE entry_id > ? ORDER BY entry_id", (entry_id,)).fetchall()
        return [AuditEntry(time=r[1], user_id=r[2], username=r[3], action=r[4], target=r[5],
                           detail=r[6], address=r[7], entry_id=r[0]) for r in rows]

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
