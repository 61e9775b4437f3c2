"""The database-outage spool: with the database locked by another process or made read-only,
recording goes on, its rows wait in the spool and reach the database in order once it is back;
nothing is lost or duplicated, a crash in the middle of a replay included.

Every fault is real: another process holding SQLite's write lock (BEGIN EXCLUSIVE), database
files made immutable (chattr +i, which binds root too), a replaying process killed by SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import soundfile

from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from recorder.errors import StoreError
from recorder.store.directory import UserFields
from recorder.store.records import (
    STOP_RECOVERED,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingUpdate,
)
from recorder.store.spool import SpoolingStore
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import expect, fields
from tests.helpers.exports import PREROLL, dominant_hz, tone_boards
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, RecorderProcess, start_recorderd
from tests.helpers.smalldisk import small_disk
from tests.helpers.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent
BUSY = 0.3  # the database's busy timeout in the unit tests: how long a write waits for a lock

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class DatabaseLock:
    """Another process holding the database's write lock until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _LOCKER, str(path)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        assert self.proc.returncode == 0


@contextmanager
def locked(path: Path) -> Iterator[DatabaseLock]:
    lock = DatabaseLock(path)
    try:
        yield lock
    finally:
        if lock.proc.poll() is None:
            lock.proc.kill()
            lock.proc.wait(10)


@contextmanager
def read_only(database: Path) -> Iterator[None]:
    """The database and its write-ahead log immutable (chattr +i: not even root may write
    them). Not the -shm index, which SQLite maps into memory: made immutable, it kills the
    process with SIGBUS, which no store can spool around."""
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a file read-only for root")
    files = [database, database.with_name(database.name + "-wal")]
    done: list[Path] = []
    try:
        for path in files:
            result = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True,
                                    check=False)
            if result.returncode:
                pytest.skip(f"this file system cannot make {path.name} immutable: "
                            f"{result.stderr.strip()}")
            done.append(path)
        yield
    finally:
        for path in done:
            subprocess.run([chattr, "-i", str(path)], check=True)


def new_rec(device: str, start: float, **meta: str) -> NewRecording:
    return NewRecording(device_id=device, call_instance="1", channel=1,
                        filename=f"/rec/{device}-{start}.wav", media_format="wav",
                        sample_rate=8000, start_time=start, core_ident=1, meta=meta)


def done(seconds: float, reason: str = "callstop") -> FinishedRecording:
    return FinishedRecording(stop_time=1_700_000_000.0 + seconds, duration=seconds,
                             audio_size=int(seconds * 16000) + 44, audio_hash="ab" * 32,
                             stop_reason=reason)


def open_spooling(tmp_path: Path, retry: float = 600.0, busy: float = BUSY) -> SpoolingStore:
    """A spooling store over ``tmp_path``'s database; with the default ``retry`` its
    background replay never runs within a test, so the tests replay when they choose."""
    store = SpoolingStore(SqliteStore(tmp_path / "recorder.sqlite3", busy),
                          tmp_path / "store-spool.jsonl", retry)
    store.open()
    return store


def rows_in(database: Path) -> list[dict[str, Any]]:
    """Every recording row, read with sqlite3 itself."""
    conn = sqlite3.connect(database)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM recordings ORDER BY ident")]
    finally:
        conn.close()


