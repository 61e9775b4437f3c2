"""recorderd on PostgreSQL (storage.database): a call recorded end to end over the socket API,
its row in the shared database; the password kept out of the logs."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from tests.helpers.postgres import PASSWORD, Database
from tests.helpers.recorders import RecorderProcess, start_recorderd

pytestmark = pytest.mark.process


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
