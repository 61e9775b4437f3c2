"""Retention on real databases (each test on SQLite and on PostgreSQL but SQLite's own plan
and upgrade) and files on disk: the store's queries for what is due, and the purge job that
deletes the files and marks their rows."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.archive.retention import (
    DEFERRED,
    FAILED,
    MISSING,
    PURGED,
    WOULD_PURGE,
    PurgeOutcome,
    RetentionJob,
)
from recorder.rules.retention import due_for_purge
from recorder.store.records import RecordingQuery, RecordingUpdate
from recorder.store.schema import CREATE_V1, CREATE_V2, SCHEMA_VERSION
from recorder.store.sqlite import SqliteStore
from tests.helpers.engines import EngineDatabase
from tests.helpers.retention import (
    BERLIN,
    DAY,
    EXPIRED,
    NOW,
    POLICY,
    add,
    at,
    job_for,
    mix,
    recording_path,
    write,
)
from tests.helpers.retention import store as sqlite_store


@pytest.fixture
def store(engine_db: EngineDatabase) -> Iterator[SqliteStore]:
    """The store on each engine (its data directory, as the helpers' store's, is data/)."""
    s = engine_db.store()
    s.open()
    yield s
    s.close()


__all__ = ["sqlite_store"]  # the fixture, used by name


# --- the store -------------------------------------------------------------------------------

def test_the_store_finds_exactly_the_expired_recordings(store: SqliteStore,
                                                        tmp_path: Path) -> None:
    rows = mix(store, tmp_path)
    found = store.expired_recordings(NOW, POLICY.rule, limit=100)
    assert {r.ident for r in found} == {rows[k] for k in EXPIRED}
    assert store.count_expired(NOW, POLICY.rule) == len(EXPIRED)
    # Oldest first, and the pure rule agrees on every row there is.
    assert [r.start_time for r in found] == sorted(r.start_time for r in found)
    every = store.list_recordings(RecordingQuery(limit=1000))
    assert {r.ident for r in every if due_for_purge(r, NOW, POLICY)} == {r.ident for r in found}


def test_the_store_hands_them_out_in_batches(store: SqliteStore, tmp_path: Path) -> None:
    rows = mix(store, tmp_path)
    seen: list[int] = []
    after = None
    while batch := store.expired_recordings(NOW, POLICY.rule, limit=4, after=after):
        assert len(batch) <= 4
        seen += [r.ident for r in batch]
        after = (batch[-1].start_time, batch[-1].ident)
    assert sorted(seen) == sorted(rows[k] for k in EXPIRED)
    assert len(seen) == len(set(seen))


def test_the_expiry_query_reads_the_unpurged_index(sqlite_store: SqliteStore) -> None:
    # The store may hold millions of rows: the query must walk the small partial index of
    # rows still to purge, never the whole table.
    from recorder.store.sqlite import _expired_where  # noqa: PLC0415 - the SQL under test

    where, args = _expired_where(NOW, POLICY.rule)
    conn = sqlite3.connect(sqlite_store.path)
    plan = " ".join(str(step[3]) for step in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT r.ident FROM recordings r WHERE {where}"
        " AND (r.start_time, r.ident) > (?, ?) ORDER BY r.start_time, r.ident LIMIT 10",
        (*args, 0.0, 0)))
    count_plan = " ".join(str(step[3]) for step in conn.execute(
        f"EXPLAIN QUERY PLAN SELECT count(*) FROM recordings r WHERE {where}", args))
    conn.close()
    assert "recordings_unpurged" in plan
    assert "TEMP B-TREE" not in plan  # no sort: the index is in the order asked
    # Rows not due are rejected from the index alone.
    assert "COVERING INDEX recordings_unpurged" in count_plan


def test_a_purged_row_stays_listed_with_its_filename(store: SqliteStore,
                                                     tmp_path: Path) -> None:
    ident = add(store, tmp_path / "a.wav", NOW - 100 * DAY)
    running = add(store, tmp_path / "b.wav", NOW - 100 * DAY, complete=False)
    assert store.mark_purged(ident, NOW)
    assert not store.mark_purged(ident, NOW + 5)  # only once
    assert not store.mark_purged(running, NOW)  # never a recording in progress
    assert not store.mark_purged(99999, NOW)
    (listed,) = [r for r in store.list_recordings(RecordingQuery()) if r.ident == ident]
    assert (listed.purged_time, listed.filename) == (NOW, str(tmp_path / "a.wav"))
    fetched = store.get_recording(running)
    assert fetched is not None
    assert fetched.purged_time is None


def test_oldest_unpurged_skips_what_cannot_make_room(store: SqliteStore,
                                                     tmp_path: Path) -> None:
    c = add(store, tmp_path / "c.wav", NOW - 1 * DAY)
    a = add(store, tmp_path / "a.wav", NOW - 3 * DAY)
    add(store, tmp_path / "r.wav", NOW - 9 * DAY, complete=False)
    gone = add(store, tmp_path / "g.wav", NOW - 8 * DAY)
    store.mark_purged(gone, NOW)
    add(store, "", NOW - 7 * DAY)  # a screen session: no file to delete
    b = add(store, tmp_path / "b.wav", NOW - 2 * DAY)
    assert [r.ident for r in store.oldest_unpurged(10)] == [a, b, c]
    first = store.oldest_unpurged(2)
    assert [r.ident for r in first] == [a, b]
    after = (first[-1].start_time, first[-1].ident)
    assert [r.ident for r in store.oldest_unpurged(2, after)] == [c]


def test_a_version_2_database_gains_purged_time(tmp_path: Path) -> None:
    path = tmp_path / "v2.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(f"{CREATE_V1}\n{CREATE_V2}\nPRAGMA user_version = 2;")
    conn.execute("INSERT INTO recordings (device_id, filename, recording_time, media_format,"
                 " sample_rate, start_time, status, core_ident, keepdays) VALUES"
                 " ('1001', '/r/a.wav', 5, 'wav', 8000, 5.0, 'complete', 1, 1)")
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    store.open()
    try:
        (old,) = store.list_recordings(RecordingQuery())
        assert old.purged_time is None
        assert [r.ident for r in store.expired_recordings(NOW, POLICY.rule, 10)] == [old.ident]
    finally:
        store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION



# --- the purge job ---------------------------------------------------------------------------

def test_the_job_deletes_expired_files_and_marks_their_rows(store: SqliteStore,
                                                            tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    old = write(recording_path(root, "1001-09-00-00.wav"), 1000)
    young = write(recording_path(root, "1001-10-00-00.wav"), 2000)
    week = write(recording_path(root, "1001-11-00-00.mp3"), 300)
    # What after-call encoding may leave beside an MP3: its source WAV and a partial copy.
    week_wav = write(week.with_suffix(".wav"), 40)
    week_part = write(week.with_name(week.name + ".part"), 5)
    gone = recording_path(root, "1001-12-00-00.wav")  # deleted by hand already
    running = write(recording_path(root, "1001-13-00-00.wav"), 7)
    a = add(store, old, NOW - 100 * DAY)
    b = add(store, young, NOW - 10 * DAY)
    c = add(store, week, NOW - 8 * DAY, archive=7, media_format="mp3")
    d = add(store, gone, NOW - 95 * DAY)
    e = add(store, running, NOW - 400 * DAY, complete=False)
    screen = add(store, "", NOW - 99 * DAY)
    ticks: list[tuple[int, int]] = []
    outcomes: list[PurgeOutcome] = []
    report = job_for(store, root).run_now(lambda done, total: ticks.append((done, total)),
                                          on_outcome=outcomes.append)
    assert not old.exists()
    assert not week.exists()
    assert not week_wav.exists()
    assert not week_part.exists()
    assert young.exists()
    assert running.exists()
    assert (report.examined, report.purged, report.missing, report.failures) == (4, 4, 1, 0)
    assert report.bytes_freed == 1000 + 300 + 40 + 5
    assert ticks == [(1, 4), (2, 4), (3, 4), (4, 4)]
    results = {o.ident: o.result for o in outcomes}
    assert results == {a: PURGED, c: PURGED, d: MISSING, screen: PURGED}
    for ident in (a, c, d, screen):
        purged = store.get_recording(ident)
        assert purged is not None
        assert purged.purged_time == NOW
    for ident in (b, e):
        kept = store.get_recording(ident)
        assert kept is not None
        assert kept.purged_time is None
    # A second run finds nothing more to do.
    again = job_for(store, root).run_now()
    assert (again.examined, again.purged) == (0, 0)


def test_a_file_that_cannot_be_deleted_is_counted_and_kept(store: SqliteStore,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    first = write(recording_path(root, "a.wav"), 10)
    # A directory where the file should be: unlink fails even for root.
    stuck = recording_path(root, "b.wav")
    write(stuck / "inside", 1)
    last = write(recording_path(root, "c.wav"), 30)
    a = add(store, first, NOW - 300 * DAY)
    b = add(store, stuck, NOW - 200 * DAY)
    c = add(store, last, NOW - 100 * DAY)
    outcomes: list[PurgeOutcome] = []
    report = job_for(store, root).run_now(on_outcome=outcomes.append)
    assert (report.purged, report.failures, report.bytes_freed) == (2, 1, 40)
    assert not first.exists()
    assert not last.exists()
    assert stuck.is_dir()
    failed = next(o for o in outcomes if o.ident == b)
    assert failed.result == FAILED
    assert "directory" in failed.detail.lower()
    rows = {i: store.get_recording(i) for i in (a, b, c)}
    assert [r.purged_time if r else "?" for r in rows.values()] == [NOW, None, NOW]


def test_a_file_outside_the_recordings_directory_is_never_deleted(store: SqliteStore,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    precious = write(tmp_path / "etc" / "passwd", 10)
    sneaky = write(root / "x.wav", 3).parent / ".." / ".." / "etc" / "passwd"
    add(store, precious, NOW - 300 * DAY)
    add(store, sneaky, NOW - 300 * DAY)
    report = job_for(store, root).run_now()
    assert precious.exists()
    assert (report.purged, report.failures) == (0, 2)


def test_a_recording_awaiting_after_call_encoding_is_purged_later(store: SqliteStore,
                                                                  tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    wav = write(recording_path(root, "a.wav"), 10)
    ident = add(store, wav, NOW - 300 * DAY, media_format="mp3")
    outcomes: list[PurgeOutcome] = []
    report = job_for(store, root).run_now(on_outcome=outcomes.append)
    assert wav.exists()
    assert (report.purged, report.deferred) == (0, 1)
    assert [o.result for o in outcomes] == [DEFERRED]
    # Transcoded: now it goes.
    mp3 = write(wav.with_suffix(".mp3"), 4)
    store.replace_recording_file(str(wav), str(mp3), "mp3", 4, "00")
    wav.unlink()
    assert job_for(store, root).run_now().purged == 1
    assert not mp3.exists()
    purged = store.get_recording(ident)
    assert purged is not None
    assert purged.purged_time == NOW


def test_a_dry_run_deletes_and_marks_nothing(store: SqliteStore, tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    old = write(recording_path(root, "a.wav"), 100)
    ident = add(store, old, NOW - 100 * DAY)
    outcomes: list[PurgeOutcome] = []
    report = job_for(store, root).run_now(dry_run=True, on_outcome=outcomes.append)
    assert (report.dry_run, report.purged, report.bytes_freed) == (True, 1, 100)
    assert [(o.ident, o.result) for o in outcomes] == [(ident, WOULD_PURGE)]
    assert "retention.default_keep_days 90" in outcomes[0].detail
    assert old.exists()
    kept = store.get_recording(ident)
    assert kept is not None
    assert kept.purged_time is None


def test_empty_directories_are_removed_behind_old_recordings(store: SqliteStore,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    alone = write(root / "20240101" / "1001" / "a.wav", 1)
    shared = write(root / "20240102" / "1002" / "b.wav", 1)
    neighbour = write(root / "20240102" / "1003" / "c.wav", 1)
    add(store, alone, NOW - 100 * DAY)
    add(store, shared, NOW - 100 * DAY)
    add(store, neighbour, NOW - 10 * DAY)
    job_for(store, root).run_now()
    assert not (root / "20240101").exists()
    assert not (root / "20240102" / "1002").exists()
    assert neighbour.exists()
    assert root.is_dir()


def test_a_keepdays_changed_by_callupdate_counts_at_the_next_run(store: SqliteStore,
                                                                 tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    f = write(recording_path(root, "a.wav"), 1)
    ident = add(store, f, NOW - 100 * DAY)
    store.update_recording(ident, RecordingUpdate(keep_days=3650))
    assert job_for(store, root).run_now().purged == 0
    assert f.exists()


def test_the_job_thread_purges_at_purge_time_and_stops_promptly(store: SqliteStore,
                                                                tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    old = write(recording_path(root, "a.wav"), 1)
    add(store, old, at("2025-06-01 00:00:00") - 100 * DAY)
    clock = [at("2025-06-10 02:59:58")]
    job = RetentionJob(store, POLICY, root, purge_time="03:00", clock=lambda: clock[0],
                       tz=BERLIN, poll_seconds=0.01)
    job.start()
    try:
        time.sleep(0.2)
        assert old.exists()  # not yet three o'clock
        clock[0] = at("2025-06-10 03:00:00")
        deadline = time.monotonic() + 5
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not old.exists()
    finally:
        job.stop()
        assert job.join(timeout=2)


def test_run_now_is_safe_from_two_threads_at_once(store: SqliteStore, tmp_path: Path) -> None:
    root = tmp_path / "data" / "recordings"
    files = [write(recording_path(root, f"{i}.wav"), 10) for i in range(20)]
    for i, f in enumerate(files):
        add(store, f, NOW - (100 + i) * DAY)
    job = job_for(store, root)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(job.run_now())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.purged for r in reports) == [0, 20]
    assert sum(r.bytes_freed for r in reports) == 200


def test_purging_an_encrypted_recording_removes_its_wrapped_key_after_it(
        store: SqliteStore, tmp_path: Path) -> None:
    """The key beside the file goes with it (docs/encryption.md): without it no copy of the
    file, in a backup or elsewhere, opens again. A file kept keeps its key."""
    root = tmp_path / "data" / "recordings"
    old = write(recording_path(root, "1001-09-00-00.wav"), 1000)
    old_key = write(old.with_name(old.name + ".key"), 150)
    young = write(recording_path(root, "1001-10-00-00.wav"), 2000)
    young_key = write(young.with_name(young.name + ".key"), 150)
    add(store, old, NOW - 100 * DAY)
    add(store, young, NOW - 10 * DAY)
    report = job_for(store, root).run_now()
    assert not old.exists()
    assert not old_key.exists()
    assert young.exists()
    assert young_key.exists()
    assert report.bytes_freed == 1000 + 150
