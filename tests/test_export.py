"""Export converts whatever is stored into whatever is asked, checked by independent tools."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.archive.cav import CavPasswordError, extract_audio, read_cav
from recorder.archive.export import export_recording
from recorder.errors import CodecError
from recorder.store.records import FinishedRecording, NewRecording, RecordingRow
from recorder.store.sqlite import SqliteStore
from tests.helpers.audio import sox_info


def speechlike(seconds: float = 1.5) -> np.ndarray:
    t = np.arange(round(seconds * 8000)) / 8000
    voice = np.sin(2 * np.pi * 220 * t) + 0.5 * np.sin(2 * np.pi * 660 * t)
    return np.rint(6000 * voice * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.int16)


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    n = min(len(reference), len(test))
    ref, got = reference[:n].astype(float), test[:n].astype(float)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - got) ** 2), 1e-9)))


def stored_row(tmp_path: Path, fmt: str = "wav") -> RecordingRow:
    source = tmp_path / "call.wav"
    soundfile.write(source, speechlike(), 8000, subtype="PCM_16")
    store = SqliteStore(tmp_path / "db.sqlite3")
    store.open()
    try:
        ident = store.insert_recording(NewRecording(
            device_id="1001", call_instance="7", channel=1, filename=str(source),
            media_format=fmt, sample_rate=8000, start_time=1_700_000_000.0, core_ident=1,
            meta={"ANI": "6145551212", "USER1": "Gold & <Level>"}))
        store.finish_recording(ident, FinishedRecording(
            stop_time=1_700_000_001.5, duration=1.5, audio_size=source.stat().st_size,
            audio_hash="", stop_reason="callstop", lost_samples=0))
        row = store.get_recording(ident)
        assert row is not None
        return row
    finally:
        store.close()


@pytest.mark.parametrize(("fmt", "min_snr"), [("wav", 200.0), ("wav-ulaw", 30.0),
                                               ("wav-alaw", 30.0), ("vox", 15.0)])
def test_export_to_each_format_reads_back_in_sox(tmp_path: Path, fmt: str,
                                                 min_snr: float) -> None:
    row = stored_row(tmp_path)
    out = export_recording(row, fmt, tmp_path / f"out.{fmt}")
    if fmt == "vox":
        wav = tmp_path / "vox.wav"
        subprocess.run(["sox", "-t", "vox", "-r", "8000", str(out), str(wav)], check=True,
                       timeout=30)
        out = wav
    assert sox_info(out)["-r"] == "8000"
    back, _ = soundfile.read(out, dtype="int16")
    assert len(back) == 12000
    assert snr_db(speechlike(), back) > min_snr


def test_export_to_mp3(tmp_path: Path) -> None:
    out = export_recording(stored_row(tmp_path), "mp3", tmp_path / "out.mp3")
    info = soundfile.info(out)
    assert (info.samplerate, info.frames) == (8000, 12000)


def test_export_from_a_stored_mp3_to_wav(tmp_path: Path) -> None:
    row = stored_row(tmp_path)
    mp3 = export_recording(row, "mp3", tmp_path / "stored.mp3")
    stored = replace(row, filename=str(mp3), media_format="mp3")
    out = export_recording(stored, "wav", tmp_path / "again.wav")
    back, rate = soundfile.read(out, dtype="int16")
    assert (rate, len(back)) == (8000, 12000)


@pytest.mark.slow
def test_cav_round_trips_the_audio_and_metadata_and_refuses_a_wrong_password(
        tmp_path: Path) -> None:
    row = stored_row(tmp_path)
    out = export_recording(row, "cav", tmp_path / "call.cav", password="s3cret")
    info = read_cav(out, "s3cret")
    assert info.encrypted
    assert info.metadata["ANI"] == "6145551212"
    assert info.metadata["USER1"] == "Gold & <Level>"
    assert info.metadata["RECORDID"] == str(row.ident)
    _, audio = extract_audio(out, tmp_path / "back.wav", "s3cret")
    assert audio.read_bytes() == Path(row.filename).read_bytes()
    with pytest.raises(CavPasswordError):
        read_cav(out, "wrong")


def test_an_unknown_format_or_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    row = stored_row(tmp_path)
    with pytest.raises(CodecError, match=r"cannot export as 'ogg' \(formats: wav, "):
        export_recording(row, "ogg", tmp_path / "x.ogg")
    Path(row.filename).unlink()
    with pytest.raises(CodecError, match="has no file"):
        export_recording(row, "wav", tmp_path / "x.wav")
    assert not list(tmp_path.glob("x.*"))


@pytest.mark.parametrize("fmt", ["wav", "mp3", "vox"])
def test_a_recording_already_in_the_asked_format_is_sent_as_stored(tmp_path: Path,
                                                                   fmt: str) -> None:
    row = stored_row(tmp_path)
    stored = export_recording(row, fmt, tmp_path / f"stored.{fmt}")
    as_stored = replace(row, filename=str(stored), media_format=fmt)
    out = export_recording(as_stored, fmt, tmp_path / f"again.{fmt}")
    # The same bytes: no decode and re-encode (a lossy format would lose a generation).
    assert out.read_bytes() == stored.read_bytes()
    out.unlink()
    assert stored.exists()  # the export was a link or a copy; removing it leaves the recording
