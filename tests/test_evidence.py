"""Evidence that nothing was changed (docs/storage.md): a real recorderd records, then the
files, rows and audit trail it left are tampered with the way someone with a shell on the box
would, and ``recorderctl verify`` / ``recorderctl audit verify`` (real processes) must say
what was changed, naming it, and exit non-zero; untouched, they must pass."""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from recorder.archive.retention import RetentionJob
from recorder.recording.journal import JOURNAL_NAME, read_journal
from recorder.rules.retention import RetentionPolicy
from recorder.store.audit import AuditEntry
from recorder.store.audithead import read_head
from recorder.store.evidence import check_chain
from recorder.store.records import DAY_SECONDS
from recorder.store.schema import MIGRATIONS
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import expect
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import record
from tests.helpers.recorders import RecorderProcess, start_recorderd
from tests.helpers.waiting import wait_for


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "recorder.sqlite3", isolation_level=None)


def _rows(data: Path) -> dict[int, tuple[str, str, str | None, str | None]]:
    db = _db(data)
    try:
        return {r[0]: r[1:] for r in db.execute(
            "SELECT ident, filename, stop_reason, audio_hash, row_hash FROM recordings")}
    finally:
        db.close()


def _tamper(data: Path, *statements: str) -> None:
    """SQL as someone with the sqlite3 shell runs it: the audit table's triggers in the way
    are dropped first."""
    db = _db(data)
    try:
        db.execute("DROP TRIGGER IF EXISTS audit_no_update")
        db.execute("DROP TRIGGER IF EXISTS audit_no_delete")
        for statement in statements:
            db.execute(statement)
    finally:
        db.close()


def _verify(config: Path, *args: str) -> tuple[int, str]:
    done = recorderctl("verify", "--config", config, *args)
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout


def _audit_verify(config: Path) -> tuple[int, str]:
    done = recorderctl("audit", "verify", "--config", config)
    assert not done.stderr, done.stderr
    return done.returncode, done.stdout


