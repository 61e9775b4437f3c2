"""The store's contract, on real databases: each test on SQLite and on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from recorder.errors import StoreError
from recorder.store.records import (
    FILTER_FIELDS,
    FinishedRecording,
    NewRecording,
    RecordingQuery,
    RecordingUpdate,
)
from recorder.store.schema import MANUAL_COLUMNS
from recorder.store.sqlite import SqliteStore
from tests.helpers.engines import EngineDatabase


@pytest.fixture
def store(engine_db: EngineDatabase) -> Any:
    s = engine_db.store()
    s.open()
    yield s
    s.close()


def new(device: str = "1001", start: float = 1_700_000_000.25, **meta: str) -> NewRecording:
    return NewRecording(device_id=device, call_instance="", channel=1,
                        filename=f"/rec/{device}-{start}.wav", media_format="wav",
                        sample_rate=8000, start_time=start, core_ident=1, meta=meta)


def test_table_has_every_column_the_manual_lists_under_uniquefield(
        store: SqliteStore, engine_db: EngineDatabase) -> None:
    columns = engine_db.columns("recordings")
    assert set(MANUAL_COLUMNS) <= columns
    assert len(MANUAL_COLUMNS) == 49


def test_a_recording_is_stored_at_start_and_completed_at_stop(store: SqliteStore) -> None:
    ident = store.insert_recording(new(ANI="6145551212", USER1="Gold Level", GROUP="12"))
    row = store.get_recording(ident)
    assert row is not None
    assert (row.status, row.stop_time, row.duration) == ("recording", None, None)
    assert row.recording_time == 1_700_000_000
    assert (row.meta["ANI"], row.meta["USER1"], row.meta["GROUP"]) == (
        "6145551212", "Gold Level", "12")
    store.finish_recording(ident, FinishedRecording(
        stop_time=1_700_000_003.5, duration=3.25, audio_size=52044, audio_hash="ab" * 32,
        stop_reason="callstop"))
    row = store.get_recording(ident)
    assert row is not None
    assert (row.status, row.duration, row.audio_size, row.stop_reason) == (
        "complete", 3.25, 52044, "callstop")


def test_values_come_back_exactly(store: SqliteStore) -> None:
    tricky = "a & b <c> \"d\" 'e' ; DROP TABLE recordings; -- Zoë 東京"
    ident = store.insert_recording(new(device="x'y", USER4=tricky))
    row = store.get_recording(ident)
    assert row is not None
    assert (row.device_id, row.meta["USER4"]) == ("x'y", tricky)
    assert store.list_recordings(RecordingQuery(equals={"USER4": tricky}))[0].ident == ident


def test_list_is_newest_first_and_ties_go_to_the_later_row(store: SqliteStore) -> None:
    a = store.insert_recording(new(start=100.0))
    b = store.insert_recording(new(start=300.0))
    c = store.insert_recording(new(start=200.0))
    d = store.insert_recording(new(start=300.4))  # same second as b
    got = [r.ident for r in store.list_recordings(RecordingQuery(limit=10))]
    assert got == [d, b, c, a]


@pytest.mark.parametrize("field", FILTER_FIELDS)
def test_every_calllist_filter_narrows_the_list(store: SqliteStore, field: str) -> None:
    if field == "DEVICEID":
        wanted = store.insert_recording(new(device="42"))
    else:
        wanted = store.insert_recording(new(**{field: "42"}))
    store.insert_recording(new(**({} if field == "DEVICEID" else {field: "43"})))
    got = store.list_recordings(RecordingQuery(equals={field: "42"}))
    assert [r.ident for r in got] == [wanted]


def test_filters_combine_with_and(store: SqliteStore) -> None:
    both = store.insert_recording(new(ANI="1", DNIS="2"))
    store.insert_recording(new(ANI="1", DNIS="3"))
    store.insert_recording(new(ANI="4", DNIS="2"))
    got = store.list_recordings(RecordingQuery(equals={"ANI": "1", "DNIS": "2"}))
    assert [r.ident for r in got] == [both]


def test_date_range_is_inclusive_and_count_keeps_the_newest(store: SqliteStore) -> None:
    ids = [store.insert_recording(new(start=float(t))) for t in (100, 200, 300, 400, 500)]
    in_range = store.list_recordings(RecordingQuery(start=200, end=400, limit=10))
    assert [r.ident for r in in_range] == [ids[3], ids[2], ids[1]]
    top2 = store.list_recordings(RecordingQuery(start=200, end=400, limit=2))
    assert [r.ident for r in top2] == [ids[3], ids[2]]


def test_update_and_last_recording(store: SqliteStore) -> None:
    first = store.insert_recording(new(start=100.0))
    second = store.insert_recording(new(start=200.0))
    store.insert_recording(new(device="other", start=300.0))
    assert store.last_recording_id("1001") == second
    assert store.last_recording_id("nobody") is None
    assert store.update_recording(first, RecordingUpdate(meta={"USER3": "Follow up"},
                                                         keep_days=3650, archive_action=2))
    row = store.get_recording(first)
    assert row is not None
    assert (row.meta["USER3"], row.keep_days, row.archive_action) == ("Follow up", 3650, 2)
    assert not store.update_recording(999, RecordingUpdate(meta={"USER3": "x"}))
    assert not store.update_recording(999, RecordingUpdate())


def test_rows_survive_reopening(engine_db: EngineDatabase) -> None:
    first = engine_db.store()
    first.open()
    ident = first.insert_recording(new())
    first.close()
    again = engine_db.store()
    again.open()
    assert again.get_recording(ident) is not None
    assert again.insert_recording(new()) == ident + 1
    again.close()


def test_a_database_from_a_newer_recorder_is_refused(engine_db: EngineDatabase) -> None:
    engine_db.set_schema_version(99)
    with pytest.raises(StoreError, match="schema 99, newer than"):
        engine_db.store().open()


def test_a_closed_store_raises_store_error(engine_db: EngineDatabase) -> None:
    store = engine_db.store()
    with pytest.raises(StoreError, match="not open"):
        store.insert_recording(new())
