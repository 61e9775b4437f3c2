"""A real PostgreSQL server for the tests: Debian's ``postgresql`` (15), ``initdb`` and
``pg_ctl`` into a temporary directory, listening on a free port of 127.0.0.1 and on a unix
socket in that directory. One server per pytest session (so one per xdist worker), a fresh
database per test.

Never skipped: a server that cannot start fails the test with its log (CI installs the
package, scripts/test). As root the server runs as the ``postgres`` user (``runuser``), as
PostgreSQL refuses to run as root; otherwise as the user running the tests.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from tests.helpers.net import free_port

# Where Debian puts the server's programs (not on PATH: pg_wrapper only wraps the clients).
PG_BIN = Path(os.environ.get("RECORDER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
# The role the recorder connects as: owner of its database, no superuser (as in production).
ROLE = "recorder"
PASSWORD = "s3cret-for-tests"  # a throwaway server's, on 127.0.0.1 only


class PostgresFailed(RuntimeError):
    """The test server could not be started or used; the message holds its log."""


@dataclass(frozen=True)
class Database:
    """One test's database on the test server: ``url`` (no password in it, as the config
    has it), ``password_file`` (the password, as storage.database_password_file reads it)."""

    server: PostgresServer
    name: str
    password_file: Path

    @property
    def url(self) -> str:
        return f"postgresql://{ROLE}@127.0.0.1:{self.server.port}/{self.name}"

    def connect(self) -> psycopg.Connection[tuple[object, ...]]:
        """A connection of the recorder's role to this database (for a test's own checks)."""
        return psycopg.connect(self.url, password=PASSWORD, autocommit=True)


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary directory."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="recorder-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = 0
        self._user = self._run_as()
        self._names = itertools.count(1)
        self._templated = False

    @staticmethod
    def _run_as() -> str | None:
        """The user the server runs as: postgres if we are root (it refuses root)."""
        return SUPERUSER if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        if self._user is None:
            return list(args)
        return ["runuser", "-u", self._user, "--", *args]

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True, check=False,
                              timeout=120)
        if done.returncode != 0:
            raise PostgresFailed(f"{' '.join(args)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}\n{self.log_text()}")

    def log_text(self) -> str:
        try:
            return f"--- {self.log} ---\n{self.log.read_text(errors='replace')[-8000:]}"
        except OSError:
            return f"(no server log at {self.log})"

    def start(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise PostgresFailed(f"{PG_BIN}/initdb not found: install Debian's postgresql "
                                 "package (scripts/test does)")
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._user is not None:
            os.chown(pwfile, pwd.getpwnam(self._user).pw_uid, -1)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        for attempt in range(5):
            self.port = free_port()
            try:
                self._ctl_start()
                break
            except PostgresFailed:
                if attempt == 4 or "could not bind" not in self.log_text():
                    raise
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)))

    def _ctl_start(self) -> None:
        # A test server: durability is not what is tested here, speed is (fsync off).
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1"
                   f" -c unix_socket_directories={self.dir} -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off"
                   " -c max_connections=200 -c shared_buffers=32MB")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                  "-t", "60", "-o", options, "start")

    def stop(self) -> None:
        """Stop the server (fast: open connections are cut) and keep its directory."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        """Start again on the same port (after ``stop``)."""
        self._ctl_start()

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    @contextmanager
    def admin(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """A superuser connection over the unix socket (trusted)."""
        try:
            conn = psycopg.connect(host=str(self.dir), port=self.port, user=SUPERUSER,
                                   dbname="postgres", autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise PostgresFailed(f"cannot connect to the test server: {exc}\n"
                                 f"{self.log_text()}") from exc
        with conn:
            yield conn

    def new_database(self, password_dir: Path, *, empty: bool = False) -> Database:
        """A database owned by the recorder's role, and a file with its password: at the
        current schema (a copy of one the store made, which is quicker than making each anew),
        or ``empty``."""
        template = "template0" if empty else self._template()
        name = f"t{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        with self.admin() as conn:
            # FILE_COPY: a copy of the template's files, much quicker for a small template.
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE {} STRATEGY FILE_COPY"
                                 ).format(sql.Identifier(name), sql.Identifier(ROLE),
                                          sql.Identifier(template)))
        password_file = password_dir / "database-password"
        password_file.write_text(PASSWORD + "\n")
        return Database(self, name, password_file)

    def _template(self) -> str:
        """A database the store has brought to its schema (made once per server)."""
        name = "recorder_template"
        if self._templated:
            return name
        from recorder.store.pg import PgStore  # noqa: PLC0415 - the store under test

        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(ROLE)))
        password_file = self.dir / "template-password"
        password_file.write_text(PASSWORD + "\n")
        store = PgStore(Database(self, name, password_file).url, self.dir,
                        password_file=str(password_file))
        store.open()
        store.close()
        self._templated = True
        return name

    def drop_database(self, database: Database) -> None:
        with self.admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database.name)))


__all__ = ["PASSWORD", "ROLE", "Database", "PostgresFailed", "PostgresServer"]
