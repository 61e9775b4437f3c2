"""What the portal asks of the store: the audit trail (append-only, even to SQL), the search's
further filters and paging, LISTENEDTO, deleting a row, passwords and permissions; and
``recorderctl user`` and ``recorderctl audit`` on a real database."""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.ctl import main
from recorder.store.audit import AuditEntry, AuditQuery
from recorder.store.directory import UserFields
from recorder.store.records import FinishedRecording, NewRecording, RecordingQuery
from recorder.store.sqlite import SqliteStore
from tests.helpers.ctl import recorderctl
from tests.helpers.portal import PortalClient, add_recording, portal_port
from tests.helpers.recorders import write_toml

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "recorder.sqlite3")
    s.open()
    yield s
    s.close()


def _recording(store: SqliteStore, start: float, duration: float, agent: int | None) -> int:
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=0, filename=f"/r/{start}.wav",
        media_format="wav", sample_rate=8000, start_time=start, core_ident=1,
        agent_id=agent if agent is not None else -1))
    store.finish_recording(ident, FinishedRecording(start + duration, duration, 10, "",
                                                    "callstop"))
    return ident


def test_the_audit_trail_is_append_only_even_to_sql(store: SqliteStore, tmp_path: Path) -> None:
    first = store.append_audit(AuditEntry(NOW, 3, "ann", "play", "17", "", "10.0.0.5"))
    store.append_audit(AuditEntry(NOW + 1, None, "bob", "signin-failed", "bob"))
    listed = store.list_audit(AuditQuery())
    assert [(e.entry_id, e.username, e.action) for e in listed] == [
        (first + 1, "bob", "signin-failed"), (first, "ann", "play")]
    assert listed[1].address == "10.0.0.5"
    assert store.list_audit(AuditQuery(username="ANN"))[0].target == "17"
    assert store.list_audit(AuditQuery(since=NOW + 0.5))[0].username == "bob"
    conn = sqlite3.connect(tmp_path / "recorder.sqlite3")
    for sql in ("UPDATE audit SET username = 'mallory'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute(sql)
    conn.close()
    assert len(store.list_audit(AuditQuery())) == 2


def test_the_portals_filters_and_pages(store: SqliteStore) -> None:
    a = _recording(store, NOW, 30, agent=7)
    b = _recording(store, NOW + 10, 90, agent=8)
    c = _recording(store, NOW + 20, 300, agent=7)

    def ids(**query: object) -> list[int]:
        return [r.ident for r in store.list_recordings(RecordingQuery(**query))]  # type: ignore[arg-type]

    assert ids() == [c, b, a]
    assert ids(oldest_first=True) == [a, b, c]
    assert ids(agent_id=7) == [c, a]
    assert ids(agent_id=7, equals={"DEVICEID": "1001"}) == [c, a]
    assert ids(min_duration=60) == [c, b]
    assert ids(max_duration=90) == [b, a]
    assert ids(limit=1, offset=1) == [b]
    assert ids(limit=2, offset=1, oldest_first=True) == [b, c]
    # A user's groups: their devices (all three are on 1001 here) or their agents.
    assert ids(within_devices=("1001",)) == [c, b, a]
    assert ids(within_devices=("2001",), within_agents=(8,)) == [b]
    assert ids(within_devices=(), within_agents=(7,)) == [c, a]
    assert ids(within_devices=()) == []


def test_listened_to_and_deleting_a_row(store: SqliteStore, tmp_path: Path) -> None:
    ident = _recording(store, NOW, 5, agent=None)
    assert store.mark_listened(ident)
    row = store.get_recording(ident)
    assert row is not None
    assert row.listened_to
    assert not row.locked
    conn = sqlite3.connect(tmp_path / "recorder.sqlite3")
    with conn:
        conn.execute("UPDATE recordings SET locked = 1 WHERE ident = ?", (ident,))
    conn.close()
    assert not store.delete_recording(ident)  # the store checks LOCKED again itself
    assert store.get_recording(ident) is not None
    other = _recording(store, NOW, 5, agent=None)
    assert store.delete_recording(other)
    assert store.get_recording(other) is None
    assert not store.mark_listened(other)


def test_passwords_and_permissions_of_a_user(store: SqliteStore) -> None:
    user = store.add_user(UserFields(first_name="A", last_name="B", password_hash="scrypt$x"),
                          now=NOW)
    assert store.password_hash(user) == "scrypt$x"
    assert store.user_permissions(user) == frozenset()
    for name in ("one", "two"):
        role = store.add_role(name, "")
        assert role is not None
        store.set_role_permission(role.role_id, "ALLOWCOMMENT", True)
        store.set_role_permission(role.role_id, f"X{name}", True)
        store.set_user_role(user, role.role_id, True)
    assert store.user_permissions(user) == {"ALLOWCOMMENT", "Xone", "Xtwo"}
    store.delete_user(user, now=NOW)
    assert store.password_hash(user) is None


@pytest.mark.slow
def test_recorderctl_makes_the_first_administrator_who_can_sign_in_and_reads_the_audit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    from recorder.app import Recorder  # noqa: PLC0415
    from recorder.config.loader import load_config  # noqa: PLC0415

    data = tmp_path / "data"
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{data}"\n'
                        '[api]\nsocket_port = 0\nweb_port = 0\n'
                        '[portal]\nenabled = true\nport = 0\n')
    recorder = Recorder(load_config(config))
    recorder.start()  # makes the database
    try:
        added = recorderctl("user", "add", "--admin", "root-admin", "--password-stdin",
                            "--config", config, stdin="a long enough secret\n")
        assert added.returncode == 0, added.stderr
        assert "role Administrator" in added.stdout
        # The rest in this process (a recorderctl process takes seconds on a busy machine).
        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
        again = main(["user", "add", "ROOT-ADMIN", "--password-stdin", "--config", str(config)])
        assert again == 1
        assert "exists already" in capsys.readouterr().err
        client = PortalClient(portal_port(recorder))
        assert client.sign_in("root-admin", "a long enough secret").status == 303
        assert client.get("/recordings").status == 200
    finally:
        recorder.stop()
    assert main(["audit", "--json", "--config", str(config)]) == 0
    actions = [(e["action"], e["username"]) for e in json.loads(capsys.readouterr().out)]
    assert actions == [("search", "root-admin"), ("signin", "root-admin")]


def test_exports_by_the_webapi_and_by_recorderctl_offline_are_audited(
        running: Any, tmp_path: Path) -> None:
    recorder = running.recorder
    ident, _ = add_recording(recorder, agent_id=None)
    status, body = running.web(
        f"type=export&requestid=1&uniquefield=ident&uniqueid={ident}&media_format=WAV")
    assert status == 200
    assert body[:4] == b"RIFF", body[:400]
    trail = recorder.store.audit
    entry = trail.list_audit(AuditQuery(action="export", limit=1))[0]
    assert (entry.target, entry.address, entry.user_id) == (str(ident), "127.0.0.1", None)
    assert entry.detail.startswith("WebAPI EXPORT ")
    config = write_toml(tmp_path / "offline.toml",
                        f'[storage]\ndata_dir = "{running.data_dir}"\n')
    out = tmp_path / "copy.wav"
    assert main(["export", str(ident), "--offline", "--config", str(config), "-o",
                 str(out)]) == 0
    assert out.read_bytes()[:4] == b"RIFF"
    entry = trail.list_audit(AuditQuery(action="export", limit=1))[0]
    assert entry.address == "local"
    assert entry.detail == f"recorderctl export --offline {out}"
