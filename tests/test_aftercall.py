"""After-call encoding at start-up: every crash window ends with one playable file and its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from recorder.recording.aftercall import AfterCallEncoder
from recorder.recording.journal import Journal
from recorder.recording.recovery import complete_interrupted
from recorder.store.recordings import RecordingStore
from recorder.store.records import FinishedRecording, NewRecording
from recorder.store.sqlite import SqliteStore


def speech(seconds: float = 1.0) -> np.ndarray:
    t = np.arange(round(seconds * 8000)) / 8000
    return np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def add_row(store: RecordingStore, filename: Path, media_format: str, complete: bool = True) -> int:
    ident = store.insert_recording(NewRecording(
        device_id="1001", call_instance="", channel=1, filename=str(filename),
        media_format=media_format, sample_rate=8000, start_time=1_700_000_000.0,
        core_ident=1))
    if complete:
        store.finish_recording(ident, FinishedRecording(
            stop_time=1_700_000_001.0, duration=1.0, audio_size=1, audio_hash="x",
            stop_reason="callstop", lost_samples=0))
    return ident


def test_start_up_finishes_every_crash_window(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"
    rec.mkdir()
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        # a: recorded, never converted.  b: converted (mp3 there), row not yet pointed at it.
        # c: converted and row updated, WAV not yet removed.  d: a half-written .part.
        for name in "abcd":
            soundfile.write(rec / f"{name}.wav", speech(), 8000, subtype="PCM_16")
        (rec / "b.mp3").write_bytes(b"half-baked")
        (rec / "c.mp3").write_bytes(b"already converted")
        (rec / "d.mp3.part").write_bytes(b"partial")
        a = add_row(store, rec / "a.wav", "mp3")
        b = add_row(store, rec / "b.wav", "mp3")
        c = add_row(store, rec / "c.mp3", "mp3")
        d = add_row(store, rec / "d.wav", "mp3")
        plain = add_row(store, rec / "plain.wav", "wav")  # stored as WAV: left alone
        soundfile.write(rec / "plain.wav", speech(), 8000, subtype="PCM_16")

        encoder = AfterCallEncoder(store, "mp3", rec, workers=1)
        encoder.start()
        assert encoder.wait_idle(30)
        encoder.stop()
        assert encoder.join(10)

        for ident in (a, b, d):
            row = store.get_recording(ident)
            assert row is not None
            assert row.filename.endswith(".mp3")
            assert row.media_format == "mp3"
            assert row.audio_size == Path(row.filename).stat().st_size
            data, rate = soundfile.read(row.filename, dtype="int16")
            assert rate == 8000
            assert abs(len(data) - 8000) < 10
        row_c = store.get_recording(c)
        assert row_c is not None
        assert Path(row_c.filename).read_bytes() == b"already converted"  # not redone
        assert sorted(p.name for p in rec.iterdir()) == [
            "a.mp3", "b.mp3", "c.mp3", "d.mp3", "plain.wav"]
        plain_row = store.get_recording(plain)
        assert plain_row is not None
        assert plain_row.filename.endswith("plain.wav")
    finally:
        store.close()


def test_an_interrupted_wav_gets_its_header_repaired_and_its_row_completed(
        tmp_path: Path) -> None:
    path = tmp_path / "cut.wav"
    soundfile.write(path, speech(2.0), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[4:8] = (36 + 8000).to_bytes(4, "little")  # the header last synced at 0.5 s...
    raw[40:44] = (8000).to_bytes(4, "little")
    path.write_bytes(bytes(raw) + b"\x01")  # ...and half a frame written as the power went
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        ident = add_row(store, path, "wav", complete=False)
        (row,) = complete_interrupted(store, Journal(tmp_path))
        assert row.record_id == ident
        done = store.get_recording(ident)
        assert done is not None
        assert (done.status, done.stop_reason) == ("complete", "recovered")
        assert done.duration == 2.0
        data, _ = soundfile.read(path, dtype="int16")
        np.testing.assert_array_equal(data, speech(2.0))
        assert complete_interrupted(store, Journal(tmp_path)) == []
    finally:
        store.close()
