"""The embedded store: one SQLite file in the data directory (WAL, fully synchronous).

This module holds the recordings; ``sqlite_directory`` the directory, ``sqlite_conn`` the
connection they share.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from recorder.errors import StoreError
from recorder.store.base import (
    DAY_SECONDS,
    STATUS_COMPLETE,
    STATUS_RECORDING,
    TYPE_SCREEN,
    ExpiryRule,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
    ScanCursor,
    Store,
)
from recorder.store.schema import FILTER_COLUMNS, MANUAL_COLUMNS, META_COLUMNS
from recorder.store.sqlite_directory import SqliteDirectory

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
                  "r.purged_time", "r.globalid")
_SELECT = (f"SELECT {', '.join('r.' + c for c in _ROW_COLUMNS)}, {', '.join(_EXTRA_COLUMNS)}"
           " FROM recordings r LEFT JOIN users u ON u.user_id = r.agent_id")


class SqliteStore(SqliteDirectory, Store):
    """Recording rows and the directory in a SQLite database file."""

    def insert_recording(self, rec: NewRecording) -> int:
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
        values.update({META_COLUMNS[k]: v for k, v in rec.meta.items()})
        with self._db("insert recording") as conn:
            agent_id = rec.agent_id
            if agent_id is None:
                agent_id = self._phone_owner(conn, rec.device_id)
            values["agent_id"] = agent_id
            sql = (f"INSERT INTO recordings ({', '.join(values)}) "
                   f"VALUES ({', '.join('?' * len(values))})")
            ident = conn.execute(sql, tuple(values.values())).lastrowid
            if ident is None:  # raised inside, so the store's error count has it
                raise StoreError("insert recording: no RECORDID assigned")
        return ident

    def finish_recording(self, ident: int, done: FinishedRecording) -> None:
        with self._db(f"finish recording {ident}") as conn:
            conn.execute(
                "UPDATE recordings SET stop_time = ?, duration = ?, audio_size = ?,"
                " audio_hash = ?, stop_reason = ?, lost_samples = ?, status = ?"
                " WHERE ident = ?",
                (done.stop_time, done.duration, done.audio_size, done.audio_hash,
                 done.stop_reason, done.lost_samples, STATUS_COMPLETE, ident),
            )

    def update_recording(self, ident: int, update: RecordingUpdate) -> bool:
        values: dict[str, Any] = {META_COLUMNS[k]: v for k, v in update.meta.items()}
        if update.keep_days is not None:
            values["keepdays"] = update.keep_days
        if update.archive_action is not None:
            values["archive_action_id"] = update.archive_action
        with self._db(f"update recording {ident}") as conn:
            if not values:
                found = conn.execute("SELECT 1 FROM recordings WHERE ident = ?", (ident,))
                return found.fetchone() is not None
            assignments = ", ".join(f"{column} = ?" for column in values)
            cursor = conn.execute(f"UPDATE recordings SET {assignments} WHERE ident = ?",
                                  (*values.values(), ident))
            return cursor.rowcount > 0

    def get_recording(self, ident: int) -> RecordingRow | None:
        with self._db(f"read recording {ident}") as conn:
            row = conn.execute(f"{_SELECT} WHERE r.ident = ?", (ident,)).fetchone()
        return _row(row) if row else None

    def find_recording(self, unique_field: str, value: str) -> RecordingRow | None:
        if unique_field not in MANUAL_COLUMNS:  # it becomes part of the SQL
            raise ValueError(f"{unique_field!r} is not a UNIQUEFIELD column")
        with self._db(f"find recording by {unique_field}") as conn:
            row = conn.execute(
                f"{_SELECT} WHERE r.{unique_field} = ? ORDER BY r.status = ?,"
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
        where: list[str] = []
        args: list[Any] = []
        for name, value in query.equals.items():
            where.append(f"r.{FILTER_COLUMNS[name]} = ?")
            args.append(value)
        if query.start is not None:
            where.append("r.recording_time >= ?")
            args.append(query.start)
        if query.end is not None:
            where.append("r.recording_time <= ?")
            args.append(query.end)
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.recording_time DESC, r.ident DESC LIMIT ?"
        args.append(query.limit)
        with self._db("list recordings") as conn:
            rows = conn.execute(sql, args).fetchall()
        return [_row(r) for r in rows]

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
                               audio_hash: str) -> bool:
        with self._db(f"replace the file {old}") as conn:
            cursor = conn.execute(
                "UPDATE recordings SET filename = ?, media_format = ?, audio_size = ?,"
                " audio_hash = ? WHERE filename IN (?, ?)",
                (new, media_format, audio_size, audio_hash, old, new))
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
        with self._db(f"mark recording {ident} purged") as conn:
            cursor = conn.execute(
                f"UPDATE recordings SET purged_time = ? WHERE ident = ? AND {_purgeable('')}",
                (when, ident))
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
    fixed = len(_ROW_COLUMNS) - len(META_COLUMNS)
    agent_id, recording_type, first_name, last_name, purged_time, global_id = (
        r[len(_ROW_COLUMNS):])
    return RecordingRow(
        ident=r[0], device_id=r[1], call_instance=r[2], channel=r[3], filename=r[4],
        media_format=r[5], sample_rate=r[6], recording_time=r[7], start_time=r[8],
        stop_time=r[9], duration=r[10], audio_size=r[11], audio_hash=r[12], status=r[13],
        stop_reason=r[14], lost_samples=r[15], core_ident=r[16], priority=r[17],
        keep_days=r[18], archive_action=r[19], cti_initiated=r[20], agent_initiated=r[21],
        meta=dict(zip(META_COLUMNS, r[fixed:len(_ROW_COLUMNS)], strict=True)),
        agent_id=agent_id, recording_type=recording_type, agent_first_name=first_name or "",
        agent_last_name=last_name or "", purged_time=purged_time, global_id=global_id or "",
    )
