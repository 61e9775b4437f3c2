"""The directory in the store, on real databases (each test on SQLite and PostgreSQL but the
SQLite file's upgrade): migration, users, phones, chats."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from recorder.store import pg_conn
from recorder.store.directory import (
    AgentWindow,
    PhoneInUse,
    StationRow,
    UserExists,
    UserFields,
    UserQuery,
)
from recorder.store.pg import PgStore
from recorder.store.records import ChatStart, NewRecording, RecordingQuery
from recorder.store.schema import CREATE_V1, MIGRATIONS, SCHEMA_VERSION
from recorder.store.sqlite import SqliteStore
from tests.helpers.engines import ON_POSTGRESQL, EngineDatabase
from tests.helpers.postgres import PASSWORD, PostgresServer

NOW = 1_700_000_000.0


@pytest.fixture
def store(engine_db: EngineDatabase) -> Any:
    s = engine_db.store()
    s.open()
    yield s
    s.close()


def call(device: str, start: float = NOW) -> NewRecording:
    return NewRecording(device_id=device, call_instance="", channel=1, filename=f"/r/{device}.wav",
                        media_format="wav", sample_rate=8000, start_time=start, core_ident=1)


def test_every_schema_version_has_its_migration() -> None:
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_a_new_database_says_it_was_created_not_upgraded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recorder.store")
    store = SqliteStore(tmp_path / "new.sqlite3")
    store.open()
    store.close()
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if "schema" in m] == [
        f"store: creating {tmp_path / 'new.sqlite3'} at schema {SCHEMA_VERSION}",
        f"store: SQLite database {tmp_path / 'new.sqlite3'} (schema {SCHEMA_VERSION})"]


@ON_POSTGRESQL
def test_a_new_postgresql_database_says_it_was_created_not_upgraded(
        postgres_server: PostgresServer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recorder.store")
    database = postgres_server.new_database(tmp_path, empty=True)
    try:
        store = PgStore(database.url, tmp_path, password_file=str(database.password_file))
        store.open()
        store.close()
    finally:
        postgres_server.drop_database(database)
    said = [r.getMessage() for r in caplog.records]
    where = f"postgresql://recorder@127.0.0.1:{postgres_server.port}/{database.name}"
    assert [m for m in said if "schema" in m] == [
        f"store: creating {where} at schema {SCHEMA_VERSION}",
        f"store: PostgreSQL database {where} (schema {SCHEMA_VERSION})"]
    assert not [m for m in said if PASSWORD in m]


@ON_POSTGRESQL
@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_a_postgresql_database_of_each_earlier_version_is_upgraded_and_keeps_its_recordings(
        postgres_server: PostgresServer, tmp_path: Path, version: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    database = postgres_server.new_database(tmp_path, empty=True)
    try:
        # The database as a recorder of that schema left it: the same steps, stopped there.
        monkeypatch.setattr(pg_conn, "SCHEMA_VERSION", version)
        old = PgStore(database.url, tmp_path, password_file=str(database.password_file))
        old.open()
        old.close()
        monkeypatch.undo()
        with database.connect() as conn:
            assert conn.execute("SELECT version FROM recorder_schema").fetchall() == [
                (version,)]
            conn.execute("INSERT INTO recordings (device_id, filename, recording_time,"
                         " media_format, sample_rate, start_time, status, core_ident, user1)"
                         " VALUES ('1001', '/r/a.wav', 5, 'wav', 8000, 5.0, 'complete', 1,"
                         " 'kept')")
        store = PgStore(database.url, tmp_path, password_file=str(database.password_file))
        store.open()
        try:
            (row,) = store.list_recordings(RecordingQuery())
            assert (row.meta["USER1"], row.agent_id, row.recording_type) == (
                "kept", None, "audio")
            assert store.add_user(UserFields(first_name="A", last_name="B"), now=NOW) == 1
            assert store.insert_recording(call("1002")) == row.ident + 1
        finally:
            store.close()
        with database.connect() as conn:
            assert conn.execute("SELECT version FROM recorder_schema").fetchall() == [
                (SCHEMA_VERSION,)]
    finally:
        postgres_server.drop_database(database)


def test_a_version_1_database_is_upgraded_and_keeps_its_recordings(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recorder.store")
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(f"{CREATE_V1}\nPRAGMA user_version = 1;")
    conn.execute("INSERT INTO recordings (device_id, filename, recording_time, media_format,"
                 " sample_rate, start_time, status, core_ident, user1) VALUES"
                 " ('1001', '/r/a.wav', 5, 'wav', 8000, 5.0, 'complete', 1, 'kept')")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    store.open()
    try:
        (row,) = store.list_recordings(RecordingQuery())
        assert (row.meta["USER1"], row.agent_id, row.recording_type) == ("kept", None, "audio")
        assert store.add_user(UserFields(first_name="A", last_name="B"), now=NOW) == 1
    finally:
        store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    upgraded = [r.getMessage() for r in caplog.records if "upgrading" in r.getMessage()]
    assert upgraded == [f"store: upgrading {path} from schema {step} to {step + 1}"
                        for step in range(1, SCHEMA_VERSION)]


def test_names_match_without_regard_to_case_even_beyond_ascii(store: SqliteStore) -> None:
    zoe = store.add_user(UserFields(first_name="ZOË", last_name="Ÿmir", username="Ÿ.Z"), now=NOW)
    with pytest.raises(UserExists) as exists:
        store.add_user(UserFields(first_name="zoë", last_name="ÿmir"), now=NOW)
    assert exists.value.user_id == zoe
    with pytest.raises(UserExists):
        store.add_user(UserFields(first_name="x", last_name="y", username="ÿ.z"), now=NOW)
    assert [u.user_id for u in store.find_users(UserQuery(username="ÿ.Z"))] == [zoe]
    assert len(store.list_users()) == 1


def test_a_refused_change_leaves_nothing_behind(store: SqliteStore) -> None:
    john = store.add_user(UserFields(first_name="John", last_name="Doe", phones=("1", "2")),
                          now=NOW)
    with pytest.raises(PhoneInUse) as in_use:
        store.add_user(UserFields(first_name="Jane", last_name="Roe", phones=("3", "2")),
                       now=NOW)
    assert (in_use.value.phone_id, in_use.value.user_id) == ("2", john)
    assert [u.user_id for u in store.list_users()] == [john]
    assert store.find_users(UserQuery(phone_id="3")) == []
    jane = store.add_user(UserFields(first_name="Jane", last_name="Roe"), now=NOW)
    with pytest.raises(PhoneInUse):
        store.modify_user(jane, UserFields(email="j@x", phones=("9", "1")), now=NOW + 1)
    after = store.get_user(jane)
    assert after is not None
    assert (after.email, after.phones, after.mod_time) == ("", (), NOW)


def test_recordings_name_the_agent_who_had_the_phone_when_they_started(
        store: SqliteStore) -> None:
    john = store.add_user(UserFields(first_name="John", last_name="Doe", phones=("1001",)),
                          now=NOW)
    before = store.insert_recording(call("1001"))
    assert store.unassign_phone(john, "1001")
    jane = store.add_user(UserFields(first_name="Jane", last_name="Roe"), now=NOW)
    assert store.assign_phone(jane, "1001", now=NOW)
    after = store.insert_recording(call("1001", NOW + 10))
    unowned = store.insert_recording(call("2002", NOW + 20))
    assert store.delete_user(john, now=NOW + 30)
    rows = {r.ident: r for r in store.list_recordings(RecordingQuery())}
    assert (rows[before].agent_id, rows[before].agent_first_name,
            rows[before].agent_last_name) == (john, "John", "Doe")  # deleted, still named
    assert (rows[after].agent_id, rows[after].agent_first_name) == (jane, "Jane")
    assert (rows[unowned].agent_id, rows[unowned].agent_first_name) == (None, "")


def test_stations_groups_roles_windows(store: SqliteStore) -> None:
    store.replace_station(StationRow("PC1", "1001", 1))
    store.replace_station(StationRow("PC2", "1002", 1))
    assert store.replace_station(StationRow("pc1", "1002", 2)) == StationRow("pc1", "1002", 2)
    assert store.list_stations() == [StationRow("pc1", "1002", 2)]
    group, created = store.add_group("Sales")
    assert created
    assert store.add_group("SALES") == (group, False)
    user = store.add_user(UserFields(first_name="A", last_name="B"), now=NOW)
    assert store.set_group_member(group.group_id, user, "1001", True)
    assert not store.set_group_member(group.group_id, user, "1001", True)
    role = store.add_role("QA", "")
    assert role is not None
    assert store.add_role("qa", "x") is None
    assert store.set_role_group(role.role_id, group.group_id, True)
    assert store.set_user_role(user, role.role_id, True)
    assert store.set_role_permission(role.role_id, "SECUREID", True)
    assert store.delete_role(role.role_id)
    assert store.find_role(name="QA") is None
    store.report_agent_window(AgentWindow("PC1", "ann", "d", "10.0.0.1", "IDLE", "Mail", NOW))
    store.report_agent_window(AgentWindow("PC2", "bob", "d", "10.0.0.2", "BUSY", "CRM", NOW + 1))
    store.report_agent_window(AgentWindow("pc1", "ANN", "d", "10.0.0.1", "BUSY", "Web", NOW + 2))
    assert store.latest_agent_window(computer_name="PC1") == AgentWindow(
        "pc1", "ANN", "d", "10.0.0.1", "BUSY", "Web", NOW + 2)
    assert store.latest_agent_window(user_name="bob", computer_name="nowhere") == AgentWindow(
        "PC2", "bob", "d", "10.0.0.2", "BUSY", "CRM", NOW + 1)
    assert store.latest_agent_window() is None


def test_chat_sessions_are_screen_recordings(store: SqliteStore) -> None:
    agent = store.add_user(UserFields(first_name="A", last_name="B"), now=NOW)
    start = ChatStart(session_id="s", agent_id=agent, device_id="", start_time=NOW,
                      core_ident=1, meta={"SYS_USER": "corp\\a"})
    first, replaced = store.start_chat(start)
    assert replaced is None
    second, replaced = store.start_chat(start)
    assert replaced == first
    assert store.update_chat("s", {"USER2": "x"}) == second
    assert store.stop_chat("s", NOW + 90) == second
    assert store.stop_chat("s", NOW + 91) is None
    assert store.update_chat("other", {}) is None
    row = store.get_recording(second)
    assert row is not None
    assert (row.recording_type, row.status, row.duration, row.stop_reason, row.meta["USER2"],
            row.agent_first_name, row.filename) == (
        "screen", "complete", 90.0, "chatstop", "x", "A", "")