def spool_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- the store -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_locked_database_spools_recording_writes_and_replays_them_in_order(
        tmp_path: Path) -> None:
    database, spool = tmp_path / "recorder.sqlite3", tmp_path / "store-spool.jsonl"
    # A busy timeout long beside what a loaded machine takes for a few fsynced writes, so the
    # times below tell a wait for the lock from slowness: one wait takes ``busy`` at least.
    busy = 3.0
    store = open_spooling(tmp_path, busy=busy)
    try:
        first = store.insert_recording(new_rec("1001", 1000.0, ANI="100"))
        with locked(database) as lock:
            began = time.monotonic()
            second = store.insert_recording(new_rec("1002", 1001.0, ANI="200"))
            assert time.monotonic() - began < 2 * busy  # one wait, not two
            # Once spooling, nothing waits for the lock again: a call start is not held up.
            began = time.monotonic()
            assert store.update_recording(second, RecordingUpdate(meta={"DNIS": "first"}))
            assert store.update_recording(second, RecordingUpdate(meta={"DNIS": "second"}))
            assert store.update_recording(first, RecordingUpdate(meta={"USER1": "late"},
                                                                  keep_days=9))
            store.finish_recording(second, done(3.5))
            third = store.insert_recording(new_rec("1003", 1002.0))
            store.finish_recording(first, done(7.25, "replaced"))
            assert time.monotonic() - began < busy
            assert [first, second, third] == [1, 2, 3]
            assert store.spooled == 7
            assert [(e["seq"], e["op"]) for e in spool_lines(spool)] == [
                (1, "insert"), (2, "update"), (3, "update"), (4, "update"), (5, "finish"),
                (6, "insert"), (7, "finish")]
            # No reader sees a list that misses recordings.
            with pytest.raises(StoreError, match="7 change"):
                store.list_recordings(RecordingQuery())
            with pytest.raises(StoreError, match="database unavailable"):
                store.count_recordings()
            with pytest.raises(StoreError):
                store.get_recording(first)
            assert not store.replay()  # still locked: everything stays, in order
            assert store.spooled == 7
            lock.release()
            assert store.replay()
        assert store.spooled == 0
        assert spool.stat().st_size == 0
        rows = {r.ident: r for r in store.list_recordings(RecordingQuery())}
        assert sorted(rows) == [1, 2, 3]
        assert (rows[1].meta["ANI"], rows[1].meta["USER1"], rows[1].keep_days) == (
            "100", "late", 9)
        assert (rows[1].status, rows[1].duration, rows[1].stop_reason) == (
            "complete", 7.25, "replaced")
        assert (rows[2].meta["ANI"], rows[2].meta["DNIS"]) == ("200", "second")
        assert (rows[2].status, rows[2].duration) == ("complete", 3.5)
        assert (rows[3].device_id, rows[3].status) == ("1003", "recording")
        # Back to the database directly; the next RECORDID follows those handed out.
        assert store.insert_recording(new_rec("1004", 1003.0)) == 4
        assert store.spooled == 0
        assert len(rows_in(database)) == 4
    finally:
        store.close()


def test_a_read_only_database_spools_until_it_is_writable_again(tmp_path: Path) -> None:
    database = tmp_path / "recorder.sqlite3"
    store = open_spooling(tmp_path)
    try:
        first = store.insert_recording(new_rec("1001", 1000.0))
        with read_only(database):
            # Not even a write into the WAL gets through: the change waits in the spool.
            store.finish_recording(first, done(2.0))
            second = store.insert_recording(new_rec("1002", 1001.0, ANI="555"))
            store.finish_recording(second, done(4.0))
            assert store.spooled == 3
            assert not store.replay()
            assert store.spooled == 3
            with pytest.raises(StoreError, match="3 change"):
                store.list_recordings(RecordingQuery())
        assert store.replay()
        rows = {r.ident: r for r in store.list_recordings(RecordingQuery())}
        assert sorted(rows) == [first, second] == [1, 2]
        assert (rows[1].status, rows[1].duration) == ("complete", 2.0)
        assert (rows[2].status, rows[2].duration, rows[2].meta["ANI"]) == (
            "complete", 4.0, "555")
    finally:
        store.close()


@pytest.mark.slow
def test_the_background_replay_writes_the_spool_in_once_the_lock_is_gone(
        tmp_path: Path) -> None:
    database = tmp_path / "recorder.sqlite3"
    store = open_spooling(tmp_path, retry=0.1)
    try:
        with locked(database) as lock:
            ident = store.insert_recording(new_rec("1001", 1000.0))
            store.finish_recording(ident, done(1.5))
            time.sleep(0.5)  # several retries, each refused
            assert store.spooled == 2
            lock.release()
            deadline = time.monotonic() + 10
            while store.spooled and time.monotonic() < deadline:
                time.sleep(0.05)
        assert store.spooled == 0
        (row,) = rows_in(database)
        assert (row["ident"], row["status"], row["duration"]) == (ident, "complete", 1.5)
    finally:
        store.close()


