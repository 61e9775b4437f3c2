"""Screen-capture (chat) sessions in SQLite: each is a recording row with no audio (CHATSTART),
completed by CHATSTOP, its metadata changed by CHATUPDATE."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from recorder.store.records import STATUS_COMPLETE, STATUS_RECORDING, TYPE_SCREEN, ChatStart
from recorder.store.schema import META_COLUMNS
from recorder.store.sqlite_conn import SqliteConnection, rowid
from recorder.store.sqlite_evidence import seal_rows

CHAT_STOPPED = "chatstop"
CHAT_REPLACED = "replaced"  # a new CHATSTART came with the same SESSIONID


class SqliteChat(SqliteConnection):
    """The chat-session part of ``RecordingStore`` on the shared SQLite connection."""

    def start_chat(self, chat: ChatStart) -> tuple[int, int | None]:
        with self._tx(f"start chat {chat.session_id}") as conn:
            replaced = self._open_chat(conn, chat.session_id)
            if replaced is not None:
                self._end_chat(conn, replaced, chat.start_time, CHAT_REPLACED)
            values: dict[str, Any] = {
                "device_id": chat.device_id,
                "call_instance": chat.session_id,
                "filename": "",
                "media_format": "",
                "sample_rate": 0,
                "recording_time": int(chat.start_time),
                "start_time": chat.start_time,
                "status": STATUS_RECORDING,
                "core_ident": chat.core_ident,
                "agent_id": chat.agent_id,
                "recording_type": TYPE_SCREEN,
                "screen_capture": 1,
            }
            values.update({META_COLUMNS[k]: v for k, v in chat.meta.items()})
            cursor = conn.execute(
                f"INSERT INTO recordings ({', '.join(values)}) "
                f"VALUES ({', '.join('?' * len(values))})", tuple(values.values()))
            ident = rowid(cursor, "start chat")
            conn.execute("INSERT INTO chat_sessions (ident, session_id, open) VALUES (?, ?, 1)",
                         (ident, chat.session_id))
        return ident, replaced

    def stop_chat(self, session_id: str, stop_time: float) -> int | None:
        with self._tx(f"stop chat {session_id}") as conn:
            ident = self._open_chat(conn, session_id)
            if ident is not None:
                self._end_chat(conn, ident, stop_time, CHAT_STOPPED)
        return ident

    def update_chat(self, session_id: str, meta: Mapping[str, str]) -> int | None:
        with self._tx(f"update chat {session_id}") as conn:
            row = conn.execute("SELECT ident FROM chat_sessions WHERE session_id = ?"
                               " ORDER BY open DESC, ident DESC LIMIT 1",
                               (session_id,)).fetchone()
            if row is None:
                return None
            ident = int(row[0])
            if meta:
                values = {META_COLUMNS[k]: v for k, v in meta.items()}
                assignments = ", ".join(f"{column} = ?" for column in values)
                conn.execute(f"UPDATE recordings SET {assignments} WHERE ident = ?",
                             (*values.values(), ident))
                seal_rows(conn, (ident,), self.sealing)
        return ident

    @staticmethod
    def _open_chat(conn: sqlite3.Connection, session_id: str) -> int | None:
        row = conn.execute("SELECT ident FROM chat_sessions WHERE session_id = ? AND open = 1"
                           " ORDER BY ident DESC LIMIT 1", (session_id,)).fetchone()
        return int(row[0]) if row else None

    def _end_chat(self, conn: sqlite3.Connection, ident: int, stop_time: float,
                  reason: str) -> None:
        conn.execute(
            "UPDATE recordings SET stop_time = ?, duration = MAX(0, ? - start_time), status = ?,"
            " stop_reason = ? WHERE ident = ?",
            (stop_time, stop_time, STATUS_COMPLETE, reason, ident))
        conn.execute("UPDATE chat_sessions SET open = 0 WHERE ident = ?", (ident,))
        seal_rows(conn, (ident,), self.sealing)



__all__ = ["CHAT_REPLACED", "CHAT_STOPPED", "SqliteChat"]
