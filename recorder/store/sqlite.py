"""The embedded store: one SQLite file in the data directory (WAL, fully synchronous).

This module holds the recordings; ``sqlite_directory`` the directory, ``sqlite_conn`` the
connection they share.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from recorder.errors import StoreError
from recorder.store.recordings import RecordingStore
from recorder.store.records import (
    CALLLIST_FIELDS,
    DAY_SECONDS,
    FILTER_FIELDS,
    STATUS_COMPLETE,
    STATUS_RECORDING,
    TYPE_SCREEN,
    USER_FIELDS,
    ExpiryRule,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
    ScanCursor,
)
from recorder.store.schema import FILTER_COLUMNS, MANUAL_COLUMNS, META_COLUMNS, PARTIAL_INDEXED
from recorder.store.sqlite_audit import SqliteAudit
from recorder.store.sqlite_bookmarks import SqliteBookmarks
from recorder.store.sqlite_chat import SqliteChat
from recorder.store.sqlite_directory import SqliteDirectory
from recorder.store.sqlite_evidence import seal_rows
from recorder.store.sqlite_filekeys import SqliteFileKeys
from recorder.store.sqlite_tokens import SqliteTokens

logger = logging.getLogger(__name__)

_ROW_COLUMNS = (
    "ident", "device_id", "call_instance", "channel", "filename", "media_format", "sample_rate",
    "recording_time", "start_time", "stop_time", "duration", "audio_size", "audio_hash",
    "status", "stop_reason", "lost_samples", "core_ident", "priority", "keepdays",
    "archive_action_id", "cti_initiated", "agent_initiated", *META_COLUMNS.values(),
)
# The agent's names come from the directory as it is now; agent_id was fixed when the recording
# started, so a phone given to someone else later does not rename old calls.
_EXTRA_COLUMNS = ("r.agent_id", "r.recording_type", "u.first_name", "u.last_name",
                  "r.purged_time", "r.globalid", "r.locked", "r.listenedto")
_SELECT = (f"SELECT {', '.join('r.' + c for c in _ROW_COLUMNS)}, {', '.join(_EXTRA_COLUMNS)}"
           " FROM recordings r LEFT JOIN users u ON u.user_id = r.agent_id")
# Where each part of a selected row starts: the RecordingRow fields named in _ROW_FIELDS (in the
# order of _ROW_COLUMNS), the call metadata, then _EXTRA_COLUMNS.
_ROW_FIELDS = (
    "ident", "device_id", "call_instance", "channel", "filename", "media_format", "sample_rate",
    "recording_time", "start_time", "stop_time", "duration", "audio_size", "audio_hash",
    "status", "stop_reason", "lost_samples", "core_ident", "priority", "keep_days",
    "archive_action", "cti_initiated", "agent_initiated",
)
_META_NAMES = tuple(META_COLUMNS)
_META_AT = len(_ROW_FIELDS)
_EXTRA_AT = len(_ROW_COLUMNS)
_FILLED = {*_ROW_FIELDS, "meta", "agent_id", "recording_type", "agent_first_name",
           "agent_last_name", "purged_time", "global_id", "locked", "listened_to"}
# _row fills a RecordingRow's __dict__ itself (see there); that is only right while it sets
# every field and the class has nothing its __init__ would do besides.
if ({f.name for f in fields(RecordingRow)} != _FILLED
        or _META_AT + len(META_COLUMNS) != _EXTRA_AT
        or hasattr(RecordingRow, "__post_init__") or "__slots__" in vars(RecordingRow)):
    raise TypeError("recorder.store.sqlite._row no longer matches RecordingRow")

# CALLLIST's fields as text (records.CALLLIST_FIELDS), for the API to write with no row
# objects: NULLs as "" and numbers as the API writes them. DURATION is Python's round() of
# the stored duration, or of the time since the start (the first parameter: now) for a
# recording in progress: halves to even, as round() does and SQLite's round() does not.
_D = "coalesce(r.duration, max(0.0, ?1 - r.start_time))"  # ?1: the first parameter, now
_CALLLIST_SELECT = (
    "SELECT r.device_id, "
    + ", ".join(f"r.{META_COLUMNS[name]}" for name in CALLLIST_FIELDS[1:22])
    + ", CAST(r.ident AS TEXT), CAST(r.recording_time AS TEXT), "
    f"CAST(CASE WHEN {_D} - CAST({_D} AS INTEGER) = 0.5 AND CAST({_D} AS INTEGER) % 2 = 0"
    f" THEN CAST({_D} AS INTEGER) ELSE CAST(round({_D}) AS INTEGER) END AS TEXT), "
    "coalesce(u.first_name, ''), coalesce(u.last_name, ''), r.crm_user, r.sys_user, "
    "r.filename, r.call_instance"
    " FROM recordings r LEFT JOIN users u ON u.user_id = r.agent_id")
if CALLLIST_FIELDS[1:22] != ("DEVICEALIAS", "ANI", "DNIS", "CALLDIRECTION", "GROUP", "GATE",
                             *USER_FIELDS):
    raise TypeError("recorder.store.sqlite._CALLLIST_SELECT no longer matches CALLLIST_FIELDS")
# Which CALLLIST filter's index leads the search, the first of these that is given: the most
# selective kinds first (a caller, a phone or its agent, then the USERn fields, which may hold
# an account number or a campaign), the broad ones last (few called numbers, groups, gates,
# each on many rows). The others are written "+r.col = ?", which no index can serve, so SQLite
# cannot pick theirs: without statistics it prefers any partial index, and would walk a gate's
# 125,000 recordings for one phone's calls, or a called number's 50,000 for one caller's.
_LEAD_ORDER = ("ANI", "DEVICEID", "DEVICEALIAS", "CRM_USER", "SYS_USER", *USER_FIELDS,
               "DNIS", "GROUP", "GATE")
if sorted(_LEAD_ORDER) != sorted(FILTER_FIELDS):
    raise TypeError("recorder.store.sqlite._LEAD_ORDER must rank every CALLLIST filter")


class SqliteStore(SqliteDirectory, SqliteChat, SqliteAudit, SqliteBookmarks, SqliteTokens,
                  SqliteFileKeys, RecordingStore):
    """Recording rows, the directory, the audit trail, bookmarks, API tokens and encrypted
    recordings' wrapped keys in a SQLite database file."""

    @property
    def batches_atomically(self) -> bool:
        return True

    def insert_recording(self, rec: NewRecording, ident: int | None = None) -> int:
        with self._db("insert recording") as conn:
            return self._insert(conn, rec, ident)

    def insert_recordings(self, recs: Sequence[NewRecording]) -> list[int]:
        # One transaction: one WAL sync for the batch (synchronous = FULL), all or none.
        with self._tx(f"insert {len(recs)} recordings") as conn:
            return [self._insert(conn, rec, None) for rec in recs]

    def _insert(self, conn: sqlite3.Connection, rec: NewRecording, ident: int | None) -> int:
        values: dict[str, Any] = {
            "device_id": rec.device_id,
            "call_instance": rec.call_instance,
            "channel": rec.channel,
            "filename": rec.filename,
            "media_format": rec.media_format,
            "sample_rate": rec.sample_rate,
            "recording_time": int(rec.start_time),
            "start_time": rec.start_time,
            "status": STATUS_RECORDING,
            "core_ident": rec.core_ident,
            "priority": rec.priority,
            "keepdays": rec.keep_days,
            "archive_action_id": rec.archive_action,
            "cti_initiated": rec.cti_initiated,
            "agent_initiated": rec.agent_initiated,
            "globalid": rec.global_id,
        }
        if rec.file_key:
            values["file_key"] = rec.file_key
        values.update({META_COLUMNS[k]: v for k, v in rec.meta.items()})
        if ident is not None:
            values["ident"] = ident  # AUTOINCREMENT's sequence follows an explicit ident
        agent_id = rec.agent_id
        if agent_id is None:
            agent_id = self._phone_owner(conn, rec.device_id)
        values["agent_id"] = agent_id
        sql = (f"INSERT INTO recordings ({', '.join(values)}) "
               f"VALUES ({', '.join('?' * len(values))})")
        assigned = conn.execute(sql, tuple(values.values())).lastrowid
        if assigned is None:  # raised inside, so the store's error count has it
            raise StoreError("insert recording: no RECORDID assigned")
        return assigned

    def max_recording_id(self) -> int:
        with self._db("highest RECORDID") as conn:
            # AUTOINCREMENT never reuses an ident, even one whose row is gone: its sequence
            # remembers the highest. The table's own maximum covers a database without one.
            row = conn.execute(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence"
                " WHERE name = 'recordings'), 0), coalesce((SELECT max(ident)"
                " FROM recordings), 0))").fetchone()
        return int(row[0])

    def finish_recording(self, ident: int, done: FinishedRecording) -> None:
        with self._tx(f"finish recording {ident}") as conn:
            self._finish(conn, ident, done)

    def finish_recordings(self, done: Sequence[tuple[int, FinishedRecording]]) -> None:
        # One transaction: one WAL sync for the batch, all or none.
        with self._tx(f"finish {len(done)} recordings") as conn:
            for ident, finished in done:
                self._finish(conn, ident, finished)

    def _finish(self, conn: sqlite3.Connection, ident: int, done: FinishedRecording) -> None:
        conn.execute(
            "UPDATE recordings SET stop_time = ?, duration = ?, audio_size = ?,"
            " audio_hash = ?, stop_reason = ?, lost_samples = ?, status = ?"
            " WHERE ident = ?",
            (done.stop_time, done.duration, done.audio_size, done.audio_hash,
             done.stop_reason, done.lost_samples, STATUS_COMPLETE, ident),
        )
        if done.blackouts:
            # Replaced, not added to: a spooled completion replayed, or recovery
            # completing a row again, leaves each range once.
            conn.execute("DELETE FROM recording_blackouts WHERE ident = ?", (ident,))
            conn.executemany("INSERT INTO recording_blackouts (ident, start_seconds,"
                             " end_seconds) VALUES (?, ?, ?)",
                             [(ident, a, b) for a, b in done.blackouts])
        # After the marks: the seal covers them (docs/storage.md).
        seal_rows(conn, (ident,), self.sealing)

    def recording_blackouts(self, ident: int) -> tuple[tuple[float, float], ...]:
        with self._db(f"read the blackouts of recording {ident}") as conn:
            rows = conn.execute("SELECT start_seconds, end_seconds FROM recording_blackouts"
                                " WHERE ident = ? ORDER BY start_seconds", (ident,)).fetchall()
        return tuple((float(a), float(b)) for a, b in rows)

    def update_recording(self, ident: int, update: RecordingUpdate) -> bool:
        values: dict[str, Any] = {META_COLUMNS[k]: v for k, v in update.meta.items()}
        if update.keep_days is not None:
            values["keepdays"] = update.keep_days
        if update.archive_action is not None:
            values["archive_action_id"] = update.archive_action
        with self._tx(f"update recording {ident}") as conn:
            if not values:
                found = conn.execute("SELECT 1 FROM recordings WHERE ident = ?", (ident,))
                return found.fetchone() is not None
            assignments = ", ".join(f"{column} = ?" for column in values)
            cursor = conn.execute(f"UPDATE recordings SET {assignments} WHERE ident = ?",
                                  (*values.values(), ident))
            seal_rows(conn, (ident,), self.sealing)
            return cursor.rowcount > 0

    def get_recording(self, ident: int) -> RecordingRow | None:
        with self._db(f"read recording {ident}") as conn:
            row = conn.execute(f"{_SELECT} WHERE r.ident = ?", (ident,)).fetchone()
        return _row(row) if row else None

    def find_recording(self, unique_field: str, value: str) -> RecordingRow | None:
        if unique_field not in MANUAL_COLUMNS:  # it becomes part of the SQL
            raise ValueError(f"{unique_field!r} is not a UNIQUEFIELD column")
        where = f"r.{unique_field} = ?{_partial_term(unique_field, value)}"
        with self._db(f"find recording by {unique_field}") as conn:
            row = conn.execute(
                f"{_SELECT} WHERE {where} ORDER BY r.status = ?,"
                " r.recording_time DESC, r.ident DESC LIMIT 1",
                (value, STATUS_RECORDING)).fetchone()
        return _row(row) if row else None

    def count_recordings(self) -> int:
        with self._db("count recordings") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM recordings").fetchone()[0])

    def last_recording_id(self, device_id: str) -> int | None:
        with self._db(f"last recording of {device_id}") as conn:
            row = conn.execute(
                "SELECT ident FROM recordings WHERE device_id = ?"
                " ORDER BY recording_time DESC, ident DESC LIMIT 1", (device_id,)
            ).fetchone()
        return int(row[0]) if row else None

    def list_recordings(self, query: RecordingQuery) -> list[RecordingRow]:
        tail, args = _query_tail(query)
        with self._db("list recordings") as conn:
            rows = conn.execute(_SELECT + tail, args).fetchall()
        return [_row(r) for r in rows]

    def calllist_fields(self, query: RecordingQuery,
                        now: float) -> list[tuple[str, ...]] | None:
        # The same WHERE, ORDER and LIMIT as list_recordings, so the same plan; the SQL text
        # repeats for a filter combination, so sqlite3's statement cache reuses it prepared.
        tail, args = _query_tail(query)
        with self._db("list recordings") as conn:
            return conn.execute(_CALLLIST_SELECT + tail, [now, *args]).fetchall()

    def mark_listened(self, ident: int) -> bool:
        with self._db(f"mark recording {ident} listened to") as conn:
            cursor = conn.execute("UPDATE recordings SET listenedto = 1 WHERE ident = ?",
                                  (ident,))
            return cursor.rowcount > 0

    def delete_recording(self, ident: int) -> bool:
        with self._tx(f"delete recording {ident}") as conn:
            # Checked again here, in the transaction: a LOCKED set since the caller looked
            # still keeps the row.
            cursor = conn.execute("DELETE FROM recordings WHERE ident = ? AND locked = 0"
                                  " AND status = ?", (ident, STATUS_COMPLETE))
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM chat_sessions WHERE ident = ?", (ident,))
            conn.execute("DELETE FROM bookmarks WHERE ident = ?", (ident,))
            conn.execute("DELETE FROM recording_blackouts WHERE ident = ?", (ident,))
            return True

    def interrupted_recordings(self) -> list[RecordingRow]:
        with self._db("list interrupted recordings") as conn:
            # Screen sessions (CHATSTART) have no file and are meant to outlive a restart:
            # their CHATSTOP may come from a client that never noticed the recorder was down.
            rows = conn.execute(f"{_SELECT} WHERE r.status = ? AND r.recording_type != ?"
                                " ORDER BY r.ident", (STATUS_RECORDING, TYPE_SCREEN)).fetchall()
        return [_row(r) for r in rows]

    def untranscoded_recordings(self, audio_formats: Sequence[str]) -> list[RecordingRow]:
        if not audio_formats:
            return []
        marks = ", ".join("?" * len(audio_formats))
        with self._db("list recordings to transcode") as conn:
            rows = conn.execute(
                f"{_SELECT} WHERE r.status = ? AND r.media_format IN ({marks})"
                " AND lower(r.filename) LIKE '%.wav' ORDER BY r.ident",
                (STATUS_COMPLETE, *audio_formats)).fetchall()
        return [_row(r) for r in rows]

    def replace_recording_file(self, old: str, new: str, media_format: str, audio_size: int,
                               audio_hash: str, *, file_key: str = "") -> bool:
        with self._tx(f"replace the file {old}") as conn:
            cursor = conn.execute(
                "UPDATE recordings SET filename = ?, media_format = ?, audio_size = ?,"
                " audio_hash = ?, file_key = ? WHERE filename IN (?, ?)",
                (new, media_format, audio_size, audio_hash, file_key, old, new))
            # The stored bytes are now the encoded file's: its row is sealed with its hash.
            seal_rows(conn, [r[0] for r in conn.execute(
                "SELECT ident FROM recordings WHERE filename = ?", (new,))], self.sealing)
            return cursor.rowcount > 0

    def expired_recordings(self, now: float, rule: ExpiryRule, limit: int,
                           after: ScanCursor | None = None) -> list[RecordingRow]:
        where, args = _expired_where(now, rule)
        return self._scan("list expired recordings", where, args, limit, after)

    def count_expired(self, now: float, rule: ExpiryRule) -> int:
        where, args = _expired_where(now, rule)
        with self._db("count expired recordings") as conn:
            row = conn.execute(f"SELECT count(*) FROM recordings r WHERE {where}",
                               args).fetchone()
        return int(row[0])

    def mark_purged(self, ident: int, when: float) -> bool:
        with self._tx(f"mark recording {ident} purged") as conn:
            cursor = conn.execute(
                f"UPDATE recordings SET purged_time = ? WHERE ident = ? AND {_purgeable('')}",
                (when, ident))
            seal_rows(conn, (ident,), self.sealing)
            return cursor.rowcount > 0

    def oldest_unpurged(self, limit: int, after: ScanCursor | None = None) -> list[RecordingRow]:
        where = f"{_purgeable('r.')} AND r.filename != ''"
        return self._scan("list the oldest recordings", where, [], limit, after)

    def _scan(self, what: str, where: str, args: list[Any], limit: int,
              after: ScanCursor | None) -> list[RecordingRow]:
        """One page of rows matching ``where``, oldest first, after the cursor ``after``."""
        if after is not None:
            where += " AND (r.start_time, r.ident) > (?, ?)"
            args = [*args, after[0], after[1]]
        with self._db(what) as conn:
            rows = conn.execute(f"{_SELECT} WHERE {where} ORDER BY r.start_time, r.ident"
                                " LIMIT ?", (*args, limit)).fetchall()
        return [_row(r) for r in rows]