def test_a_full_disk_under_the_database_and_the_spool_holds_rows_and_refuses_updates(
        tmp_path: Path) -> None:
    """The database and its spool on one tmpfs with not a byte left: a row started or finished
    is held in memory (the crash journal covers it), an update is refused; all of it reaches
    the database once there is room, and nothing is written twice."""
    with small_disk(tmp_path / "fs", 1 << 20) as disk:
        if disk.mode != "tmpfs":
            pytest.skip("needs the right to mount a tmpfs")
        store = open_spooling(disk.root)
        try:
            first = store.insert_recording(new_rec("1001", 1000.0, ANI="100"))
            disk.fill_up()
            store.finish_recording(first, done(2.5, "truncated"))
            second = store.insert_recording(new_rec("1002", 1001.0))
            store.finish_recording(second, done(1.25))
            assert (first, second) == (1, 2)
            assert (store.spooled, store.held) == (3, 3)
            with pytest.raises(StoreError, match="wait for room"):
                store.update_recording(first, RecordingUpdate(meta={"DNIS": "lost"}))
            with pytest.raises(StoreError, match="3 change"):
                store.list_recordings(RecordingQuery())
            assert not store.replay()  # still no room anywhere
            assert (store.spooled, store.held) == (3, 3)
            with locked(disk.root / "recorder.sqlite3") as lock:
                # Room again while the database stays locked: the held changes go to the spool
                # file, on disk at last.
                disk.free_up()
                assert not store.replay()
                assert (store.spooled, store.held) == (3, 0)
                assert [e["op"] for e in spool_lines(disk.root / "store-spool.jsonl")] == [
                    "finish", "insert", "finish"]
                lock.release()
            assert store.replay()
            assert (store.spooled, store.held) == (0, 0)
            rows = {r.ident: r for r in store.list_recordings(RecordingQuery())}
            assert sorted(rows) == [1, 2]
            assert (rows[1].status, rows[1].stop_reason, rows[1].duration,
                    rows[1].meta["ANI"]) == ("complete", "truncated", 2.5, "100")
            assert "DNIS" not in rows[1].meta or rows[1].meta["DNIS"] == ""
            assert (rows[2].device_id, rows[2].status, rows[2].duration) == (
                "1002", "complete", 1.25)
        finally:
            store.close()


@pytest.mark.slow
def test_recordids_handed_out_while_away_survive_a_restart_with_the_spool_full(
        tmp_path: Path) -> None:
    database, spool = tmp_path / "recorder.sqlite3", tmp_path / "store-spool.jsonl"
    store = open_spooling(tmp_path)
    store.insert_recording(new_rec("1001", 1000.0))
    with locked(database) as lock:
        assert store.insert_recording(new_rec("1002", 1001.0)) == 2
        store.close()  # its last replay is refused: the change stays for the next start
        assert len(spool_lines(spool)) == 1
        again = open_spooling(tmp_path)  # opens, and reads, under the lock
        try:
            assert again.spooled == 1
            # The spool's RECORDID 2 is taken although the database has not seen it.
            assert again.insert_recording(new_rec("1003", 1002.0)) == 3
            lock.release()
            assert again.replay()
            assert [(r["ident"], r["device_id"]) for r in rows_in(database)] == [
                (1, "1001"), (2, "1002"), (3, "1003")]
        finally:
            again.close()


