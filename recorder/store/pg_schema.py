"""The schema's migrations as PostgreSQL runs them: ``PG_MIGRATIONS[n]`` is
``schema.MIGRATIONS[n]``, the same step (same tables, columns, indexes, version numbers), in
PostgreSQL's SQL. One history for both engines: a step is added to both tuples at once (the
check at the end fails the import otherwise).

Most steps are SQLite's text with its types spelled PostgreSQL's way (``pg_types``: INTEGER
is a BIGINT, REAL a DOUBLE PRECISION, an AUTOINCREMENT key a BIGSERIAL). The steps whose SQL
differs further are written out here beside the name of their SQLite text: triggers are
functions in PostgreSQL (versions 6 and 7), the tables whose rows SQLite orders by their
hidden ``rowid`` have one as a column (version 2), and a sequence's value is read from the
sequence itself, not ``sqlite_sequence`` (version 7).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recorder.store.evidence_schema import migrate_evidence, reseal_with_marks
from recorder.store.schema import (
    CREATE_V1,
    CREATE_V2,
    CREATE_V3,
    CREATE_V4,
    CREATE_V5,
    CREATE_V8,
    CREATE_V9,
    CREATE_V10,
    MIGRATIONS,
    SCHEMA_VERSION,
)


@dataclass(frozen=True)
class PgStep:
    """A step with a Python part (``schema.Step``'s counterpart), run on a ``PgSession``."""

    script: str
    then: Callable[[Any, Any], None]


def pg_types(script: str) -> str:
    """A SQLite DDL script with PostgreSQL's names for its types."""
    script = script.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    script = re.sub(r"\bINTEGER\b", "BIGINT", script)
    return re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)


# Version 2 (CREATE_V2): stations, phones and agent windows are listed in the order they were
# stored, which SQLite reads from its hidden rowid; here that is a column of theirs.
_V2 = pg_types(CREATE_V2)
for _table in ("agent_phones", "stations", "agent_windows"):
    _V2 = _V2.replace(f"CREATE TABLE {_table} (\n", f"CREATE TABLE {_table} (\n"
                      "    rowid BIGSERIAL UNIQUE,\n")
PG_V2 = _V2

# Version 6 (CREATE_V6): the audit trail, append-only through triggers of its own.
PG_V6 = """
CREATE TABLE audit (
    entry_id BIGSERIAL PRIMARY KEY,
    time DOUBLE PRECISION NOT NULL,
    user_id BIGINT,
    username TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    address TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_by_time ON audit (time);
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW
    EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW
    EXECUTE FUNCTION audit_append_only();
CREATE TABLE bookmarks (
    bookmark_id BIGSERIAL PRIMARY KEY,
    ident BIGINT NOT NULL REFERENCES recordings (ident),
    user_id BIGINT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    offset_seconds DOUBLE PRECISION NOT NULL,
    comment TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL
);
CREATE INDEX bookmarks_by_recording ON bookmarks (ident, offset_seconds);
"""

# Version 7 (evidence_schema.CREATE_EVIDENCE): the evidence. "only" is a reserved word here.
PG_EVIDENCE = """
ALTER TABLE recordings ADD COLUMN row_hash TEXT;
CREATE TABLE evidence (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO evidence (name, value) SELECT 'sealed_from', greatest(
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM recordings_ident_seq),
    coalesce((SELECT max(ident) FROM recordings), 0)) + 1;
CREATE FUNCTION evidence_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the evidence settings never change'; END $$;
CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence FOR EACH ROW
    EXECUTE FUNCTION evidence_fixed();
ALTER TABLE audit ADD COLUMN prev_hash TEXT;
ALTER TABLE audit ADD COLUMN entry_hash TEXT;
CREATE TABLE audit_anchor (
    "only" BIGINT PRIMARY KEY CHECK ("only" = 1),
    entry_id BIGINT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE FUNCTION audit_anchor_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN RAISE EXCEPTION 'the audit purge anchor stays'; END IF;
    IF NEW.entry_id < OLD.entry_id THEN
        RAISE EXCEPTION 'the audit purge anchor only moves forward';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_anchor_forward BEFORE UPDATE OR DELETE ON audit_anchor FOR EACH ROW
    EXECUTE FUNCTION audit_anchor_kept();
DROP TRIGGER audit_no_delete ON audit;
CREATE FUNCTION audit_purged_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.entry_id > coalesce((SELECT entry_id FROM audit_anchor), 0) THEN
        RAISE EXCEPTION 'the audit trail is append-only';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW
    EXECUTE FUNCTION audit_purged_only();
DROP TRIGGER audit_no_update ON audit;
"""

# MIGRATIONS[n]'s PostgreSQL text: the same step.
PG_MIGRATIONS: tuple[str | PgStep, ...] = (
    pg_types(CREATE_V1), PG_V2, pg_types(CREATE_V3), pg_types(CREATE_V4), pg_types(CREATE_V5),
    PG_V6, PgStep(PG_EVIDENCE, migrate_evidence), pg_types(CREATE_V8), pg_types(CREATE_V9),
    pg_types(CREATE_V10), PgStep("", reseal_with_marks))

if len(PG_MIGRATIONS) != len(MIGRATIONS) or len(MIGRATIONS) != SCHEMA_VERSION:
    raise TypeError("recorder.store.pg_schema: a migration is missing for one engine")

__all__ = ["PG_MIGRATIONS", "PgStep", "pg_types"]