def _partial_term(column: str, value: object) -> str:
    """What lets SQLite search ``column = value`` in the column's partial index (schema 5):
    the index's own WHERE, stated in the query; nothing for other columns, or for a blank
    value (which that index does not hold)."""
    return f" AND r.{column} != ''" if column in PARTIAL_INDEXED and value != "" else ""


def _query_tail(query: RecordingQuery) -> tuple[str, list[Any]]:
    """WHERE, ORDER BY and LIMIT of ``query`` over alias r, and their values."""
    where, args = _filter_terms(query.equals)
    if query.start is not None:
        where.append("r.recording_time >= ?")
        args.append(query.start)
    if query.end is not None:
        where.append("r.recording_time <= ?")
        args.append(query.end)
    if query.agent_id is not None:
        # "+" unless it is the only filter: recordings_by_agent is not in time order.
        where.append(f"{'+' if query.equals else ''}r.agent_id = ?")
        args.append(query.agent_id)
    if query.within_devices is not None:
        devices, agents = query.within_devices, query.within_agents
        terms = [f"+r.device_id IN ({', '.join('?' * len(devices))})"] if devices else []
        terms += [f"+r.agent_id IN ({', '.join('?' * len(agents))})"] if agents else []
        where.append(f"({' OR '.join(terms)})" if terms else "1 = 0")
        args += [*devices, *agents]
    for op, bound in ((">=", query.min_duration), ("<=", query.max_duration)):
        if bound is not None:
            where.append(f"r.duration {op} ?")
            args.append(bound)
    sql = ""
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "ASC" if query.oldest_first else "DESC"
    sql += f" ORDER BY r.recording_time {order}, r.ident {order} LIMIT ? OFFSET ?"
    args += [query.limit, query.offset]
    return sql, args