_CRASHING_REPLAY = """
import json, os, signal, sys
from pathlib import Path
from recorder.store.records import RecordingUpdate
from recorder.store.spool import SpoolingStore
from recorder.store.sqlite import SqliteStore
from tests.test_spool import BUSY, done, new_rec

data = Path(sys.argv[1])
store = SpoolingStore(SqliteStore(data / "recorder.sqlite3", BUSY), data / "store-spool.jsonl",
                      600.0)
store.open()
a = store.insert_recording(new_rec("1001", 1000.0, ANI="a"))
b = store.insert_recording(new_rec("1002", 1001.0, ANI="b"))
store.update_recording(a, RecordingUpdate(meta={"DNIS": "updated"}))
store.finish_recording(a, done(5.0))
c = store.insert_recording(new_rec("1003", 1002.0, ANI="c"))
store.finish_recording(b, done(6.0))
store.finish_recording(c, done(7.0))
print(json.dumps([a, b, c, store.spooled]), flush=True)
sys.stdin.readline()  # the database is unlocked now
store.replay(limit=3)
os.kill(os.getpid(), signal.SIGKILL)  # dies mid-replay: no close, the spool untouched
"""


@pytest.mark.slow
def test_a_crash_in_the_middle_of_a_replay_neither_loses_nor_duplicates(
        tmp_path: Path) -> None:
    database, spool = tmp_path / "recorder.sqlite3", tmp_path / "store-spool.jsonl"
    schema = SqliteStore(database)  # the schema, before anyone locks it
    schema.open()
    schema.close()
    with locked(database) as lock:
        child = subprocess.Popen([sys.executable, "-c", _CRASHING_REPLAY, str(tmp_path)],
                                 cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        assert child.stdout is not None
        assert child.stdin is not None
        a, b, c, spooled = json.loads(child.stdout.readline())
        assert ([a, b, c], spooled) == ([1, 2, 3], 7)
        lock.release()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.wait(20) == -9
    # What the dead process got in: the first two rows, one of them updated, none finished.
    half = rows_in(database)
    assert [(r["ident"], r["dnis"], r["status"]) for r in half] == [
        (1, "updated", "recording"), (2, "", "recording")]
    assert len(spool_lines(spool)) == 7  # the spool was never emptied

    store = open_spooling(tmp_path)  # replays the whole spool again, first thing
    try:
        assert store.spooled == 0
        assert spool.stat().st_size == 0
        rows = rows_in(database)
        assert [(r["ident"], r["device_id"], r["ani"], r["status"], r["duration"])
                for r in rows] == [
            (1, "1001", "a", "complete", 5.0), (2, "1002", "b", "complete", 6.0),
            (3, "1003", "c", "complete", 7.0)]
        assert rows[0]["dnis"] == "updated"
        assert store.insert_recording(new_rec("1004", 1003.0)) == 4
    finally:
        store.close()


def test_directory_writes_are_refused_not_spooled_and_chats_wait_for_the_spool(
        tmp_path: Path) -> None:
    from recorder.store.records import ChatStart  # noqa: PLC0415 - only this test

    database = tmp_path / "recorder.sqlite3"
    # As open_store builds it: the spool wraps the recordings; the directory is the database's.
    directory = SqliteStore(database, BUSY)
    store = SpoolingStore(directory, tmp_path / "store-spool.jsonl", 600.0)
    store.open()
    try:
        with locked(database) as lock:
            store.insert_recording(new_rec("1001", 1000.0))
            with pytest.raises(StoreError, match="locked"):
                directory.add_user(UserFields(first_name="Ann", last_name="Lee"), now=1.0)
            assert directory.list_users() == []  # directory reads still answer
            lock.release()
            # The database is back, but a chat would take the RECORDID the spool gave out.
            with pytest.raises(StoreError, match="1 change"):
                store.start_chat(ChatStart(session_id="s1", agent_id=1, device_id="",
                                           start_time=1001.0, core_ident=1))
            assert store.replay()
        user = directory.add_user(UserFields(first_name="Ann", last_name="Lee"), now=1.0)
        ident, _ = store.start_chat(ChatStart(session_id="s1", agent_id=user, device_id="",
                                              start_time=1001.0, core_ident=1))
        assert ident == 2
    finally:
        store.close()


def test_an_unfinished_last_line_is_dropped_and_a_damaged_one_stops_the_start(
        tmp_path: Path) -> None:
    spool = tmp_path / "store-spool.jsonl"
    store = open_spooling(tmp_path)
    with locked(tmp_path / "recorder.sqlite3"):
        ident = store.insert_recording(new_rec("1001", 1000.0))
        store.close()
    whole = spool.read_bytes()
    # A crash in the middle of appending a change whose call never returned.
    spool.write_bytes(whole + b'{"seq":2,"op":"fin')
    store = open_spooling(tmp_path)
    try:
        assert store.spooled == 0  # the whole line was replayed, the torn one dropped
        assert [r["ident"] for r in rows_in(tmp_path / "recorder.sqlite3")] == [ident]
        assert spool.stat().st_size == 0
    finally:
        store.close()
    spool.write_bytes(b"not json\n" + whole)
    with pytest.raises(StoreError, match="line 1 cannot be read"):
        open_spooling(tmp_path)
    assert spool.read_bytes() == b"not json\n" + whole  # kept for whoever repairs it


def test_a_second_process_on_the_data_directory_neither_replays_nor_reads_stale_rows(
        tmp_path: Path) -> None:
    owner = open_spooling(tmp_path)
    try:
        with locked(tmp_path / "recorder.sqlite3") as lock:
            owner.insert_recording(new_rec("1001", 1000.0))
            lock.release()
            guest = open_spooling(tmp_path)  # as recorderctl calls --offline would
            try:
                assert guest.spooled == 0
                with pytest.raises(StoreError, match="running recorder's spool"):
                    guest.list_recordings(RecordingQuery())
                assert guest.replay()  # nothing of its own to replay
                assert owner.spooled == 1
            finally:
                guest.close()
            assert owner.replay()
    finally:
        owner.close()


# --- the service ---------------------------------------------------------------------------------


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_calls_made_while_another_process_locks_the_database_are_all_recorded_and_stored(
        start_recorder: Any, tmp_path: Path) -> None:
    running = start_recorder(
        storage={"data_dir": str(tmp_path / "data"), "spool_retry_seconds": 0.2},
        boards=tone_boards(tmp_path))
    database = running.data_dir / "recorder.sqlite3"
    tones = {"2001": 440.0, "2002": 1000.0, "2003": 660.0}
    conn = running.connect()
    began: dict[str, float] = {}
    lasted: dict[str, float] = {}
    held: dict[str, float] = {}  # seconds of audio the call had just before its CALLSTOP

    def start(request_id: int, device: str, **meta: str) -> None:
        began[device] = time.monotonic()
        expect(conn.request("CALLSTART", request_id, deviceid=device, **meta), 20)

    def stop(request_id: int, device: str) -> None:
        held[device] = running.seconds_recorded(device)
        expect(conn.request("CALLSTOP", request_id, deviceid=device), 20)
        lasted[device] = time.monotonic() - began[device]

    def recordids() -> dict[str, int]:
        return {a["device"]: a["recordid"] for a in running.status()["active"]}

    try:
        start(1, "2001", ani="6145550001")
        time.sleep(0.3)
        ids = recordids()
        with locked(database) as lock:
            start(2, "2002", ani="6145550002")
            expect(conn.request("CALLUPDATE", 3, deviceid="2001", user1="late metadata"), 20)
            expect(conn.request("CALLUPDATE", 4, deviceid="2002", dnis="8005550100"), 20)
            expect(conn.request("CALLLIST", 5), 23, starts="database unavailable")
            ids.update(recordids())
            status = running.status()["database"]
            assert status["spooled"] >= 3
            assert status["ok"] is False
            assert running.metric("recorder_store_spooled_changes") >= 3
            time.sleep(1.0)
            stop(6, "2001")
            start(7, "2003", ani="6145550003")
            ids.update(recordids())
            time.sleep(1.5)
            stop(8, "2003")
            stop(9, "2002")
            expect(conn.request("CALLLIST", 10, deviceid="2002"), 23)
            assert running.status()["database"]["spooled"] >= 7
            lock.release()
            wait_for(lambda: running.status()["database"]["spooled"] == 0, 15.0, step=0.1,
                     what="the spool to be replayed")
        listed = expect(conn.request("CALLLIST", 11), 20).findall("SEARCHRESULT")
    finally:
        conn.close()
    assert running.metric("recorder_store_spooled_changes") == 0
    assert sorted(ids) == ["2001", "2002", "2003"]
    assert sorted(int(fields(r)["RECORDID"]) for r in listed) == sorted(ids.values())
    assert (running.data_dir / "store-spool.jsonl").stat().st_size == 0

    rows = {r["device_id"]: r for r in rows_in(database)}
    assert len(rows_in(database)) == 3  # once each
    assert {d: r["ident"] for d, r in rows.items()} == ids  # as the API handed them out
    assert (rows["2001"]["ani"], rows["2001"]["user1"]) == ("6145550001", "late metadata")
    assert (rows["2002"]["ani"], rows["2002"]["dnis"]) == ("6145550002", "8005550100")
    assert rows["2003"]["ani"] == "6145550003"
    for device, row in rows.items():
        assert (row["status"], row["stop_reason"]) == ("complete", "callstop"), device
        audio, rate = soundfile.read(row["filename"], dtype="int16")
        seconds = len(audio) / rate
        assert seconds == pytest.approx(row["duration"], abs=0.01), device
        # All the audio the call had before its CALLSTOP, and no more than the pre-roll plus
        # the time from CALLSTART to CALLSTOP's answer, but for what a board behind the clock
        # at the CALLSTART (a loaded machine) caught up before the CALLSTOP.
        assert held[device] - 0.01 <= seconds <= (
            lasted[device] + PREROLL + MAX_CATCH_UP_SECONDS + 0.1), (
            device, held[device], seconds, lasted[device])
        assert dominant_hz(audio, rate) == pytest.approx(tones[device], abs=10), device
        assert os.path.getsize(row["filename"]) == row["audio_size"]


@pytest.mark.slow
def test_a_crash_while_spooling_is_recovered_at_the_next_start_though_still_locked(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config, data, running = start_recorderd(tmp_path, processes,
                                            storage="spool_retry_seconds = 0.2\n")
    database = data / "recorder.sqlite3"
    with locked(database) as lock:
        expect(running.request("CALLSTART", 1, deviceid="1001", ani="6145550009"), 20)
        time.sleep(1.5)
        (active,) = running.status()["active"]
        assert running.status()["database"]["spooled"] == 1
        processes[0].proc.kill()  # the row exists only in the spool
        processes[0].proc.wait(10)
        again = RecorderProcess(["--config", str(config)])
        processes.append(again)
        restarted = again.wait_ready()  # the database still locked: it starts all the same
        assert rows_in(database) == []
        # Start-up recovery completed the recording; its row's changes wait in the spool.
        assert restarted.status()["database"]["spooled"] == 2
        expect(restarted.request("CALLLIST", 2), 23)
        lock.release()
        wait_for(lambda: restarted.status()["database"]["spooled"] == 0, 15.0, step=0.1,
                 what="the spool to be replayed")
    (row,) = rows_in(database)
    assert (row["ident"], row["ani"], row["status"], row["stop_reason"]) == (
        active["recordid"], "6145550009", "complete", STOP_RECOVERED)
    assert (data / "store-spool.jsonl").stat().st_size == 0
    audio, rate = soundfile.read(row["filename"], dtype="int16")
    assert len(audio) / rate == pytest.approx(row["duration"], abs=0.01)
    assert row["duration"] > 1.0
    assert abs(audio.astype(float)).mean() > 10  # the synthetic line's speech, not silence
    assert again.stop() == 0
