"""recorderd on PostgreSQL (storage.database): a call recorded end to end over the socket API,
its row in the shared database; the password kept out of the logs."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from tests.helpers.engines import ON_POSTGRESQL
from tests.helpers.postgres import PASSWORD, Database, PostgresServer
from tests.helpers.recorders import RecorderProcess, start_recorderd

pytestmark = [pytest.mark.process, ON_POSTGRESQL]


def ok(answer: etree._Element) -> etree._Element:
    assert answer.findtext("RESULTCODE") == "20", etree.tostring(answer)
    return answer


def test_recorderd_records_a_call_into_postgresql(
        tmp_path: Path, postgres_db: Database, processes: list[RecorderProcess]) -> None:
    storage = (f'database = "{postgres_db.url}"\n'
               f'database_password_file = "{postgres_db.password_file}"\n')
    _, data, running = start_recorderd(tmp_path, processes,
                                       devices=("1001",), storage=storage)
    conn = running.connect()
    try:
        ok(conn.request("CALLSTART", 1, deviceid="1001", ani="6145551212", user1="Gold"))
        running.wait_recorded("1001", 1.0)
        ok(conn.request("CALLSTOP", 2, deviceid="1001"))
        (found,) = ok(conn.request("CALLLIST", 3, deviceid="1001")).findall("SEARCHRESULT")
    finally:
        conn.close()
    fields = {e.tag: e.text or "" for e in found}
    assert (fields["DEVICEID"], fields["ANI"], fields["USER1"]) == ("1001", "6145551212", "Gold")
    # The row is in PostgreSQL, not in a SQLite file beside the recordings.
    with postgres_db.connect() as db:
        rows = db.execute("SELECT device_id, ani, status FROM recordings").fetchall()
    assert rows == [("1001", "6145551212", "complete")]
    assert not (data / "recorder.sqlite3").exists()
    status = running.status()
    assert status["database"]["ok"] is True
    assert processes[0].stop() == 0
    log = processes[0].log
    assert f"store: PostgreSQL database {postgres_db.url} (schema" in log
    assert PASSWORD not in log


def wait_until(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def test_calls_during_a_postgresql_outage_are_spooled_and_written_after(
        tmp_path: Path, postgres_server: PostgresServer, postgres_db: Database,
        processes: list[RecorderProcess]) -> None:
    storage = (f'database = "{postgres_db.url}"\n'
               f'database_password_file = "{postgres_db.password_file}"\n'
               "spool_retry_seconds = 0.5\n")
    devices = ("1001", "1002", "1003")
    _, _, running = start_recorderd(tmp_path, processes, devices=devices, storage=storage)
    conn = running.connect()
    try:
        ok(conn.request("CALLSTART", 1, deviceid="1001", ani="1"))
        running.wait_recorded("1001", 0.5)
        postgres_server.stop()
        try:
            # The first write finds the server gone: it and all after it go to the spool.
            ok(conn.request("CALLSTOP", 2, deviceid="1001"))
            for n, device in enumerate(devices[1:], start=2):
                ok(conn.request("CALLSTART", 10 * n, deviceid=device, ani=str(n)))
                running.wait_recorded(device, 0.5)
                ok(conn.request("CALLSTOP", 10 * n + 1, deviceid=device))
            database = running.status()["database"]
            assert (database["ok"], database["spooled"] >= 5) == (False, True), database
            # Reads of recordings wait for the spool: 23, not a list missing calls.
            assert conn.request("CALLLIST", 5).findtext("RESULTCODE") == "23"
            time.sleep(3)  # the server stays down a while, the spool retrying
        finally:
            postgres_server.restart()
        wait_until(lambda: running.status()["database"]["spooled"] == 0,
                   "the spool written into PostgreSQL")
        listed = ok(conn.request("CALLLIST", 6, callcount=10)).findall("SEARCHRESULT")
    finally:
        conn.close()
    assert sorted((r.findtext("DEVICEID"), r.findtext("ANI")) for r in listed) == [
        ("1001", "1"), ("1002", "2"), ("1003", "3")]
    with postgres_db.connect() as db:
        rows = db.execute("SELECT ident, device_id, status FROM recordings ORDER BY device_id"
                          ).fetchall()
        # Every row stored once, under a RECORDID of its own, complete.
        assert [(d, s) for _, d, s in rows] == [(d, "complete") for d in devices]
        assert len({i for i, _, _ in rows}) == 3
        # The spooled ones were given RECORDIDs the spool had reserved from the sequence at
        # the start (before the first call took its own from it), not the next after the
        # highest: another server sharing the database can never be given them.
        first, *spooled = (i for i, _, _ in rows)
        assert all(i < first for i in spooled), rows
        (last,) = db.execute("SELECT last_value FROM recordings_ident_seq").fetchone()
        assert last >= first
    assert processes[0].stop() == 0
    log = processes[0].log
    assert "store: the database cannot be written" in log
    assert "replayed from the spool" in log
    assert PASSWORD not in log


def test_a_call_cut_by_kill_9_is_completed_in_postgresql_at_the_next_start(
        tmp_path: Path, postgres_db: Database, processes: list[RecorderProcess]) -> None:
    storage = (f'database = "{postgres_db.url}"\n'
               f'database_password_file = "{postgres_db.password_file}"\n')
    config, _, running = start_recorderd(tmp_path, processes, devices=("1001",),
                                         storage=storage)
    ok(running.request("CALLSTART", 1, deviceid="1001", ani="6145551212"))
    running.wait_recorded("1001", 1.0)
    processes[0].proc.send_signal(signal.SIGKILL)
    processes[0].proc.wait(30)
    with postgres_db.connect() as db:
        assert db.execute("SELECT status FROM recordings").fetchall() == [("recording",)]

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    running = again.wait_ready()
    (found,) = ok(running.request("CALLLIST", 2, deviceid="1001")).findall("SEARCHRESULT")
    assert found.findtext("ANI") == "6145551212"
    with postgres_db.connect() as db:
        ((status, duration),) = db.execute("SELECT status, duration FROM recordings"
                                           ).fetchall()
    # Completed from its file and the crash journal: what reached the file before the kill.
    assert status == "complete"
    assert 0 < duration < 30
    assert "interrupted by a crash" in again.log
    assert again.stop() == 0, again.log
