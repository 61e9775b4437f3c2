"""A complete recording keeps its blackouts with its row (schema 9): as the completion worker
writes it, through the outage spool, and through recovery after a crash (the crash journal
notes each change), each range where the file is silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recorder.codecs.formats import open_writer
from recorder.recording.blackouts import file_seconds, in_file
from recorder.recording.journal import Journal, read_journal
from recorder.recording.recovery import recover
from recorder.rules.blackout import OPEN
from recorder.store.records import FinishedRecording, NewRecording
from recorder.store.sqlite import SqliteStore
from tests.test_spool import locked, open_spooling

RATE = 8000


def row(path: Path) -> NewRecording:
    return NewRecording(device_id="1001", call_instance="1", channel=0, filename=str(path),
                        media_format="wav", sample_rate=RATE, start_time=1_700_000_000.0,
                        core_ident=1, meta={})


def finished(seconds: float, blackouts: tuple[tuple[float, float], ...]) -> FinishedRecording:
    return FinishedRecording(stop_time=1_700_000_000.0 + seconds, duration=seconds,
                             audio_size=int(seconds * 2 * RATE) + 44, audio_hash="ab" * 32,
                             stop_reason="callstop", blackouts=blackouts)


def test_ranges_become_file_seconds_clipped_to_the_file_and_a_running_one_ends_with_it(
        ) -> None:
    # A call's ranges (absolute positions) for a file that begins at 16000, 5 s long.
    ranges = [(0, 8000), (12000, 24000), (40000, 48000), (50000, OPEN)]
    frames = in_file(ranges, 16000)
    assert frames == [(0, 8000), (24000, 32000), (34000, None)]
    assert file_seconds(frames, 5 * RATE, RATE) == ((0.0, 1.0), (3.0, 4.0), (4.25, 5.0))
    assert file_seconds([(48000, None)], 5 * RATE, RATE) == ()  # after the file's end


def test_the_store_keeps_a_recordings_blackouts_and_deleting_it_removes_them(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        ident = store.insert_recording(row(tmp_path / "a.wav"))
        other = store.insert_recording(row(tmp_path / "b.wav"))
        store.finish_recording(ident, finished(5.0, ((0.5, 1.25), (3.0, 5.0))))
        store.finish_recording(other, finished(2.0, ()))
        assert store.recording_blackouts(ident) == ((0.5, 1.25), (3.0, 5.0))
        assert store.recording_blackouts(other) == ()
        # Completed again (a replay, recovery): each range once.
        store.finish_recording(ident, finished(5.0, ((0.5, 1.25), (3.0, 5.0))))
        assert store.recording_blackouts(ident) == ((0.5, 1.25), (3.0, 5.0))
        assert store.delete_recording(ident)
        assert store.recording_blackouts(ident) == ()
    finally:
        store.close()


def test_a_completion_spooled_while_the_database_is_locked_keeps_its_blackouts(
        tmp_path: Path) -> None:
    database = tmp_path / "recorder.sqlite3"
    store = open_spooling(tmp_path, busy=0.3)
    try:
        ident = store.insert_recording(row(tmp_path / "a.wav"))
        with locked(database) as lock:
            store.finish_recording(ident, finished(4.0, ((1.0, 2.5),)))
            assert store.spooled == 1
            lock.release()
            assert store.replay()
        assert store.recording_blackouts(ident) == ((1.0, 2.5),)
        assert store.get_recording(ident) is not None
    finally:
        store.close()


def test_recovery_keeps_the_blackouts_the_journal_noted_before_the_crash(
        tmp_path: Path) -> None:
    path = tmp_path / "crashed.wav"
    audio = np.full(3 * RATE, 1000, dtype=np.int16)
    audio[RATE:2 * RATE] = 0  # silenced as the session wrote it
    audio[int(2.5 * RATE):] = 0  # a blackout still running when the process died
    with path.open("wb") as f:
        writer = open_writer("wav", f, RATE, 1)
        writer.write(audio)
        writer.sync()
    journal = Journal(tmp_path)
    journal.open()
    key = journal.begin(path=path, fmt="wav", sample_rate=RATE, channels=1, row=row(path),
                        record_id=None)
    journal.note_blackouts(key, [(RATE, 2 * RATE)])
    journal.note_blackouts(key, [(RATE, 2 * RATE), (int(2.5 * RATE), None)])
    journal.close()  # killed: no end line
    assert read_journal(journal.path).open[key].blackouts == (
        (RATE, 2 * RATE), (int(2.5 * RATE), None))

    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        again = Journal(tmp_path)
        (recovered,) = recover(store, again, again.open())
        assert recovered.record_id is not None
        marks = store.recording_blackouts(recovered.record_id)
        assert marks == ((1.0, 2.0), (2.5, 3.0))
        for a, b in marks:  # where the marks are, the file is silence
            assert not audio[round(a * RATE):round(b * RATE)].any()
        again.close()
    finally:
        store.close()
