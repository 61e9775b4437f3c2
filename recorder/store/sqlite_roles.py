"""Groups, roles and permissions in SQLite: who belongs to which group, which roles a user has,
and what each role may do (MODIFYROLEPERMISSION's names)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from recorder.store.directory import GroupRow, RoleRow
from recorder.store.sqlite_conn import SqliteConnection, fold, rowid, set_pair


class SqliteRoles(SqliteConnection):
    """The groups-and-roles part of ``DirectoryStore`` on the shared SQLite connection."""

    def __init__(self, path: Path, busy_timeout: float = 5.0) -> None:
        super().__init__(path, busy_timeout)
        self._directory_changes = 0  # directory writes through this store

    def directory_version(self, *, wait: bool = True) -> tuple[int, int] | None:
        """Changes with every write to the directory: this store's own (counted), and any
        other connection's commit (SQLite's ``data_version``, whatever it changed). None
        without ``wait`` if the connection is busy."""
        reading = self._db if wait else self._db_now
        with reading("read the directory's version") as conn:
            if conn is None:
                return None
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            return self._directory_changes, int(version)

    @contextmanager
    def _changing(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write transaction on the directory (``_tx``) that changes its version."""
        with self._tx(what) as conn:
            yield conn
            # Counted in the transaction, under the connection's lock: a reader sees either
            # the old count and the old rows, or the new ones.
            self._directory_changes += 1

    # --- groups --------------------------------------------------------------------------------

    def add_group(self, name: str) -> tuple[GroupRow, bool]:
        with self._changing(f"add group {name}") as conn:
            existing = self._group(conn, None, name)
            if existing is not None:
                return existing, False
            cursor = conn.execute("INSERT INTO agent_groups (group_name) VALUES (?)", (name,))
            return GroupRow(rowid(cursor, "add group"), name), True

    def find_group(self, *, group_id: int | None = None, name: str | None = None
                   ) -> GroupRow | None:
        with self._db("find group") as conn:
            return self._group(conn, group_id, name)

    @staticmethod
    def _group(conn: sqlite3.Connection, group_id: int | None, name: str | None
               ) -> GroupRow | None:
        if name is not None:
            row = conn.execute("SELECT group_id, group_name FROM agent_groups WHERE"
                               " casefold(group_name) = ? ORDER BY group_id LIMIT 1",
                               (fold(name),)).fetchone()
        elif group_id is not None:
            row = conn.execute("SELECT group_id, group_name FROM agent_groups WHERE"
                               " group_id = ?", (group_id,)).fetchone()
        else:
            return None
        if row is None:
            return None
        users = tuple(r[0] for r in conn.execute(
            "SELECT user_id FROM group_users WHERE group_id = ? ORDER BY user_id", (row[0],)))
        devices = tuple(r[0] for r in conn.execute(
            "SELECT device_id FROM group_devices WHERE group_id = ? ORDER BY device_id",
            (row[0],)))
        return GroupRow(row[0], row[1], users, devices)

    def list_groups(self) -> list[GroupRow]:
        with self._db("list groups") as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT group_id FROM agent_groups ORDER BY group_id")]
            return [group for gid in ids if (group := self._group(conn, gid, None)) is not None]

    def set_group_member(self, group_id: int, user_id: int, device_id: str | None,
                         member: bool) -> bool:
        with self._changing(f"group {group_id} membership") as conn:
            changed = set_pair(conn, "group_users", ("group_id", "user_id"),
                                (group_id, user_id), member)
            if device_id is not None:
                changed |= set_pair(conn, "group_devices", ("group_id", "device_id"),
                                     (group_id, device_id), member)
        return changed

    # --- roles and permissions -----------------------------------------------------------------

    def add_role(self, name: str, description: str) -> RoleRow | None:
        with self._changing(f"add role {name}") as conn:
            if self._role(conn, None, name) is not None:
                return None
            cursor = conn.execute("INSERT INTO roles (role_name, description) VALUES (?, ?)",
                                  (name, description))
            return RoleRow(rowid(cursor, "add role"), name, description)

    def find_role(self, *, role_id: int | None = None, name: str | None = None
                  ) -> RoleRow | None:
        with self._db("find role") as conn:
            return self._role(conn, role_id, name)

    @staticmethod
    def _role(conn: sqlite3.Connection, role_id: int | None, name: str | None
              ) -> RoleRow | None:
        if role_id is not None:
            row = conn.execute("SELECT role_id, role_name, description FROM roles"
                               " WHERE role_id = ?", (role_id,)).fetchone()
        elif name is not None:
            row = conn.execute("SELECT role_id, role_name, description FROM roles WHERE"
                               " casefold(role_name) = ? ORDER BY role_id LIMIT 1",
                               (fold(name),)).fetchone()
        else:
            return None
        if row is None:
            return None
        rid = row[0]
        permissions = frozenset(r[0] for r in conn.execute(
            "SELECT permission FROM role_permissions WHERE role_id = ?", (rid,)))
        groups = tuple(r[0] for r in conn.execute(
            "SELECT group_id FROM role_groups WHERE role_id = ? ORDER BY group_id", (rid,)))
        users = tuple(r[0] for r in conn.execute(
            "SELECT user_id FROM user_roles WHERE role_id = ? ORDER BY user_id", (rid,)))
        return RoleRow(rid, row[1], row[2], permissions, groups, users)

    def list_roles(self) -> list[RoleRow]:
        with self._db("list roles") as conn:
            ids = [r[0] for r in conn.execute("SELECT role_id FROM roles ORDER BY role_id")]
            return [role for rid in ids if (role := self._role(conn, rid, None)) is not None]

    def user_roles(self, user_id: int) -> list[RoleRow]:
        with self._db(f"read the roles of user {user_id}") as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT role_id FROM user_roles WHERE user_id = ? ORDER BY role_id",
                (user_id,))]
            return [role for rid in ids if (role := self._role(conn, rid, None)) is not None]

    def modify_role(self, role_id: int, description: str) -> bool:
        with self._changing(f"modify role {role_id}") as conn:
            cursor = conn.execute("UPDATE roles SET description = ? WHERE role_id = ?",
                                  (description, role_id))
            return cursor.rowcount > 0

    def delete_role(self, role_id: int) -> bool:
        with self._changing(f"delete role {role_id}") as conn:
            for table in ("role_permissions", "role_groups", "user_roles"):
                conn.execute(f"DELETE FROM {table} WHERE role_id = ?", (role_id,))
            return conn.execute("DELETE FROM roles WHERE role_id = ?",
                                (role_id,)).rowcount > 0

    def set_role_group(self, role_id: int, group_id: int, member: bool) -> bool:
        with self._changing(f"role {role_id} groups") as conn:
            return set_pair(conn, "role_groups", ("role_id", "group_id"), (role_id, group_id),
                             member)

    def set_user_role(self, user_id: int, role_id: int, member: bool) -> bool:
        with self._changing(f"user {user_id} roles") as conn:
            return set_pair(conn, "user_roles", ("user_id", "role_id"), (user_id, role_id),
                             member)

    def set_role_permission(self, role_id: int, permission: str, granted: bool) -> bool:
        with self._changing(f"role {role_id} permissions") as conn:
            return set_pair(conn, "role_permissions", ("role_id", "permission"),
                             (role_id, permission), granted)

