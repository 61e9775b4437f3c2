"""Retention: the expiry rule, the store's queries, the purge job, the free-space floor and
``recorderctl purge``, on real SQLite files and real files on disk."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

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
from recorder.config.loader import config_from_dict, load_config
from recorder.config.printing import to_toml
from recorder.errors import ConfigError
from recorder.recording.diskspace import MIB, DiskGuard, free_space, resume_threshold
from recorder.rules.retention import (
    RetentionPolicy,
    due_for_purge,
    expiry,
    kept_for,
    next_run,
)
from recorder.store.records import (
    DAY_SECONDS,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingRow,
    RecordingUpdate,
)
from recorder.store.schema import CREATE_V1, CREATE_V2, SCHEMA_VERSION
from recorder.store.sqlite import SqliteStore
from tests.helpers.ctl import RECORDERCTL, recorderctl
from tests.helpers.smalldisk import small_disk
from tests.helpers.terminal import on_terminal

DAY = DAY_SECONDS
NOW = 1_750_000_000.0

# Archive actions as a site would configure them: 7 keeps a week, 8 purges at once, 9 forever.
POLICY = RetentionPolicy(default_keep_days=90, archive_keep_days={7: 7, 8: 0, 9: None},
                         archive_names={7: "week"})


# --- the rule --------------------------------------------------------------------------------

@pytest.mark.parametrize(("keep_days", "archive_action", "policy", "expected_days"), [
    # The recording's own KEEPDAYS wins over everything.
    (30, 7, POLICY, 30),
    (30, 8, POLICY, 30),
    (1, None, POLICY, 1),
    # KEEPDAYS 0 and -1 (the manual's "not set") fall through to the archive action...
    (0, 7, POLICY, 7),
    (-1, 7, POLICY, 7),
    (None, 8, POLICY, 0),  # purge = true: due as soon as complete
    (None, 9, POLICY, None),  # keep_days = 0 in the table: forever
    # ...and ARCHIVEACTION -1, 0 or unknown to the default.
    (-1, -1, POLICY, 90),
    (None, 0, POLICY, 90),
    (None, 12345, POLICY, 90),
    # An archive action of a single day is a day, not "purge when complete".
    (None, 1, RetentionPolicy(archive_keep_days={1: 1}), 1),
    (None, None, POLICY, 90),
    # default_keep_days 0 in the config: forever.
    (None, None, RetentionPolicy(), None),
    (None, 12345, RetentionPolicy(), None),
    (5, None, RetentionPolicy(), 5),
])
def test_expiry_takes_keepdays_then_archive_action_then_default(
        keep_days: int | None, archive_action: int | None, policy: RetentionPolicy,
        expected_days: int | None) -> None:
    until = expiry(NOW, keep_days, archive_action, policy)
    assert until == (None if expected_days is None else NOW + expected_days * DAY)


def test_an_unknown_archive_action_is_logged_once_per_id(
        caplog: pytest.LogCaptureFixture) -> None:
    policy = RetentionPolicy(default_keep_days=3)
    with caplog.at_level(logging.WARNING, logger="recorder.archive.retention"):
        for _ in range(3):
            expiry(NOW, None, 41, policy)
        expiry(NOW, None, 42, policy)
        # 0 and -1 are "not set", not an id the table is missing: nothing to warn about.
        expiry(NOW, None, 0, policy)
        expiry(NOW, None, -1, policy)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "ARCHIVEACTION 41" in warned[0]
    assert "ARCHIVEACTION 42" in warned[1]


# What `recorderctl purge` prints beside each recording it purges (or would): the setting that
# decided its expiry.
@pytest.mark.parametrize(("keep_days", "archive_action", "policy", "expected"), [
    (30, 7, POLICY, (30, "KEEPDAYS 30")),
    (None, 7, POLICY, (7, "ARCHIVEACTION 7 (week): 7 days")),
    (None, 8, POLICY, (0, "ARCHIVEACTION 8: purge when complete")),
    (None, 9, POLICY, (None, "ARCHIVEACTION 9: forever")),
    (None, None, POLICY, (90, "retention.default_keep_days 90")),
    (None, None, RetentionPolicy(), (None, "retention.default_keep_days forever")),
])
def test_each_expiry_names_the_setting_that_decided_it(
        keep_days: int | None, archive_action: int | None, policy: RetentionPolicy,
        expected: tuple[int | None, str]) -> None:
    assert kept_for(keep_days, archive_action, policy) == expected


def row(*, ident: int = 1, start: float = NOW - 100 * DAY, status: str = "complete",
        purged: float | None = None, keep_days: int | None = None,
        archive: int | None = None) -> RecordingRow:
    return RecordingRow(
        ident=ident, device_id="1001", call_instance="", channel=1, filename="/r/a.wav",
        media_format="wav", sample_rate=8000, recording_time=int(start), start_time=start,
        stop_time=start + 60, duration=60.0, audio_size=1, audio_hash="", status=status,
        stop_reason="callstop", lost_samples=0, core_ident=1, meta={}, priority=None,
        keep_days=keep_days, archive_action=archive, cti_initiated="", agent_initiated="",
        purged_time=purged)


def test_only_complete_unpurged_expired_recordings_are_due() -> None:
    assert due_for_purge(row(), NOW, POLICY)
    assert not due_for_purge(row(status="recording"), NOW, POLICY)
    # Any status but complete, whatever it sorts as (a status added later must not be purged).
    assert not due_for_purge(row(status="aborted"), NOW, POLICY)
    assert not due_for_purge(row(purged=NOW - 1), NOW, POLICY)
    assert not due_for_purge(row(archive=9), NOW, POLICY)
    # Exactly at its expiry it is due; a second earlier it is not.
    start = NOW - 90 * DAY
    assert due_for_purge(row(start=start), NOW, POLICY)
    assert not due_for_purge(row(start=start + 1), NOW, POLICY)


BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).timestamp()


@pytest.mark.parametrize(("now", "purge_time", "expected"), [
    ("2025-06-10 02:59:00", "03:00", "2025-06-10 03:00:00"),
    ("2025-06-10 03:00:00", "03:00", "2025-06-11 03:00:00"),  # just run: tomorrow
    ("2025-06-10 23:30:00", "03:00", "2025-06-11 03:00:00"),  # across midnight
    ("2025-12-31 23:59:59", "00:00", "2026-01-01 00:00:00"),  # and the year
    ("2025-06-10 00:00:00", "00:00", "2025-06-11 00:00:00"),
    ("2025-06-10 12:00:00", "23:59", "2025-06-10 23:59:00"),
    # The night clocks go forward (02:00 -> 03:00 CEST) the job still runs at 03:00 local.
    ("2025-03-29 04:00:00", "03:00", "2025-03-30 03:00:00"),
    # And the night they go back.
    ("2025-10-25 04:00:00", "03:00", "2025-10-26 03:00:00"),
])
def test_the_daily_purge_runs_next_at_purge_time(now: str, purge_time: str,
                                                 expected: str) -> None:
    assert next_run(at(now), purge_time, BERLIN) == at(expected)


def test_across_a_dst_change_the_wait_is_23_or_25_hours() -> None:
    assert next_run(at("2025-03-29 03:00:00"), "03:00", BERLIN) - at("2025-03-29 03:00:00") \
        == 23 * 3600
    assert next_run(at("2025-10-25 03:00:00"), "03:00", BERLIN) - at("2025-10-25 03:00:00") \
        == 25 * 3600


# --- configuration ---------------------------------------------------------------------------

def test_retention_config_has_safe_defaults_and_loads_archive_actions() -> None:
    default = config_from_dict({}).retention
    assert (default.default_keep_days, default.purge_time, default.min_free_mb,
            default.delete_oldest_when_full, default.archive_actions) == (0, "03:00", 500,
                                                                          False, ())
    config = config_from_dict({"retention": {
        "default_keep_days": 90, "purge_time": "01:30", "min_free_mb": 0,
        "archive_actions": [{"id": 7, "keep_days": 7, "name": "week"},
                            {"id": 8, "purge": True}, {"id": 9}]}})
    policy = RetentionPolicy.from_config(config.retention)
    assert policy.archive_keep_days == {7: 7, 8: 0, 9: None}
    assert policy.default_keep_days == 90
    assert RetentionPolicy.from_config(default).default_keep_days is None  # 0 = forever


def test_retention_config_mistakes_name_their_key() -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict({"retention": {
            "purge_time": "3 am", "min_free_mb": -1, "delete_oldest": True,
            "archive_actions": [{"id": 7, "keep_days": 7, "purge": True},
                                {"id": 7, "keep_days": 1}, {"keep_days": 2},
                                {"id": 0, "keep_days": 2}]}})
    problems = err.value.problems
    assert "retention.delete_oldest: unknown key (did you mean 'delete_oldest_when_full'?)" \
        in problems
    assert any(p.startswith("retention.min_free_mb: -1 is out of range") for p in problems)
    assert "retention.archive_actions[2].id: required" in problems
    assert any(p.startswith("retention.archive_actions[3].id: 0 is out of range")
               for p in problems)
    # Checks across keys run once every key of the section has loaded.
    with pytest.raises(ConfigError) as err:
        config_from_dict({"retention": {
            "purge_time": "3 am",
            "archive_actions": [{"id": 7, "keep_days": 7, "purge": True},
                                {"id": 7, "keep_days": 1}]}})
    assert err.value.problems == [
        "retention.purge_time: '3 am' is not a time (HH:MM, 00:00 to 23:59)",
        "retention.archive_actions[0].purge: give keep_days or purge = true, not both",
        "retention.archive_actions[1].id: 7 is already the id of retention.archive_actions[0]",
    ]


def test_printed_retention_config_reads_back(tmp_path: Path) -> None:
    config = config_from_dict({"retention": {
        "default_keep_days": 30, "delete_oldest_when_full": True,
        "archive_actions": [{"id": 7, "keep_days": 7, "name": 'the "week"'},
                            {"id": 8, "purge": True}]}})
    printed = tmp_path / "printed.toml"
    printed.write_text(to_toml(config))
    assert load_config(printed).retention == config.retention


# --- the store -------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "data" / "recorder.sqlite3")
    s.open()
    yield s
    s.close()


def add(store: SqliteStore, filename: Path | str, start: float, *, complete: bool = True,
        keep_days: int | None = None, archive: int | None = None, media_format: str = "wav",
        size: int | None = None) -> int:
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=1, filename=str(filename),
        media_format=media_format, sample_rate=8000, start_time=start, core_ident=1,
        keep_days=keep_days, archive_action=archive))
    if complete:
        store.finish_recording(ident, FinishedRecording(
            stop_time=start + 60, duration=60.0, audio_size=size or 0, audio_hash="00",
            stop_reason="callstop"))
    return ident


def mix(store: SqliteStore, root: Path, now: float = NOW) -> dict[str, int]:
    """One recording of each kind retention must tell apart, by what is expected of it."""
    rows = {
        "expired by default": add(store, root / "a.wav", now - 91 * DAY),
        "default, not yet": add(store, root / "b.wav", now - 89 * DAY),
        "in progress, old": add(store, root / "c.wav", now - 400 * DAY, complete=False),
        "own keepdays expired": add(store, root / "d.wav", now - 31 * DAY, keep_days=30),
        "own keepdays not yet": add(store, root / "e.wav", now - 200 * DAY, keep_days=365),
        "keepdays beats purge": add(store, root / "f.wav", now - 2 * DAY, keep_days=10,
                                    archive=8),
        "archive purge": add(store, root / "g.wav", now - 60, archive=8),
        "archive week expired": add(store, root / "h.wav", now - 8 * DAY, archive=7),
        "archive week not yet": add(store, root / "i.wav", now - 6 * DAY, archive=7),
        "archive forever": add(store, root / "j.wav", now - 1000 * DAY, archive=9),
        "unknown archive, default": add(store, root / "k.wav", now - 95 * DAY, archive=555),
        "unknown archive, not yet": add(store, root / "l.wav", now - 5 * DAY, archive=555),
        "manual's -1 -1": add(store, root / "m.wav", now - 120 * DAY, keep_days=-1,
                              archive=-1),
        "already purged": add(store, root / "n.wav", now - 500 * DAY),
    }
    assert store.mark_purged(rows["already purged"], now - 100 * DAY)
    return rows


EXPIRED = {"expired by default", "own keepdays expired", "archive purge",
           "archive week expired", "unknown archive, default", "manual's -1 -1"}


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


def test_the_expiry_query_reads_the_unpurged_index(store: SqliteStore) -> None:
    # The store may hold millions of rows: the query must walk the small partial index of
    # rows still to purge, never the whole table.
    from recorder.store.sqlite import _expired_where  # noqa: PLC0415 - the SQL under test

    where, args = _expired_where(NOW, POLICY.rule)
    conn = sqlite3.connect(store.path)
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

def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x01" * size)
    return path


def recording_path(root: Path, name: str) -> Path:
    return root / "20250101" / "1001" / name


def job_for(store: SqliteStore, root: Path, guard: DiskGuard | None = None,
            delete_oldest_when_full: bool = False) -> RetentionJob:
    """A job whose clock stands at NOW, in small batches so that batching is exercised."""
    return RetentionJob(store, POLICY, root, clock=lambda: NOW, batch_size=2, guard=guard,
                        delete_oldest_when_full=delete_oldest_when_full)


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


# --- the free-space floor ----------------------------------------------------------------------

class FakeDisk:
    """A file system of ``capacity`` bytes holding whatever files are under ``root``."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root = root
        self.capacity = capacity
        self.reads = 0
        self.threads: set[str] = set()

    def __call__(self, path: Path) -> int:
        self.reads += 1
        self.threads.add(threading.current_thread().name)
        used = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())
        return self.capacity - used


