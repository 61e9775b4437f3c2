"""The crash journal (recorder/recording/journal.py) and recovery from it
(recorder/recording/recovery.py), on real
files and a real SQLite store."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

import recorder.recording.journal as journal_module
from recorder.codecs import vox
from recorder.codecs.formats import open_writer
from recorder.recording.journal import Journal, read_journal
from recorder.recording.recovery import recover
from recorder.store.records import FinishedRecording, NewRecording, RecordingQuery
from recorder.store.sqlite import SqliteStore
from tests.helpers.smalldisk import small_disk

RATE = 8000


def _row(path: Path, device: str = "1001") -> NewRecording:
    return NewRecording(device_id=device, call_instance="1", channel=0, filename=str(path),
                        media_format="wav", sample_rate=RATE, start_time=1_700_000_000.0,
                        core_ident=1, meta={"ANI": "6145551212", "USER1": "zoë"},
                        global_id="000100000000001")


def _begin(journal: Journal, path: Path, record_id: int | None = None,
           device: str = "1001") -> int:
    return journal.begin(path=path, fmt="wav", sample_rate=RATE, channels=1,
                         row=_row(path, device), record_id=record_id)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    db = SqliteStore(tmp_path / "db.sqlite3")
    db.open()
    yield db
    db.close()


def _crashed_wav(path: Path, seconds: float, synced: float) -> np.ndarray:
    """A WAV as a killed writer leaves it: ``seconds`` of audio on disk, the header saying
    ``synced`` seconds, half a frame at the end."""
    audio = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)).astype(
        np.int16)
    with path.open("wb") as f:
        writer = open_writer("wav", f, RATE, 1)
        writer.write(audio[:int(synced * RATE)])
        writer.sync()
        f.write(audio[int(synced * RATE):].tobytes() + b"\x01")
        f.flush()
    return audio


def test_entries_survive_a_reopen_until_ended(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.open().open == {}
    a = _begin(journal, tmp_path / "a.wav", 7)
    b = _begin(journal, tmp_path / "b.wav", None, "1002")
    journal.end(a)
    journal.end(a)  # twice is harmless
    journal.close()  # as a crash would leave it: b never ended

    left = read_journal(tmp_path / journal_module.JOURNAL_NAME)
    assert list(left.open) == [b]
    entry = left.open[b]
    assert (entry.path, entry.record_id, entry.row.device_id) == (
        str(tmp_path / "b.wav"), None, "1002")
    assert entry.row.meta == {"ANI": "6145551212", "USER1": "zoë"}
    assert entry.row == _row(tmp_path / "b.wav", "1002")

    again = Journal(tmp_path)
    assert list(again.open().open) == [b]
    c = _begin(again, tmp_path / "c.wav")
    assert c > b  # keys stay unique across the restart


def test_a_line_cut_short_by_the_crash_is_ignored(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    a = _begin(journal, tmp_path / "a.wav", 1)
    journal.close()
    with (tmp_path / journal_module.JOURNAL_NAME).open("ab") as f:
        f.write(b'{"op":"open","key":2,"path":"/x.w')  # the write the kill interrupted
    assert list(read_journal(tmp_path / journal_module.JOURNAL_NAME).open) == [a]


def test_begin_returns_only_once_the_entry_is_on_disk(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    journal = Journal(tmp_path)
    journal.open()
    synced_sizes: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        real(fd)
        synced_sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    _begin(journal, tmp_path / "a.wav", 1)
    # The entry's line was in the file when it was synced, before begin returned.
    assert synced_sizes == [(tmp_path / journal_module.JOURNAL_NAME).stat().st_size]


def test_concurrent_starts_share_fsyncs(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.open()
    barrier = threading.Barrier(8)

    def starts(n: int) -> None:
        barrier.wait()
        for i in range(50):
            _begin(journal, tmp_path / f"{n}-{i}.wav", n * 100 + i)

    threads = [threading.Thread(target=starts, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert journal.open_count == 400
    assert 1 <= journal.syncs <= 400
    assert len(read_journal(journal.path).open) == 400


def test_the_file_is_compacted_to_the_open_entries(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(journal_module, "COMPACT_BYTES", 4096)
    journal = Journal(tmp_path)
    journal.open()
    kept = _begin(journal, tmp_path / "long-call.wav", 1)
    for i in range(200):
        journal.end(_begin(journal, tmp_path / f"{i}.wav", i + 2))
    assert journal.path.stat().st_size < 4096 + 1024  # not 200 entries' worth
    assert list(read_journal(journal.path).open) == [kept]
    later = _begin(journal, tmp_path / "later.wav", 500)  # appends to the new file
    journal.close()
    assert list(read_journal(journal.path).open) == [kept, later]


def test_recovery_completes_a_recording_whose_row_never_reached_the_database(
        tmp_path: Path, store: SqliteStore) -> None:
    path = tmp_path / "lost-row.wav"
    audio = _crashed_wav(path, 3.0, 2.0)
    journal = Journal(tmp_path)
    journal.open()
    _begin(journal, path, None)  # the insert had failed; then the process died
    journal.close()

    journal = Journal(tmp_path)
    done = recover(store, journal, journal.open())
    (recovered,) = done
    assert recovered.result == "completed"
    assert recovered.record_id is not None
    row = store.get_recording(recovered.record_id)
    assert row is not None
    assert (row.status, row.stop_reason, row.device_id) == ("complete", "recovered", "1001")
    assert row.meta["USER1"] == "zoë"
    assert row.duration == pytest.approx(3.0)
    assert row.stop_time == pytest.approx(row.start_time + 3.0)
    # The file plays every whole frame that reached the disk.
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == RATE
    np.testing.assert_array_equal(data, audio)
    assert row.audio_size == path.stat().st_size
    # The event the service holds for subscribers.
    assert recovered.event is not None
    fields = dict(recovered.event.data)
    assert (recovered.event.event_type, fields["ERRORREASON"], fields["RECORDID"],
            fields["ANI"]) == ("RECORDINGSTOPPED", "RECOVERED", str(row.ident), "6145551212")
    # Nothing is left to recover, and a second pass changes nothing.
    journal.close()
    again = Journal(tmp_path)
    assert recover(store, again, again.open()) == []
    assert len(store.list_recordings(RecordingQuery(limit=100))) == 1


def test_an_entry_whose_row_is_already_complete_is_left_alone(
        tmp_path: Path, store: SqliteStore) -> None:
    path = tmp_path / "done.wav"
    _crashed_wav(path, 1.0, 1.0)
    ident = store.insert_recording(_row(path))
    store.finish_recording(ident, FinishedRecording(
        stop_time=1_700_000_001.0, duration=1.0, audio_size=8044, audio_hash="x",
        stop_reason="callstop"))
    journal = Journal(tmp_path)
    journal.open()
    _begin(journal, path, ident)  # its end line was lost with the power
    journal.close()

    journal = Journal(tmp_path)
    assert recover(store, journal, journal.open()) == []
    row = store.get_recording(ident)
    assert row is not None
    assert row.stop_reason == "callstop"  # not overwritten
    assert not read_journal(journal.path).open


def test_an_entry_stays_while_the_store_refuses(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    _crashed_wav(path, 1.0, 0.5)
    journal = Journal(tmp_path)
    journal.open()
    key = _begin(journal, path, None)
    journal.close()
    closed = SqliteStore(tmp_path / "db.sqlite3")  # never opened: every call fails
    journal = Journal(tmp_path)
    (failed,) = recover(closed, journal, journal.open())
    assert failed.result == "failed"
    journal.close()
    assert list(read_journal(journal.path).open) == [key]


# --- the format is known, never guessed ------------------------------------------------------


def _vox_like_mp3(path: Path, seconds: float) -> bytes:
    """A VOX file (headerless ADPCM) whose first bytes are ``FF E3``, an MPEG sync word: about
    one VOX recording in fifty starts so, and guessing from the bytes calls it MP3."""
    audio = (8000 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)).astype(
        np.int16)
    data = b"\xff\xe3" + vox.encode(audio)[2:]
    path.write_bytes(data)
    return data


def test_a_vox_recording_that_starts_like_mp3_is_recovered_as_vox(
        tmp_path: Path, store: SqliteStore) -> None:
    path = tmp_path / "call.vox"
    data = _vox_like_mp3(path, 3.0)
    journal = Journal(tmp_path)
    journal.open()
    journal.begin(path=path, fmt="vox", sample_rate=RATE, channels=1,
                  row=_row(path), record_id=None)
    journal.close()

    journal = Journal(tmp_path)
    (recovered,) = recover(store, journal, journal.open())
    assert recovered.result == "completed"
    assert recovered.record_id is not None
    row = store.get_recording(recovered.record_id)
    assert row is not None
    assert row.duration == pytest.approx(2 * len(data) / RATE)
    assert (row.audio_size, row.audio_hash) == (len(data), _sha256(data))
    assert path.read_bytes() == data  # nothing "repaired" away


def test_a_vox_row_without_a_journal_entry_goes_by_its_extension_not_its_bytes(
        tmp_path: Path, store: SqliteStore) -> None:
    path = tmp_path / "old.vox"
    data = _vox_like_mp3(path, 2.0)
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="1", channel=0, filename=str(path), media_format="vox",
        sample_rate=RATE, start_time=1_700_000_000.0, core_ident=1, meta={}))
    journal = Journal(tmp_path)
    (recovered,) = recover(store, journal, journal.open())
    assert (recovered.result, recovered.record_id) == ("completed", ident)
    row = store.get_recording(ident)
    assert row is not None
    assert row.duration == pytest.approx(2 * len(data) / RATE)
    assert row.audio_hash == _sha256(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_row_whose_insert_died_in_memory_is_stored_under_its_recordid(
        tmp_path: Path, store: SqliteStore) -> None:
    """The spool handed out RECORDID 7 but held the insert in memory (a full disk), and the
    process stopped before there was room: recovery stores the row under 7, complete."""
    path = tmp_path / "held.wav"
    _crashed_wav(path, 2.0, 1.0)
    journal = Journal(tmp_path)
    journal.open()
    _begin(journal, path, 7)
    journal.close()

    journal = Journal(tmp_path)
    (recovered,) = recover(store, journal, journal.open())
    assert (recovered.result, recovered.record_id) == ("completed", 7)
    row = store.get_recording(7)
    assert row is not None
    assert (row.status, row.stop_reason, row.device_id) == ("complete", "recovered", "1001")
    assert row.duration == pytest.approx(2.0)
    assert not read_journal(journal.path).open


# --- a full disk under the journal -----------------------------------------------------------


def test_a_line_the_full_disk_cut_short_is_taken_back(tmp_path: Path) -> None:
    """A begin the disk refuses midway leaves nothing behind: the next entry, once there is
    room, is not glued to half a line (and lost with it). A rewrite that does not fit leaves
    the old file whole."""
    with small_disk(tmp_path / "fs", 1 << 20) as disk:
        if disk.mode != "tmpfs":
            pytest.skip("needs the right to mount a tmpfs")
        journal = Journal(disk.root)
        journal.open()
        begun = [_begin(journal, disk.root / "a.wav", 1)]
        disk.fill_up()  # the journal's last page still has room for a line or part of one
        failure = None
        for n in range(20):
            try:
                begun.append(_begin(journal, disk.root / f"full-{n}.wav", 100 + n))
            except OSError as exc:
                failure = exc
                break
        assert failure is not None
        before = journal.path.read_bytes()
        assert before.endswith(b"\n")  # whole lines only
        assert list(read_journal(journal.path).open) == begun
        rewrite = None
        try:
            journal.rewrite()
        except OSError as exc:
            rewrite = exc
        assert rewrite is not None
        assert journal.path.read_bytes() == before
        assert not list(disk.root.glob("*.new"))
        disk.free_up()
        begun.append(_begin(journal, disk.root / "b.wav", 2))
        journal.close()
        entries = read_journal(journal.path).open
        assert list(entries) == begun
        assert entries[begun[-1]].path == str(disk.root / "b.wav")
