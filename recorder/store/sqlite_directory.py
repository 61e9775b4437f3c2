"""The directory in SQLite: users, phones, stations, groups, roles, agent windows.

Every change that checks before it writes (a name already taken, a phone already assigned) runs
in one transaction, so a refused request changes nothing and two requests cannot both pass the
same check.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from recorder.store.directory import (
    USER_ACTIVE,
    AgentWindow,
    DirectoryStore,
    PhoneInUse,
    StationRow,
    UserExists,
    UserFields,
    UserQuery,
    UserRow,
)
from recorder.store.sqlite_conn import fold, rowid
from recorder.store.sqlite_roles import SqliteRoles

_USER_SELECT = (
    "SELECT user_id, username, employee_id, first_name, last_name, status, deleted, add_time,"
    " mod_time, sys_user, sys_domain, email, crm_user, site_id, password_hash IS NOT NULL,"
    " allow_self_record, allow_self_download FROM users"
)
# UserFields attribute -> users column, for the plain text and number fields.
_USER_COLUMNS = {
    "username": "username", "employee_id": "employee_id", "first_name": "first_name",
    "last_name": "last_name", "status": "status", "sys_user": "sys_user",
    "domain": "sys_domain", "email": "email", "crm_user": "crm_user", "site_id": "site_id",
    "password_hash": "password_hash", "allow_self_record": "allow_self_record",
    "allow_self_download": "allow_self_download",
}
# UserQuery attribute -> the users column it is compared with, ignoring case.
_QUERY_COLUMNS = {
    "username": "username", "first_name": "first_name", "last_name": "last_name",
    "sys_user": "sys_user", "crm_user": "crm_user", "employee_id": "employee_id",
}


class SqliteDirectory(SqliteRoles, DirectoryStore):
    """``DirectoryStore`` on the shared SQLite connection."""

    # --- users and phones ----------------------------------------------------------------------

    def add_user(self, fields: UserFields, *, now: float, allow_duplicate_name: bool = False
                 ) -> int:
        first, last = fields.first_name or "", fields.last_name or ""
        with self._changing("add user") as conn:
            if not allow_duplicate_name:
                self._check_name_free(conn, first, last, None)
            if fields.username:
                self._check_username_free(conn, fields.username, None)
            values: dict[str, Any] = {
                column: getattr(fields, attr) for attr, column in _USER_COLUMNS.items()
                if getattr(fields, attr) is not None
            }
            values.setdefault("status", USER_ACTIVE)
            values["add_time"] = fields.add_time if fields.add_time is not None else now
            values["mod_time"] = fields.mod_time if fields.mod_time is not None else now
            cursor = conn.execute(
                f"INSERT INTO users ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()))
            user_id = rowid(cursor, "add user")
            self._set_phones(conn, user_id, fields.phones or (), now)
        return user_id

    def modify_user(self, user_id: int, fields: UserFields, *, now: float) -> bool:
        with self._changing(f"modify user {user_id}") as conn:
            current = self._user(conn, user_id)
            if current is None or current.deleted:
                return False
            first = fields.first_name if fields.first_name is not None else current.first_name
            last = fields.last_name if fields.last_name is not None else current.last_name
            if (fold(first), fold(last)) != (fold(current.first_name),
                                                fold(current.last_name)):
                self._check_name_free(conn, first, last, user_id)
            if fields.username:
                self._check_username_free(conn, fields.username, user_id)
            values: dict[str, Any] = {
                column: getattr(fields, attr) for attr, column in _USER_COLUMNS.items()
                if getattr(fields, attr) is not None
            }
            if fields.add_time is not None:
                values["add_time"] = fields.add_time
            values["mod_time"] = fields.mod_time if fields.mod_time is not None else now
            assignments = ", ".join(f"{column} = ?" for column in values)
            conn.execute(f"UPDATE users SET {assignments} WHERE user_id = ?",
                         (*values.values(), user_id))
            if fields.phones is not None:
                self._set_phones(conn, user_id, fields.phones, now)
        return True

    def delete_user(self, user_id: int, *, now: float) -> bool:
        with self._changing(f"delete user {user_id}") as conn:
            cursor = conn.execute(
                "UPDATE users SET deleted = 1, delete_time = ?, mod_time = ?"
                " WHERE user_id = ? AND deleted = 0", (now, now, user_id))
            if cursor.rowcount == 0:
                return False
            conn.execute("DELETE FROM agent_phones WHERE user_id = ?", (user_id,))
        return True

    def get_user(self, user_id: int) -> UserRow | None:
        with self._db(f"read user {user_id}") as conn:
            return self._user(conn, user_id)

    def find_users(self, query: UserQuery) -> list[UserRow]:
        where = ["deleted = 0"]
        args: list[Any] = []
        if query.user_id is not None:
            where.append("user_id = ?")
            args.append(query.user_id)
        for attr, column in _QUERY_COLUMNS.items():
            value = getattr(query, attr)
            if value is not None:
                where.append(f"casefold({column}) = ?")
                args.append(fold(value))
        if query.phone_id is not None:
            where.append("user_id IN (SELECT user_id FROM agent_phones WHERE phone_id = ?)")
            args.append(query.phone_id)
        with self._db("find users") as conn:
            return self._users(conn, f"{_USER_SELECT} WHERE {' AND '.join(where)}"
                                     " ORDER BY user_id", args)

    def password_hash(self, user_id: int) -> str | None:
        with self._db(f"read the password of user {user_id}") as conn:
            row = conn.execute("SELECT password_hash FROM users WHERE user_id = ?"
                               " AND deleted = 0", (user_id,)).fetchone()
        return row[0] if row and row[0] else None

    def user_permissions(self, user_id: int) -> frozenset[str]:
        with self._db(f"read the permissions of user {user_id}") as conn:
            rows = conn.execute(
                "SELECT DISTINCT p.permission FROM user_roles u JOIN role_permissions p"
                " ON p.role_id = u.role_id WHERE u.user_id = ?", (user_id,)).fetchall()
        return frozenset(r[0] for r in rows)

    def list_users(self) -> list[UserRow]:
        with self._db("list users") as conn:
            return self._users(conn, f"{_USER_SELECT} WHERE deleted = 0 ORDER BY user_id", ())

    def assign_phone(self, user_id: int, phone_id: str, *, now: float) -> bool:
        with self._changing(f"assign phone {phone_id}") as conn:
            owner = self._phone_owner(conn, phone_id)
            if owner == user_id:
                return False
            if owner is not None:
                raise PhoneInUse(phone_id, owner)
            conn.execute("INSERT INTO agent_phones (phone_id, user_id, assigned_time)"
                         " VALUES (?, ?, ?)", (phone_id, user_id, now))
        return True

    def unassign_phone(self, user_id: int, phone_id: str) -> bool:
        with self._changing(f"unassign phone {phone_id}") as conn:
            owner = self._phone_owner(conn, phone_id)
            if owner is None:
                return False
            if owner != user_id:
                raise PhoneInUse(phone_id, owner)
            conn.execute("DELETE FROM agent_phones WHERE phone_id = ?", (phone_id,))
        return True

    @staticmethod
    def _phone_owner(conn: sqlite3.Connection, phone_id: str) -> int | None:
        row = conn.execute("SELECT user_id FROM agent_phones WHERE phone_id = ?",
                           (phone_id,)).fetchone()
        return int(row[0]) if row else None

    def _set_phones(self, conn: sqlite3.Connection, user_id: int, phones: Iterable[str],
                    now: float) -> None:
        wanted = list(dict.fromkeys(phones))
        for phone_id in wanted:
            owner = self._phone_owner(conn, phone_id)
            if owner is not None and owner != user_id:
                raise PhoneInUse(phone_id, owner)
        held = {r[0] for r in conn.execute(
            "SELECT phone_id FROM agent_phones WHERE user_id = ?", (user_id,))}
        for phone_id in held - set(wanted):
            conn.execute("DELETE FROM agent_phones WHERE phone_id = ?", (phone_id,))
        for phone_id in wanted:
            if phone_id not in held:
                conn.execute("INSERT INTO agent_phones (phone_id, user_id, assigned_time)"
                             " VALUES (?, ?, ?)", (phone_id, user_id, now))

    @staticmethod
    def _check_name_free(conn: sqlite3.Connection, first: str, last: str,
                         user_id: int | None) -> None:
        row = conn.execute(
            "SELECT user_id FROM users WHERE deleted = 0 AND casefold(first_name) = ?"
            " AND casefold(last_name) = ? AND user_id IS NOT ? ORDER BY user_id LIMIT 1",
            (fold(first), fold(last), user_id)).fetchone()
        if row:
            raise UserExists(int(row[0]), f"a user named {first} {last} already exists "
                                          f"(USERID {row[0]})")

    @staticmethod
    def _check_username_free(conn: sqlite3.Connection, username: str,
                             user_id: int | None) -> None:
        row = conn.execute(
            "SELECT user_id FROM users WHERE deleted = 0 AND casefold(username) = ?"
            " AND user_id IS NOT ? ORDER BY user_id LIMIT 1",
            (fold(username), user_id)).fetchone()
        if row:
            raise UserExists(int(row[0]), f"USERNAME {username} is already taken "
                                          f"(USERID {row[0]})")

    def _user(self, conn: sqlite3.Connection, user_id: int) -> UserRow | None:
        users = self._users(conn, f"{_USER_SELECT} WHERE user_id = ?", (user_id,))
        return users[0] if users else None

    @staticmethod
    def _users(conn: sqlite3.Connection, sql: str, args: Iterable[Any]) -> list[UserRow]:
        rows = conn.execute(sql, tuple(args)).fetchall()
        if not rows:
            return []
        ids = [r[0] for r in rows]
        phones: dict[int, list[str]] = {i: [] for i in ids}
        for chunk in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            part = ids[chunk:chunk + 500]
            for user_id, phone_id in conn.execute(
                    f"SELECT user_id, phone_id FROM agent_phones WHERE user_id IN "
                    f"({', '.join('?' * len(part))}) ORDER BY assigned_time, rowid", part):
                phones[user_id].append(phone_id)
        return [UserRow(
            user_id=r[0], username=r[1], employee_id=r[2], first_name=r[3], last_name=r[4],
            status=r[5], deleted=bool(r[6]), add_time=r[7], mod_time=r[8], sys_user=r[9],
            domain=r[10], email=r[11], crm_user=r[12], site_id=r[13], has_password=bool(r[14]),
            allow_self_record=r[15], allow_self_download=r[16], phones=tuple(phones[r[0]]),
        ) for r in rows]

    # --- workstations --------------------------------------------------------------------------

    def replace_station(self, station: StationRow) -> StationRow:
        with self._tx(f"import workstation {station.station_name}") as conn:
            conn.execute("DELETE FROM stations WHERE device_id = ? OR casefold(station_name) = ?",
                         (station.device_id, fold(station.station_name)))
            cursor = conn.execute(
                "INSERT INTO stations (station_name, device_id, location_id) VALUES (?, ?, ?)",
                (station.station_name, station.device_id, station.location_id))
            row = conn.execute("SELECT station_name, device_id, location_id FROM stations"
                               " WHERE rowid = ?", (cursor.lastrowid,)).fetchone()
        return StationRow(row[0], row[1], row[2])

    def delete_station(self, station_name: str) -> StationRow | None:
        with self._tx(f"delete workstation {station_name}") as conn:
            row = conn.execute("SELECT station_name, device_id, location_id FROM stations"
                               " WHERE casefold(station_name) = ?",
                               (fold(station_name),)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM stations WHERE casefold(station_name) = ?",
                         (fold(station_name),))
        return StationRow(row[0], row[1], row[2])

    def list_stations(self) -> list[StationRow]:
        with self._db("list stations") as conn:
            rows = conn.execute("SELECT station_name, device_id, location_id FROM stations"
                                " ORDER BY casefold(station_name), rowid").fetchall()
        return [StationRow(r[0], r[1], r[2]) for r in rows]

    # --- agent windows -------------------------------------------------------------------------

    def report_agent_window(self, window: AgentWindow) -> None:
        with self._tx(f"agent window of {window.computer_name}") as conn:
            conn.execute(
                "INSERT INTO agent_windows (computer_name, user_name, computer_key, user_key,"
                " domain, ip_address, status, application_title, last_update)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (computer_key, user_key) DO UPDATE SET"
                " computer_name = excluded.computer_name, user_name = excluded.user_name,"
                " domain = excluded.domain, ip_address = excluded.ip_address,"
                " status = excluded.status, application_title = excluded.application_title,"
                " last_update = excluded.last_update",
                (window.computer_name, window.user_name, fold(window.computer_name),
                 fold(window.user_name), window.domain, window.ip_address, window.status,
                 window.application_title, window.last_update))

    def latest_agent_window(self, *, computer_name: str | None = None,
                            user_name: str | None = None) -> AgentWindow | None:
        where: list[str] = []
        args: list[str] = []
        if computer_name:
            where.append("computer_key = ?")
            args.append(fold(computer_name))
        if user_name:
            where.append("user_key = ?")
            args.append(fold(user_name))
        if not where:
            return None
        with self._db("read agent window") as conn:
            row = conn.execute(
                "SELECT computer_name, user_name, domain, ip_address, status, application_title,"
                f" last_update FROM agent_windows WHERE {' OR '.join(where)}"
                " ORDER BY last_update DESC, rowid DESC LIMIT 1", args).fetchone()
        return AgentWindow(*row) if row else None


__all__ = ["SqliteDirectory"]
