"""The schema step that brings in the evidence (docs/storage.md): the rows' seals, the audit
trail's chain and its purge anchor. Self-contained (its SQL, then ``migrate_evidence`` in the
same transaction), so it can take whichever number its place among the migrations gives it."""

from __future__ import annotations

import sqlite3

from recorder.errors import StoreError
from recorder.store.evidence import (
    GENESIS,
    ROW_SEAL_COLUMNS,
    audit_hash,
    is_keyed,
    keyed_row_seal,
    row_seal,
    row_seal_v1,
)

# The schema step. Rows that exist already keep a NULL row_hash: they were recorded before
# verification existed, and sealing them now would vouch for whatever they hold today. The
# first RECORDID sealed is kept, so a seal removed later from a newer row is not taken for
# one of those. The audit table's delete trigger now lets a purge remove the entries up to the
# anchor, and no others.
CREATE_EVIDENCE = """
ALTER TABLE recordings ADD COLUMN row_hash TEXT;
CREATE TABLE evidence (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO evidence (name, value) SELECT 'sealed_from', max(
    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'recordings'), 0),
    coalesce((SELECT max(ident) FROM recordings), 0)) + 1;
CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'the evidence settings never change'); END;
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN entry_hash TEXT;
CREATE TABLE audit_anchor (
    only INTEGER PRIMARY KEY CHECK (only = 1),
    entry_id INTEGER NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE ON audit_anchor
WHEN NEW.entry_id < OLD.entry_id
BEGIN SELECT RAISE(ABORT, 'the audit purge anchor only moves forward'); END;
CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
BEGIN SELECT RAISE(ABORT, 'the audit purge anchor stays'); END;
DROP TRIGGER audit_no_delete;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
WHEN OLD.entry_id > coalesce((SELECT entry_id FROM audit_anchor), 0)
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
DROP TRIGGER audit_no_update;
"""

_NO_UPDATE = """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"""


def migrate_evidence(conn: sqlite3.Connection, key: bytes | None) -> None:
    """After ``CREATE_EVIDENCE``, in its transaction: chain the entries already in the audit
    table, oldest first from ``GENESIS``, then refuse every UPDATE of it again. (No seal key
    has sealed anything before this step: ``key`` is not used.)"""
    del key
    prev = GENESIS
    rows = conn.execute("SELECT entry_id, time, user_id, username, action, target, detail,"
                        " address FROM audit ORDER BY entry_id").fetchall()
    for entry_id, time, user_id, username, action, target, detail, address in rows:
        entry_hash = audit_hash(entry_id, time, user_id, username=username, action=action,
                                target=target, detail=detail, address=address, prev_hash=prev)
        conn.execute("UPDATE audit SET prev_hash = ?, entry_hash = ? WHERE entry_id = ?",
                     (prev, entry_hash, entry_id))
        prev = entry_hash
    conn.execute(_NO_UPDATE)


# Schema 11: the seal covers a row's blackout marks (``recorder-row/2``); nothing to create.
CREATE_MARKS_SEALED = ""


def reseal_with_marks(conn: sqlite3.Connection, key: bytes | None) -> None:
    """After ``CREATE_MARKS_SEALED``, in its transaction: every row sealed under
    ``recorder-row/1`` whose seal still matches is sealed again with its marks, of the same
    kind (plain, or keyed with the seal key ``key``). One whose seal no longer matches keeps
    it, so ``recorderctl verify`` still reports it: the upgrade vouches for nothing the old
    seal did not. StoreError (nothing changed) if a row is keyed and ``key`` is None."""
    marks: dict[int, list[tuple[float, float]]] = {}
    for ident, a, b in conn.execute("SELECT ident, start_seconds, end_seconds"
                                    " FROM recording_blackouts"):
        marks.setdefault(int(ident), []).append((float(a), float(b)))
    # Every row: one recorded before the seals existed is sealed too once the recorder changes
    # it (CALLUPDATE, a purge), whatever its RECORDID.
    after = 0
    while rows := conn.execute(
            f"SELECT {', '.join(ROW_SEAL_COLUMNS)}, row_hash FROM recordings WHERE ident > ?"
            " AND status = 'complete' AND row_hash IS NOT NULL ORDER BY ident LIMIT 5000",
            (after,)).fetchall():
        resealed = []
        for r in rows:
            values, stored, kept = r[:-1], str(r[-1]), marks.get(int(r[0]), ())
            if not is_keyed(stored):
                if row_seal_v1(values) == stored:
                    resealed.append((row_seal(values, kept), int(r[0])))
                continue
            if key is None:
                raise StoreError(
                    "the upgrade to schema 11 seals each recording again with its blackout "
                    "marks, and this data directory's seals are made with a seal key: open it "
                    "with the key (recorderd with storage.seal_key_file, or "
                    "RECORDER_SEAL_KEY_FILE=PATH for recorderctl)")
            if row_seal_v1(values, key) == stored:
                resealed.append((keyed_row_seal(values, key, kept), int(r[0])))
        conn.executemany("UPDATE recordings SET row_hash = ? WHERE ident = ?", resealed)
        after = int(rows[-1][0])


__all__ = ["CREATE_EVIDENCE", "CREATE_MARKS_SEALED", "migrate_evidence", "reseal_with_marks"]