def _filter_terms(equals: Mapping[str, str]) -> tuple[list[str], list[Any]]:
    """CALLLIST's equality filters as WHERE terms over alias r, and their values; only the
    filter first in _LEAD_ORDER may use its index."""
    lead = next((name for name in _LEAD_ORDER if name in equals), None)
    where: list[str] = []
    args: list[Any] = []
    for name, value in equals.items():
        column = FILTER_COLUMNS[name]
        if name == lead:
            where.append(f"r.{column} = ?{_partial_term(column, value)}")
        else:
            # The same comparison: these columns are TEXT (so every value in them is text)
            # and the values are strings, so the affinity "+" drops changes nothing.
            where.append(f"+r.{column} = ?")
        args.append(value)
    return where, args


def _purgeable(alias: str) -> str:
    """Rows retention may still purge: the WHERE of the partial index recordings_unpurged,
    written out rather than bound, or SQLite could not tell that the index covers the query."""
    return f"{alias}purged_time IS NULL AND {alias}status = '{STATUS_COMPLETE}'"


def _expired_where(now: float, rule: ExpiryRule) -> tuple[str, list[Any]]:
    """The WHERE clause (over alias r) of the rows ``rule`` says are due at ``now``."""
    keep = ["CASE WHEN r.keepdays > 0 THEN r.keepdays"]
    args: list[Any] = []
    # ARCHIVEACTION 0 and below mean "not set" (the manual's events send -1).
    actions = {k: v for k, v in rule.archive_keep_days.items() if k > 0}
    for action, days in actions.items():
        keep.append("WHEN r.archive_action_id = ? THEN ?")
        args += [action, days]
    keep.append("ELSE ? END")
    args.append(rule.default_keep_days)
    # No recording is kept for less than the shortest finite period any branch can give (a
    # KEEPDAYS is at least 1): rows younger than that are cut off by the index range.
    finite = [d for d in (1, rule.default_keep_days, *actions.values()) if d is not None]
    newest = now - min(finite) * DAY_SECONDS
    where = (f"{_purgeable('r.')} AND r.start_time <= ?"
             f" AND r.start_time + ({' '.join(keep)}) * {DAY_SECONDS!r} <= ?")
    return where, [newest, *args, now]