def test_the_floor_refuses_below_min_free_and_caches_the_reading(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    clock = [100.0]
    guard = DiskGuard(root, min_free_mb=4, usage=disk, clock=lambda: clock[0])
    assert guard.ok()
    assert guard.free_bytes() == 10 * MIB
    assert disk.reads == 1  # both answered from one reading
    write(root / "big.wav", 7 * MIB)
    assert guard.ok()  # still the reading of less than a second ago
    clock[0] += 1.0
    assert not guard.ok()
    assert guard.free_bytes() == 3 * MIB
    assert guard.short_of_space.is_set()
    assert guard.explain() == (f"free space on {root} (3 MB) is below retention.min_free_mb "
                               "(4 MB)")
    (root / "big.wav").unlink()
    assert guard.ok(fresh=True)  # fresh: not from the cache


def test_a_floor_of_zero_is_off_and_an_unreadable_disk_does_not_stop_recording(
        tmp_path: Path) -> None:
    def broken(path: Path) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    assert DiskGuard(tmp_path, min_free_mb=0, usage=broken).ok()
    guard = DiskGuard(tmp_path, min_free_mb=500, usage=broken)
    assert guard.ok()
    with pytest.raises(PermissionError, match="Permission denied"):
        guard.free_bytes()


def test_an_unreadable_disk_is_logged_once_each_time_it_becomes_unreadable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Not once per call start: a site taking calls all day would drown its log."""
    readable = [False]

    def flaky(path: Path) -> int:
        if not readable[0]:
            raise OSError(5, "Input/output error")
        return 900 * MIB

    guard = DiskGuard(tmp_path, min_free_mb=500, usage=flaky, cache_seconds=0.0)

    def logged() -> int:
        return sum("cannot read the free space" in r.getMessage() for r in caplog.records)

    with caplog.at_level(logging.ERROR, logger="recorder.recording.diskspace"):
        assert all(guard.ok() for _ in range(3))
        assert logged() == 1
        readable[0] = True
        assert guard.ok()
        readable[0] = False
        assert all(guard.ok() for _ in range(3))
        assert logged() == 2  # unreadable again after a good reading: said again
        # With no floor the disk is not even read: nothing to log, however broken it is.
        assert DiskGuard(tmp_path, min_free_mb=0, usage=flaky).ok()
        assert logged() == 2


def test_the_log_says_how_many_mb_are_free_when_the_floor_is_crossed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    guard = DiskGuard(root, min_free_mb=4, usage=disk, cache_seconds=0.0)
    with caplog.at_level(logging.WARNING, logger="recorder.recording.diskspace"):
        write(root / "big.wav", 7 * MIB)
        assert not guard.ok()
        (root / "big.wav").unlink()
        assert guard.ok()
    assert [r.getMessage() for r in caplog.records] == [
        f"only 3 MB free on {root}, below retention.min_free_mb 4: new recordings are refused",
        f"10 MB free on {root} again: new recordings are accepted"]


def test_the_guard_takes_its_floor_and_resume_time_from_the_configuration(
        tmp_path: Path) -> None:
    config = config_from_dict({"storage": {"data_dir": str(tmp_path / "data"),
                                           "disk_full_resume_seconds": 30},
                               "retention": {"min_free_mb": 7}})
    guard = DiskGuard.from_config(config)
    assert guard.recordings_dir == tmp_path / "data" / "recordings"
    assert guard.floor_bytes == 7 * MIB
    guard.disk_full(tmp_path / "cut.wav", 1000.0)  # 30 s of 1000 B/s, under the floor
    assert guard.resume_bytes == 7 * MIB
    guard.disk_full(tmp_path / "cut2.wav", 1_000_000.0)
    assert guard.resume_bytes == 30 * 1_001_000  # 30 s, not the default 120


def test_a_reading_is_kept_for_a_second_whenever_it_was_taken(tmp_path: Path) -> None:
    root = tmp_path / "recordings"
    disk = FakeDisk(root, capacity=10 * MIB)
    clock = [100.0]
    guard = DiskGuard(root, min_free_mb=4, usage=disk, clock=lambda: clock[0])
    assert guard.ok()
    write(root / "big.wav", 7 * MIB)
    clock[0] = 200.5  # 100.5 s later: read again
    assert not guard.ok()


def test_a_file_a_full_disk_kept_from_being_made_needs_any_room_at_all(tmp_path: Path) -> None:
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0, size=lambda path: 8 * MIB)
    guard.disk_full(tmp_path / "never.wav", 0.0)  # nothing written: 0 B/s
    assert guard.resume_bytes == 1


def test_the_first_cut_caps_the_threshold_by_the_volume_and_is_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One call cut on a 2 MiB volume: two minutes of it (1.92 MB) is capped at half the
    volume from the first cut on; the journal says so once, not at every cut."""
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0,
                      size=lambda path: 2 * MIB)
    with caplog.at_level(logging.WARNING, logger="recorder.recording.diskspace"):
        guard.disk_full(tmp_path / "a.wav", 16000.0)
        assert guard.resume_bytes == MIB
        assert [r.getMessage() for r in caplog.records] == [
            f"the disk holding {tmp_path} is full: recordings in progress are cut short "
            "(truncated) and new ones refused until 1.0 MB are free"]
        guard.disk_full(tmp_path / "b.wav", 16000.0)
        assert len(caplog.records) == 1


