"""Evidence in SQLite: each complete recording's row sealed (``row_hash``), the audit trail's
chain (``audit.prev_hash``, ``audit.entry_hash``, the purge anchor ``audit_anchor``); the
schema step that brings them in is ``evidence_schema``'s."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

from recorder.store.evidence import (
    GENESIS,
    KEYED_PREFIX,
    ROW_SEAL_COLUMNS,
    AuditAnchor,
    AuditTrailState,
    ChainedEntry,
    EvidenceStore,
    Mark,
    SealedRow,
    SealState,
    is_keyed,
    keyed_row_seal,
    row_seal,
    seal_of_kind,
)
from recorder.store.sealing import AUDIT_SEAL_KEY, Sealing, evidence_keyed
from recorder.store.sqlite_conn import SqliteConnection

_AUDIT_COLUMNS = ("entry_id, time, user_id, username, action, target, detail, address, "
                  "prev_hash, entry_hash")

_SEAL_SELECT = f"SELECT {', '.join(ROW_SEAL_COLUMNS)} FROM recordings"


def seal_rows(conn: sqlite3.Connection, idents: Iterable[int], sealing: Sealing) -> None:
    """Seal the rows ``idents`` that are complete (a row being recorded has none yet), from
    what the database holds now, their blackout marks included: call it in the transaction of
    every change to a row or its marks, after the change."""
    keyed: bool | None = None
    for ident in idents:
        values = conn.execute(f"{_SEAL_SELECT} WHERE ident = ? AND status = 'complete'",
                              (ident,)).fetchone()
        if values is not None:
            if keyed is None:
                keyed = evidence_keyed(conn)
            conn.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?",
                         (sealing.row_seal(values, keyed, marks_of(conn, ident)), ident))


def marks_of(conn: sqlite3.Connection, ident: int) -> list[Mark]:
    """A recording's blackout marks as its seal covers them."""
    return [(float(a), float(b)) for a, b in conn.execute(
        "SELECT start_seconds, end_seconds FROM recording_blackouts WHERE ident = ?",
        (ident,))]


def _marks_between(conn: sqlite3.Connection, first: int, last: int) -> dict[int, list[Mark]]:
    found: dict[int, list[Mark]] = {}
    for ident, a, b in conn.execute(
            "SELECT ident, start_seconds, end_seconds FROM recording_blackouts"
            " WHERE ident BETWEEN ? AND ?", (first, last)):
        found.setdefault(int(ident), []).append((float(a), float(b)))
    return found


def chain_entry(conn: sqlite3.Connection) -> tuple[int, str]:
    """The RECORDID-like number and previous hash the next audit entry takes: after the
    newest entry, else after the purge anchor, else the first from ``GENESIS``."""
    last = conn.execute("SELECT entry_id, entry_hash FROM audit ORDER BY entry_id DESC"
                        " LIMIT 1").fetchone()
    anchor = conn.execute("SELECT entry_id, entry_hash FROM audit_anchor").fetchone()
    seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
    after = max(last[0] if last else 0, anchor[0] if anchor else 0, seq[0] if seq else 0)
    if last is not None and last[0] == after:
        return after + 1, str(last[1] or "")
    if anchor is not None and anchor[0] == after:
        return after + 1, str(anchor[1])
    # An empty table whose sequence went further: entries were removed behind the chain's
    # back. The new entry still names the genesis; verify reports the gap.
    return after + 1, GENESIS