def _row(r: tuple[Any, ...]) -> RecordingRow:
    # RecordingRow is frozen, so its __init__ sets each of its 29 fields with object.__setattr__:
    # 4.7 us of the 8.3 us mapping a row took, and CALLLIST maps up to api.calllist_max_rows
    # of them. Filling the new instance's __dict__ directly gives the same object for 0.4 us
    # (the check under _SELECT fails at import should RecordingRow change so that it no
    # longer would). Mapping a row now takes 3.7 us, most of it the meta dict.
    row: RecordingRow = object.__new__(RecordingRow)
    attrs = row.__dict__
    # Lengths checked at import; strict=False: zip stops at the end of _ROW_FIELDS.
    attrs.update(zip(_ROW_FIELDS, r, strict=False))
    attrs["meta"] = dict(zip(_META_NAMES, r[_META_AT:_EXTRA_AT], strict=False))
    (agent_id, recording_type, first_name, last_name, purged_time, global_id, locked,
     listened) = r[_EXTRA_AT:]
    attrs["agent_id"] = agent_id
    attrs["recording_type"] = recording_type
    attrs["agent_first_name"] = first_name or ""
    attrs["agent_last_name"] = last_name or ""
    attrs["purged_time"] = purged_time
    attrs["global_id"] = global_id or ""
    attrs["locked"] = bool(locked)
    attrs["listened_to"] = bool(listened)
    return row