def test_recording_resumes_with_exactly_the_threshold_free(tmp_path: Path) -> None:
    space = [0]
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: space[0],
                      size=lambda path: 64 * MIB, cache_seconds=0.0)
    guard.disk_full(tmp_path / "cut.wav", 16000.0)
    space[0] = guard.resume_bytes - 1
    assert not guard.ok()
    space[0] = guard.resume_bytes
    assert guard.ok()


def test_each_recording_a_full_disk_cuts_is_counted_once(tmp_path: Path) -> None:
    """The count /metrics and the status report give as truncated: one per file cut, however
    many of its writes failed."""
    guard = DiskGuard(tmp_path, min_free_mb=0, usage=lambda path: 0,
                      size=lambda path: 8 * MIB)
    guard.disk_full(tmp_path / "a.wav", 16000.0)
    guard.disk_full(tmp_path / "a.wav", 16000.0)
    guard.disk_full(tmp_path / "b.wav", 16000.0)
    assert guard.truncated == 2


def test_the_real_floor_reads_the_file_system(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet" / "recordings"  # before the first recording makes it
    real = shutil.disk_usage(tmp_path).free
    assert abs(free_space(root) - real) < 64 * MIB
    assert abs(DiskGuard(root, min_free_mb=1).free_bytes() - real) < 64 * MIB
    assert DiskGuard(root, min_free_mb=1).ok()
    everything = (shutil.disk_usage(tmp_path).total // MIB) + 1
    assert not DiskGuard(root, min_free_mb=everything).ok()


def test_after_a_full_disk_a_small_volume_resumes_at_half_its_size(tmp_path: Path) -> None:
    """Six 8 kHz calls cut on an 8 MiB volume: two minutes of their writing (11.5 MB) is more
    than the volume holds, so the threshold is capped at half the volume (4 MiB), and recording
    resumes once that much is free."""
    with small_disk(tmp_path / "fs", 8 * MIB) as disk:
        if disk.mode != "tmpfs":
            pytest.skip("needs the right to mount a tmpfs")
        guard = DiskGuard(disk.root, min_free_mb=0, cache_seconds=0.0)
        disk.fill(64 << 10)
        for n in range(6):
            guard.disk_full(disk.root / f"{n}.wav", 16000.0)
        assert guard.resume_bytes == 4 * MIB
        assert not guard.ok()
        disk.free_up()  # 97% of the volume free
        assert guard.ok()
        assert not guard.full


@pytest.mark.parametrize(("floor", "rates", "volume", "expected"), [
    (0, [16000.0] * 2, 16 * MIB, 3_840_000),  # two minutes of two calls: under half the volume
    (0, [16000.0] * 2, 6 * MIB, 3 * MIB),  # the same on 6 MiB: half of it
    (0, [16000.0] * 6, 8 * MIB, 4 * MIB),  # 11.5 MB of six calls: capped at half of 8 MiB
    (0, [16000.0] * 6, None, 11_520_000),  # the volume's size unknown: no cap
    (5 * MIB, [16000.0] * 6, 8 * MIB, 5 * MIB),  # the floor is the site's own rule: never capped
    (0, [], 8 * MIB, 1),  # a file that could not even be made (0 B/s): any room at all
])
def test_the_resume_threshold(floor: int, rates: list[float], volume: int | None,
                              expected: int) -> None:
    assert resume_threshold(floor, 120.0, rates, volume) == expected


def full_disk(store: SqliteStore, tmp_path: Path) -> tuple[Path, list[Path], list[int], int]:
    root = tmp_path / "data" / "recordings"
    # Four 3 MiB recordings, none expired (kept forever), oldest first; one still recording.
    files = [write(recording_path(root, f"{i}.wav"), 3 * MIB) for i in range(4)]
    idents = [add(store, f, NOW - (10 - i) * DAY, archive=9) for i, f in enumerate(files)]
    running = add(store, write(root / "live.wav", 1 * MIB), NOW - 20 * DAY, complete=False)
    return root, files, idents, running


def test_delete_oldest_when_full_purges_oldest_first_only_until_above_the_floor(
        store: SqliteStore, tmp_path: Path) -> None:
    root, files, idents, running = full_disk(store, tmp_path)
    # 13 MiB used of 16: 3 free, floor 8. Two recordings free 6 -> 9 MiB free: enough.
    disk = FakeDisk(root, capacity=16 * MIB)
    guard = DiskGuard(root, min_free_mb=8, usage=disk)
    job = job_for(store, root, guard=guard, delete_oldest_when_full=True)
    report = job.make_room()
    assert [f.exists() for f in files] == [False, False, True, True]
    assert (report.purged, report.bytes_freed) == (2, 6 * MIB)
    assert [store.get_recording(i).purged_time for i in idents] == [  # type: ignore[union-attr]
        NOW, NOW, None, None]
    live = store.get_recording(running)
    assert live is not None
    assert live.purged_time is None
    assert (root / "live.wav").exists()
    assert guard.ok()


def test_without_the_option_unexpired_recordings_are_never_deleted_to_make_room(
        store: SqliteStore, tmp_path: Path) -> None:
    root, files, _, _ = full_disk(store, tmp_path)
    guard = DiskGuard(root, min_free_mb=8, usage=FakeDisk(root, capacity=16 * MIB))
    job = job_for(store, root, guard=guard)
    assert not guard.ok()
    assert job.make_room().purged == 0
    assert job.run_now().purged == 0
    assert all(f.exists() for f in files)


def test_the_job_thread_makes_room_not_the_callers(store: SqliteStore,
                                                   tmp_path: Path) -> None:
    root, files, _, _ = full_disk(store, tmp_path)
    disk = FakeDisk(root, capacity=24 * MIB)  # 13 MiB used: 11 free, above the floor
    guard = DiskGuard(root, min_free_mb=8, usage=disk)
    job = RetentionJob(store, POLICY, root, guard=guard, delete_oldest_when_full=True,
                       clock=lambda: NOW, poll_seconds=0.01, disk_check_seconds=3600)
    job.start()
    try:
        time.sleep(0.1)  # the job's first look at the disk
        write(root / "new.wav", 6 * MIB)  # then a 6 MiB call: 5 free, 3 short
        disk.threads.clear()
        assert not guard.ok(fresh=True)  # the scheduler's question, on a call start
        assert all(f.exists() for f in files)  # answered at once; nothing deleted here
        deadline = time.monotonic() + 5
        while not guard.ok(fresh=True) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [f.exists() for f in files] == [False, True, True, True]
        assert "retention" in disk.threads
    finally:
        job.stop()
        assert job.join(timeout=2)


# --- recorderctl purge -------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, Path, SqliteStore]]:
    data = tmp_path / "data"
    config = tmp_path / "recorder.toml"
    config.write_text(f'[storage]\ndata_dir = "{data}"\n\n[retention]\ndefault_keep_days = 30\n'
                      '[[retention.archive_actions]]\nid = 8\npurge = true\n')
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    yield config, data / "recordings", store
    store.close()


@pytest.mark.slow
def test_recorderctl_purge_dry_run_then_for_real(site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    old = write(recording_path(root, "old.wav"), 100)
    done = write(recording_path(root, "done.wav"), 20)
    young = write(recording_path(root, "young.wav"), 5)
    a = add(store, old, now - 40 * DAY)
    b = add(store, done, now - 3600, archive=8)
    add(store, young, now - 2 * DAY)

    dry = recorderctl("purge", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert any(line.startswith("would purge\tRECORDID " + str(a)) and str(old) in line
               and "100 bytes" in line for line in lines)
    assert any(line.startswith("would purge\tRECORDID " + str(b)) and "purge when complete"
               in line for line in lines)
    assert lines[-1] == "would purge 2 of 2 recording(s) examined, 120 bytes to free"
    assert old.exists()
    assert done.exists()

    real = recorderctl("purge", "--config", str(config))
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines()[-1] == "purged 2 of 2 recording(s) examined, 120 bytes freed"
    assert not old.exists()
    assert not done.exists()
    assert young.exists()
    for ident in (a, b):
        purged = store.get_recording(ident)
        assert purged is not None
        assert purged.purged_time is not None


def test_recorderctl_purge_json_and_failures(site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    old = write(recording_path(root, "old.wav"), 100)
    stuck = recording_path(root, "stuck.wav")
    write(stuck / "inside", 1)
    a = add(store, old, now - 40 * DAY)
    b = add(store, stuck, now - 50 * DAY)
    result = recorderctl("purge", "--json", env={"RECORDER_CONFIG": str(config)})
    assert result.returncode == 1, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["purged"], answer["failures"], answer["bytes_freed"]) == (1, 1, 100)
    by_id = {r["recordid"]: r for r in answer["recordings"]}
    assert by_id[a]["result"] == "purged"
    assert by_id[b]["result"] == "failed"
    assert by_id[b]["filename"] == str(stuck)


@pytest.mark.slow
def test_recorderctl_purge_refuses_a_bad_config_or_a_missing_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[retention]\npurge_time = "25:00"\n')
    result = recorderctl("purge", "--config", str(bad))
    assert result.returncode == 2
    assert "retention.purge_time: '25:00' is not a time" in result.stderr
    empty = tmp_path / "empty.toml"
    empty.write_text(f'[storage]\ndata_dir = "{tmp_path / "nothing"}"\n')
    result = recorderctl("purge", "--config", str(empty))
    assert result.returncode == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "nothing").exists()  # looking did not create one
    assert recorderctl("purge", "--bogus").returncode == 2


def test_recorderctl_purge_shows_a_progress_bar_on_a_terminal(
        site: tuple[Path, Path, SqliteStore]) -> None:
    config, root, store = site
    now = time.time()
    for i in range(3):
        add(store, write(recording_path(root, f"{i}.wav"), 10), now - (40 + i) * DAY)
    proc, text = on_terminal([str(RECORDERCTL), "purge", "--config", str(config)], "stdout")
    assert proc.returncode == 0, proc.stderr
    assert f"\r[{'#' * 30}] 3/3" in text
    assert "RECORDID" not in text  # the bar instead of a line per recording
    assert text.splitlines()[-1] == "purged 3 of 3 recording(s) examined, 30 bytes freed"


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
