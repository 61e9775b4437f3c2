"""The evidence and the audit trail through the store's interfaces, on SQLite and on
PostgreSQL: rows sealed by every change the recorder makes and not by one made behind its
back, the audit chain append-only in the database itself, purged from its start only, and
never forked by writers in two stores at once (two recorder servers on one PostgreSQL).

(tests/test_evidence.py checks the same on SQLite files through ``recorderctl verify``.)"""

from __future__ import annotations

import threading
import time

import pytest

from recorder.store.audit import AuditEntry
from recorder.store.audithead import read_head
from recorder.store.evidence import check_chain
from recorder.store.records import FinishedRecording, NewRecording, RecordingUpdate
from recorder.store.sealkey import SealKey
from recorder.store.sqlite import SqliteStore
from tests.helpers.engines import EngineDatabase


def opened(engine_db: EngineDatabase) -> SqliteStore:
    store = engine_db.store()
    store.open()
    return store


def recorded(store: SqliteStore, name: str, start: float) -> int:
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=1, filename=f"/r/{name}",
        media_format="wav", sample_rate=8000, start_time=start, core_ident=1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + 2.5, duration=2.5, audio_size=100, audio_hash="ab" * 32,
        stop_reason="callstop", blackouts=((0.5, 1.0),)))
    return ident


def seals(store: SqliteStore) -> dict[int, bool]:
    """Each row's seal: whether it matches what the row holds now (rows without a seal left
    out)."""
    return {r.ident: r.row_hash == r.seal for r in store.sealed_rows() if r.row_hash}


def test_every_change_the_recorder_makes_is_sealed_and_one_behind_its_back_is_not(
        engine_db: EngineDatabase) -> None:
    store = opened(engine_db)
    try:
        updated, purged, replaced, listened = (
            recorded(store, f"{n}.wav", 1000.0 * n) for n in range(1, 5))
        assert store.update_recording(updated, RecordingUpdate(meta={"USER1": "case 77"},
                                                               keep_days=30))
        assert store.mark_purged(purged, 5000.0)
        assert store.replace_recording_file("/r/3.wav", "/r/3.mp3", "mp3", 50, "cd" * 32)
        assert store.mark_listened(listened)
        assert seals(store) == dict.fromkeys((updated, purged, replaced, listened), True)
        assert store.recording_blackouts(updated) == ((0.5, 1.0),)
        engine_db.query("UPDATE recordings SET user1 = 'case 78' WHERE ident = ?",
                        (updated,))
        engine_db.query("UPDATE recording_blackouts SET end_seconds = 0.6 WHERE ident = ?",
                        (replaced,))
        # LOCKED, as integrations set it with plain SQL, is not sealed.
        engine_db.query("UPDATE recordings SET locked = 1 WHERE ident = ?", (listened,))
        assert seals(store) == {updated: False, purged: True, replaced: False,
                                listened: True}
    finally:
        store.close()


def test_the_audit_trail_is_append_only_in_the_database_itself(
        engine_db: EngineDatabase) -> None:
    store = opened(engine_db)
    try:
        store.append_audit(AuditEntry(time=1.0, user_id=None, username="a", action="signin"))
    finally:
        store.close()
    for sql in ("UPDATE audit SET username = 'b'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="the audit trail is append-only"):
            engine_db.query(sql)
    assert engine_db.query("SELECT username FROM audit") == [("a",)]


def test_writers_in_two_stores_at_once_never_fork_the_chain(
        engine_db: EngineDatabase) -> None:
    stores = [opened(engine_db), opened(engine_db)]
    errors: list[BaseException] = []

    def append(store: SqliteStore, n: int) -> None:
        try:
            for i in range(15):
                store.append_audit(AuditEntry(time=time.time(), user_id=n, username=f"w{n}",
                                              action="search", detail=str(i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(stores[n % 2], n)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors
        trail = stores[0].audit_trail()
        head = read_head(stores[0].head_path)
    finally:
        for store in stores:
            store.close()
    assert [e.entry_id for e in trail.entries] == list(range(1, 61))
    assert head is not None
    assert check_chain(trail, [head], head_file_required=True) == []


def test_purging_the_oldest_entries_keeps_a_chain_that_checks(
        engine_db: EngineDatabase) -> None:
    store = opened(engine_db)
    try:
        for i, when in enumerate((10.0, 20.0, 30.0, 1000.0, 15.0)):
            store.append_audit(AuditEntry(time=when, user_id=None, username=f"u{i}",
                                          action="play"))
        # Entries before the first young one go; 15.0 stays, after a young one.
        assert store.purge_audit(100.0) == 3
        trail = store.audit_trail()
        assert [e.username for e in trail.entries] == ["u3", "u4"]
        assert trail.anchor is not None
        assert trail.anchor.entry_id == 3
        assert check_chain(trail, [], head_file_required=False) == []
        # The next entry follows the chain, not a number the database reuses.
        assert store.append_audit(AuditEntry(time=2000.0, user_id=None, username="u5",
                                             action="play")) == 6
    finally:
        store.close()
    with pytest.raises(Exception, match="the audit trail is append-only"):
        engine_db.query("DELETE FROM audit WHERE entry_id = 4")


def test_a_store_sealed_with_a_key_is_resealed_and_reports_it(
        engine_db: EngineDatabase) -> None:
    store = opened(engine_db)
    try:
        plain = recorded(store, "a.wav", 1000.0)
        key = SealKey(bytes(range(32)))
        assert store.reseal_with_key(key.secret) == 1
        (row,) = store.sealed_rows(key=key.secret)
        assert (row.ident, row.row_hash == row.seal) == (plain, True)
        assert not store.seal_state().keyed  # no keyed audit entry yet
    finally:
        store.close()
