"""The store's contract suite on both engines: a test that takes the ``engine`` fixture (or
``engine_db``) runs once on SQLite and once on PostgreSQL (tests/helpers/postgres.py), with
the same assertions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from recorder.store.pg import PgStore
from recorder.store.sqlite import SqliteStore
from tests.helpers.postgres import PASSWORD, Database, PostgresServer

ENGINES = ("sqlite", "postgresql")
# The PostgreSQL tests run on one xdist worker (--dist loadgroup), so one server starts.
ON_POSTGRESQL = pytest.mark.xdist_group("postgresql")
# A fixture's params: each engine, PostgreSQL's grouped.
ENGINE_PARAMS = ("sqlite", pytest.param("postgresql", marks=ON_POSTGRESQL))


class EngineDatabase:
    """One test's database on one engine: stores on it, and a plain connection to look."""

    def __init__(self, engine: str, directory: Path, request: pytest.FixtureRequest) -> None:
        self.engine = engine
        self.directory = directory
        self.pg: Database | None = None
        if engine == "postgresql":
            server: PostgresServer = request.getfixturevalue("postgres_server")
            self.pg = server.new_database(directory)
            request.addfinalizer(lambda: server.drop_database(self.pg))  # type: ignore[arg-type]

    @property
    def sqlite_path(self) -> Path:
        return self.directory / "recorder.sqlite3"

    def store(self) -> SqliteStore:
        """A store on this database, not opened."""
        if self.pg is None:
            return SqliteStore(self.sqlite_path)
        return PgStore(self.pg.url, self.directory, password_file=str(self.pg.password_file))

    def storage(self) -> dict[str, Any]:
        """The [storage] keys that point a recorder at this database."""
        if self.pg is None:
            return {"data_dir": str(self.directory)}
        return {"data_dir": str(self.directory), "database": self.pg.url,
                "database_password_file": str(self.pg.password_file)}

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query run beside the store (``?`` placeholders on both engines)."""
        if self.pg is None:
            conn = sqlite3.connect(self.sqlite_path)
            try:
                with conn:
                    return conn.execute(sql, params).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.pg.url, password=PASSWORD, autocommit=True) as pg:
            cursor = pg.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    def columns(self, table: str) -> set[str]:
        if self.pg is None:
            return {str(r[1]) for r in self.query(f"PRAGMA table_info({table})")}
        return {str(r[0]) for r in self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            (table,))}

    def set_schema_version(self, version: int) -> None:
        """Mark the database as made by a recorder of schema ``version``."""
        if self.pg is None:
            self.query(f"PRAGMA user_version = {int(version)}")
            return
        self.query("CREATE TABLE IF NOT EXISTS recorder_schema (version INTEGER NOT NULL)")
        self.query("DELETE FROM recorder_schema")
        self.query("INSERT INTO recorder_schema (version) VALUES (?)", (version,))


__all__ = ["ENGINES", "ENGINE_PARAMS", "ON_POSTGRESQL", "EngineDatabase"]