class SqliteEvidence(SqliteConnection, EvidenceStore):
    def sealed_from(self) -> int:
        with self._db("read the evidence settings") as conn:
            row = conn.execute("SELECT value FROM evidence WHERE name = 'sealed_from'"
                               ).fetchone()
        return int(row[0]) if row else 1

    def seal_state(self) -> SealState:
        with self._db("read whether the evidence is keyed") as conn:
            first = conn.execute("SELECT min(entry_id) FROM audit WHERE entry_hash LIKE ?",
                                 (KEYED_PREFIX + "%",)).fetchone()[0]
            anchor = conn.execute("SELECT entry_hash FROM audit_anchor").fetchone()
            took = conn.execute(
                "SELECT entry_id, target FROM audit WHERE action = ? AND entry_hash LIKE ?"
                " ORDER BY entry_id LIMIT 1", (AUDIT_SEAL_KEY, KEYED_PREFIX + "%")).fetchone()
        keyed = first is not None or (anchor is not None and is_keyed(anchor[0]))
        return SealState(keyed, key_id=str(took[1]) if took else None,
                         since_entry=int(took[0]) if took else first)

    def reseal_with_key(self, key: bytes) -> int:
        """Seal every complete row whose plain seal still matches it with ``key`` instead (a
        row whose seal does not match keeps it: verify reports it as changed); how many."""
        done, after = 0, 0
        while True:
            with self._tx("re-seal recordings with the seal key") as conn:
                rows = conn.execute(
                    f"SELECT {', '.join(ROW_SEAL_COLUMNS)}, row_hash FROM recordings"
                    " WHERE ident > ? AND status = 'complete' AND row_hash IS NOT NULL"
                    " ORDER BY ident LIMIT 500", (after,)).fetchall()
                if not rows:
                    return done
                marks = _marks_between(conn, int(rows[0][0]), int(rows[-1][0]))
                for r in rows:
                    kept = marks.get(int(r[0]), ())
                    if not is_keyed(r[-1]) and row_seal(r[:-1], kept) == r[-1]:
                        conn.execute("UPDATE recordings SET row_hash = ? WHERE ident = ?",
                                     (keyed_row_seal(r[:-1], key, kept), r[0]))
                        done += 1
                after = int(rows[-1][0])

    def sealed_rows(self, since: float | None = None, key: bytes | None = None
                    ) -> Iterator[SealedRow]:
        after = 0
        while True:
            with self._db("read recordings to verify") as conn:
                rows = conn.execute(
                    f"SELECT {', '.join(ROW_SEAL_COLUMNS)}, row_hash FROM recordings"
                    " WHERE ident > ? AND start_time >= ? ORDER BY ident LIMIT 500",
                    (after, since if since is not None else float("-inf"))).fetchall()
                marks: dict[int, list[Mark]] = {}
                if rows:
                    marks = _marks_between(conn, int(rows[0][0]), int(rows[-1][0]))
            if not rows:
                return
            for r in rows:
                values = dict(zip(ROW_SEAL_COLUMNS, r, strict=False))
                yield SealedRow(
                    ident=int(values["ident"]), filename=str(values["filename"]),
                    status=str(values["status"]), start_time=float(values["start_time"]),
                    purged_time=values["purged_time"], audio_size=values["audio_size"],
                    audio_hash=values["audio_hash"], row_hash=r[-1],
                    seal=seal_of_kind(r[-1], r[:-1], key,
                                      marks.get(int(values["ident"]), ())))
            after = int(rows[-1][0])

    def recording_filenames(self) -> set[str]:
        with self._db("list the recordings' files") as conn:
            return {str(r[0]) for r in conn.execute(
                "SELECT filename FROM recordings WHERE filename != ''")}

    def audit_trail(self) -> AuditTrailState:
        with self._db("read the audit chain") as conn:
            # One read transaction: an entry appended meanwhile is either all in or not.
            conn.execute("BEGIN")
            try:
                anchor = conn.execute("SELECT entry_id, entry_hash FROM audit_anchor"
                                      ).fetchone()
                rows = conn.execute(f"SELECT {_AUDIT_COLUMNS} FROM audit ORDER BY entry_id"
                                    ).fetchall()
            finally:
                conn.execute("COMMIT")
        return AuditTrailState(
            AuditAnchor(int(anchor[0]), str(anchor[1])) if anchor else None,
            [ChainedEntry(*r) for r in rows])

    def purge_audit(self, before: float) -> int:
        with self._tx("purge old audit entries") as conn:
            # The entries before the first one still young enough to keep: a clock set back
            # can put an old time after a young one, and the chain can only lose its start.
            young = conn.execute("SELECT min(entry_id) FROM audit WHERE time >= ?",
                                 (before,)).fetchone()[0]
            last = conn.execute(
                "SELECT entry_id, entry_hash FROM audit WHERE entry_id < ? ORDER BY entry_id"
                " DESC LIMIT 1", (young if young is not None else 1 << 62,)).fetchone()
            if last is None:
                return 0
            conn.execute("INSERT INTO audit_anchor (only, entry_id, entry_hash) VALUES (1, ?, ?)"
                         " ON CONFLICT (only) DO UPDATE SET entry_id = excluded.entry_id,"
                         " entry_hash = excluded.entry_hash", (last[0], last[1]))
            return conn.execute("DELETE FROM audit WHERE entry_id <= ?", (last[0],)).rowcount


__all__ = ["SqliteEvidence", "chain_entry", "marks_of", "seal_rows"]