@pytest.mark.slow
def test_verify_names_an_edited_file_a_changed_duration_a_missing_file_and_a_stray_one(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    # After-call MP3: the stored bytes change after the call (the WAV becomes an MP3); the
    # hash kept must be the MP3's.
    config, data, running = start_recorderd(
        tmp_path, processes, devices=("1001", "1002", "1003", "1004"),
        storage='format = "mp3"\nencode = "after-call"\n')
    conn = running.connect()
    time.sleep(0.6)  # the pre-roll first
    calls = {d: record(conn, d, 0.6, ani="6145551212") for d in ("1001", "1002", "1003", "1004")}
    conn.close()
    idents = {d: int(c["RECORDID"]) for d, c in calls.items()}

    def encoded() -> bool:
        return all(str(f).endswith(".mp3") for f, *_ in _rows(data).values())

    wait_for(encoded, timeout=30, what="the after-call MP3s")
    # A WebAPI export, audited by recorderd itself (its head goes to the crash journal too).
    status, _ = running.web(f"type=export&requestid=1&uniquefield=ident&uniqueid="
                            f"{idents['1004']}&media_format=WAV")
    assert status == 200
    assert running.process is not None
    assert running.process.stop() == 0, running.process.log

    rows = _rows(data)
    for ident, (filename, _, audio_hash, row_hash) in rows.items():
        assert row_hash is not None, ident
        assert audio_hash == hashlib.sha256(Path(filename).read_bytes()).hexdigest()
    code, out = _verify(config)
    assert code == 0, out
    assert "4 recording(s) checked: 4 as stored, 0 problem(s)" in out
    assert read_journal(data / JOURNAL_NAME).audit_head is not None
    code, out = _audit_verify(config)
    assert code == 0, out
    assert out.rstrip().endswith(
        "the chain and its heads (audit-head file, crash journal) agree"), out

    # A byte of one file flipped, another row's duration changed, a third file deleted, and a
    # file no row names dropped among the recordings.
    edited = Path(rows[idents["1001"]][0])
    content = bytearray(edited.read_bytes())
    content[len(content) // 2] ^= 0x01
    edited.write_bytes(bytes(content))
    _tamper(data, f"UPDATE recordings SET duration = duration + 30 WHERE ident = {idents['1002']}")
    missing = Path(rows[idents["1003"]][0])
    missing.unlink()
    stray = edited.with_name("planted.mp3")
    stray.write_bytes(b"\xff\xfb" + bytes(400))

    code, out = _verify(config)
    assert code == 1, out
    lines = out.splitlines()
    assert any(f"RECORDID {idents['1001']}: {edited} differs" in line for line in lines), out
    assert any(f"RECORDID {idents['1002']}: its row was changed" in line for line in lines), out
    assert any(f"RECORDID {idents['1003']}: {missing} is missing" in line for line in lines), out
    assert any(f"{stray}: no row names this file" in line for line in lines), out
    assert not any(f"RECORDID {idents['1004']}" in line for line in lines), out
    assert "4 recording(s) checked: 1 as stored, 4 problem(s)" in out
    # --since after everything: nothing of it is looked at.
    code, out = _verify(config, "--since", str(int(time.time()) + 3600))
    assert code == 0, out
    assert "0 recording(s) checked" in out

    # The audit trail's tail cut and the audit-head file removed with it: the journal's copy
    # of the head still shows it.
    _tamper(data, "DELETE FROM audit WHERE entry_id = (SELECT max(entry_id) FROM audit)")
    (data / "audit-head").unlink()
    code, out = _audit_verify(config)
    assert code == 1, out
    assert "FAILED  the audit-head file is missing" in out, out
    assert "the crash journal records entry" in out, out
    assert "tail truncated" in out, out


@pytest.mark.slow
def test_a_recording_recovered_after_kill_9_gets_a_hash_verify_accepts(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config, data, running = start_recorderd(tmp_path, processes)
    time.sleep(0.6)
    expect(running.request("CALLSTART", 1, DEVICEID="1001"), 20)
    running.wait_recorded("1001", 1.5)
    assert running.process is not None
    running.process.proc.send_signal(signal.SIGKILL)
    running.process.proc.wait(10)
    [(_, (filename, reason, audio_hash, row_hash))] = _rows(data).items()
    assert (reason, audio_hash, row_hash) == ("", None, None)  # killed while recording

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert again.stop() == 0, again.log
    [(_, (_, reason, audio_hash, row_hash))] = _rows(data).items()
    assert reason == "recovered"
    assert row_hash is not None
    assert audio_hash == hashlib.sha256(Path(filename).read_bytes()).hexdigest()
    code, out = _verify(config)
    assert code == 0, out
    assert "1 recording(s) checked: 1 as stored" in out


# --- the audit chain -------------------------------------------------------------------------

def _store_with_entries(data: Path, count: int, start: float = 1_000_000.0) -> SqliteStore:
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    for i in range(count):
        store.append_audit(AuditEntry(time=start + i, user_id=i % 3 or None, username=f"u{i}",
                                      action="play", target=str(i), detail="ä\n\"x\"",
                                      address="127.0.0.1"))
    return store


def _config_of(tmp_path: Path, data: Path) -> Path:
    config = tmp_path / "r.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n', encoding="utf-8")
    return config


@pytest.mark.parametrize(("tamper", "first_bad", "says"), [
    ("DELETE FROM audit WHERE entry_id = 4", 5, "entries 4-4 are missing (deleted)"),
    ("UPDATE audit SET detail = 'nothing to see' WHERE entry_id = 3", 3,
     "entry 3: edited (its contents do not match its hash)"),
    ("DELETE FROM audit WHERE entry_id >= 5", 5, "the trail ends at entry 4 but the "
     "audit-head file records entry 6: entries 5-6 were removed (tail truncated)"),
    ("DELETE FROM audit WHERE entry_id = 1", 2, "the entry before it was deleted or changed"),
])
def test_audit_verify_names_the_first_deleted_edited_or_truncated_entry(
        tmp_path: Path, tamper: str, first_bad: int, says: str) -> None:
    data = tmp_path / "data"
    _store_with_entries(data, 6).close()
    config = _config_of(tmp_path, data)
    code, out = _audit_verify(config)
    assert code == 0, out
    assert "6 entries (entries 1-6)" in out

    _tamper(data, tamper)
    code, out = _audit_verify(config)
    assert code == 1, out
    assert says in out
    assert out.splitlines()[-1].endswith(f"NOT intact; the first bad one: entry {first_bad}"), out


def test_an_entry_edited_and_rehashed_is_found_at_the_next_entry(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = _store_with_entries(data, 4)
    trail = store.audit_trail()
    store.close()
    from recorder.store.evidence import audit_hash  # noqa: PLC0415

    forged = audit_hash(2, trail.entries[1].time, None, username="someone else", action="play",
                        target="1", detail="", address="", prev_hash=trail.entries[0].entry_hash
                        or "")
    _tamper(data, f"UPDATE audit SET username = 'someone else', user_id = NULL, target = '1',"
                  f" detail = '', address = '', entry_hash = '{forged}' WHERE entry_id = 2")
    code, out = _audit_verify(_config_of(tmp_path, data))
    assert code == 1, out
    assert "entry 3: the entry before it was deleted or changed" in out
    assert out.splitlines()[-1].endswith("the first bad one: entry 3"), out


def test_concurrent_writers_in_two_connections_never_fork_the_chain(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stores = [_store_with_entries(data, 0), _store_with_entries(data, 0)]
    errors: list[BaseException] = []

    def append(store: SqliteStore, n: int) -> None:
        try:
            for i in range(25):
                store.append_audit(AuditEntry(time=time.time(), user_id=n, username=f"w{n}",
                                              action="search", detail=str(i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(stores[n % 2], n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    trail = stores[0].audit_trail()
    head = read_head(stores[0].head_path)
    for store in stores:
        store.close()
    assert len(trail.entries) == 150
    assert [e.entry_id for e in trail.entries] == list(range(1, 151))
    assert head is not None
    assert head.entry_id == 150
    assert check_chain(trail, [head], head_file_required=True) == []
    code, out = _audit_verify(_config_of(tmp_path, data))
    assert code == 0, out


def test_retention_purges_only_old_entries_and_the_chain_still_verifies(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = 2_000_000_000.0
    old = now - 500 * DAY_SECONDS
    store = _store_with_entries(data, 3, start=old)  # entries 1-3: 500 days old
    store.append_audit(AuditEntry(time=now - 10 * DAY_SECONDS, user_id=None, username="young",
                                  action="signin"))  # 4
    # 5: old by its time (a clock set back), but after a young one: it stays too.
    store.append_audit(AuditEntry(time=old, user_id=None, username="late", action="signin"))
    job = RetentionJob(store, RetentionPolicy(None, {}, {}), data / "recordings",
                       clock=lambda: now, audit=store, audit_keep_days=400)
    report = job.run_now()
    assert report.audit_purged == 3
    trail = store.audit_trail()
    store.close()
    assert [e.username for e in trail.entries] == ["young", "late"]
    config = _config_of(tmp_path, data)
    code, out = _audit_verify(config)
    assert code == 0, out
    assert "purged through entry 3 (anchored)" in out

    # A purge removes what the anchor covers; deleting the entry after it is still found.
    _tamper(data, "DELETE FROM audit WHERE entry_id = 4")
    code, out = _audit_verify(config)
    assert code == 1, out
    assert "entries 4-4 are missing (deleted)" in out


def test_nothing_younger_than_audit_keep_days_is_purged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    now = 2_000_000_000.0
    store = _store_with_entries(data, 5, start=now - 399 * DAY_SECONDS)
    job = RetentionJob(store, RetentionPolicy(None, {}, {}), data / "recordings",
                       clock=lambda: now, audit=store, audit_keep_days=400)
    assert job.run_now().audit_purged == 0
    assert len(store.audit_trail().entries) == 5
    store.close()


# --- a store from before verification existed ------------------------------------------------

@pytest.mark.slow  # recorderctl as a process, repeatedly: a second or more of CPU
def test_an_older_store_is_chained_and_its_rows_reported_as_not_hashed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "recordings").mkdir(parents=True)
    wav = data / "recordings" / "old.wav"
    wav.write_bytes(b"RIFF" + bytes(100))
    db = _db(data)
    for step, script in enumerate(MIGRATIONS[:6]):
        assert isinstance(script, str)
        db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {step + 1};\nCOMMIT;")
    db.execute("INSERT INTO recordings (device_id, filename, media_format, sample_rate,"
               " recording_time, start_time, status, core_ident, audio_hash, duration)"
               " VALUES ('1001', ?, 'wav', 8000, 1, 1.0, 'complete', 1, ?, 1.0)",
               (str(wav), hashlib.sha256(wav.read_bytes()).hexdigest()))
    for i in range(3):
        db.execute("INSERT INTO audit (time, username, action) VALUES (?, 'old', 'signin')",
                   (100.0 + i,))
    db.close()
    config = _config_of(tmp_path, data)

    code, out = _verify(config)  # opening the store upgrades it
    assert code == 0, out
    assert "RECORDID 1: not hashed: recorded before verification existed" in out
    assert read_head(data / "audit-head") is not None
    code, out = _audit_verify(config)
    assert code == 0, out
    assert "3 entries (entries 1-3)" in out

    # A recording made after the upgrade is sealed; its seal removed is not taken for an
    # old row's.
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    from recorder.store.records import FinishedRecording, NewRecording  # noqa: PLC0415

    new = data / "recordings" / "new.wav"
    new.write_bytes(b"RIFF" + bytes(200))
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=0, filename=str(new), media_format="wav",
        sample_rate=8000, start_time=2.0, core_ident=1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=3.0, duration=1.0, audio_size=204,
        audio_hash=hashlib.sha256(new.read_bytes()).hexdigest(), stop_reason="normal",
        lost_samples=0))
    store.close()
    code, out = _verify(config)
    assert code == 0, out
    _tamper(data, f"UPDATE recordings SET row_hash = NULL WHERE ident = {ident}")
    code, out = _verify(config)
    assert code == 1, out
    assert f"RECORDID {ident}: its row has no seal" in out


# --- what the recorder changes itself is sealed again ----------------------------------------

def _recorded(store: SqliteStore, data: Path, name: str, start: float) -> int:
    from recorder.store.records import FinishedRecording, NewRecording  # noqa: PLC0415

    path = data / "recordings" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF" + name.encode() * 50)
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=0, filename=str(path), media_format="wav",
        sample_rate=8000, start_time=start, core_ident=1, meta={"ANI": "6145551212"}))
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + 1, duration=1.0, audio_size=path.stat().st_size,
        audio_hash=hashlib.sha256(path.read_bytes()).hexdigest(), stop_reason="normal",
        lost_samples=0))
    return ident


@pytest.mark.slow  # recorderctl as a process, repeatedly: a second or more of CPU
def test_changes_the_recorder_makes_itself_are_sealed_and_pass(tmp_path: Path) -> None:
    from recorder.store.records import RecordingUpdate  # noqa: PLC0415

    data = tmp_path / "data"
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    updated = _recorded(store, data, "a.wav", 1000.0)
    purged = _recorded(store, data, "b.wav", 2000.0)
    replaced = _recorded(store, data, "c.wav", 3000.0)
    listened = _recorded(store, data, "d.wav", 4000.0)
    # CALLUPDATE of a stored row, a purge, a file replaced (after-call encoding), a play.
    assert store.update_recording(updated, RecordingUpdate(meta={"USER1": "case 77"},
                                                           keep_days=30))
    (data / "recordings" / "b.wav").unlink()
    assert store.mark_purged(purged, 5000.0)
    mp3 = data / "recordings" / "c.mp3"
    mp3.write_bytes(b"\xff\xfb" + bytes(300))
    (data / "recordings" / "c.wav").unlink()
    assert store.replace_recording_file(str(data / "recordings" / "c.wav"), str(mp3), "mp3",
                                        mp3.stat().st_size,
                                        hashlib.sha256(mp3.read_bytes()).hexdigest())
    assert store.mark_listened(listened)
    row = store.get_recording(replaced)
    assert row is not None
    assert row.filename == str(mp3)
    store.close()
    # LOCKED, as integrations set it with plain SQL, is not sealed.
    _tamper(data, f"UPDATE recordings SET locked = 1 WHERE ident = {listened}")

    code, out = _verify(_config_of(tmp_path, data), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert (report["checked"], report["good"], report["purged"]) == (4, 3, 1)
    assert report["findings"] == []

    # The same USER1 changed behind the recorder's back is not.
    _tamper(data, f"UPDATE recordings SET user1 = 'case 78' WHERE ident = {updated}")
    code, out = _verify(_config_of(tmp_path, data), "--json")
    assert code == 1, out
    [finding] = json.loads(out)["findings"]
    assert (finding["kind"], finding["ident"]) == ("row changed", updated)


def test_the_journal_keeps_the_newest_audit_head_when_it_is_compacted(tmp_path: Path) -> None:
    from recorder.recording.journal import Journal  # noqa: PLC0415

    journal = Journal(tmp_path)
    journal.open()
    journal.note_audit_head(3, "c" * 64)
    journal.note_audit_head(2, "b" * 64)  # an older head never replaces a newer one
    assert read_journal(tmp_path / JOURNAL_NAME).audit_head == (3, "c" * 64)
    journal.rewrite()
    journal.close()
    assert read_journal(tmp_path / JOURNAL_NAME).audit_head == (3, "c" * 64)
    again = Journal(tmp_path)
    again.open()
    again.rewrite()  # as recovery does at every start
    again.close()
    assert read_journal(tmp_path / JOURNAL_NAME).audit_head == (3, "c" * 64)


_APPENDER = """
import sys, time
from pathlib import Path
from recorder.store.audit import AuditEntry
from recorder.store.sqlite import SqliteStore
store = SqliteStore(Path(sys.argv[1]))
store.open()
for i in range(40):
    store.append_audit(AuditEntry(time=time.time(), user_id=None, username=sys.argv[2],
                                  action="export", detail=str(i), address="local"))
store.close()
"""


@pytest.mark.slow  # three Python processes and recorderctl: a second or more of CPU
def test_writers_in_separate_processes_never_fork_the_chain(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    data = tmp_path / "data"
    _store_with_entries(data, 1).close()
    writers = [subprocess.Popen([sys.executable, "-c", _APPENDER,
                                 str(data / "recorder.sqlite3"), f"p{n}"]) for n in range(3)]
    assert [w.wait(120) for w in writers] == [0, 0, 0]
    code, out = _audit_verify(_config_of(tmp_path, data))
    assert code == 0, out
    # Nothing else said: the audit-head file names the last entry (heads written in order).
    assert out.splitlines() == [
        "audit trail: 121 entries (entries 1-121): the chain and its heads (audit-head file) "
        "agree"], out
