"""Encrypted recordings for real (storage.encrypt, docs/encryption.md): a recorderd records tone
lines encrypted; what a user gets back (WebAPI export, CAV, ``recorderctl decrypt``) is the
call's audio, a blackout reaching back is silence in it, the file on disk holds no audio in
clear, and after kill -9 the next start recovers every whole chunk as playable audio."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.crypt.access import open_plain
from recorder.crypt.keys import create_master_key, load_master_key
from recorder.crypt.sealed import DEFAULT_CHUNK, HEADER_BYTES, OVERHEAD
from recorder.recording.journal import JOURNAL_NAME, read_journal
from recorder.recording.session import SYNC_SECONDS
from tests.helpers.api import expect
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import dominant_hz, tone_boards
from tests.helpers.recorders import RecorderProcess, Running, base_config, write_toml
from tests.helpers.waiting import wait_for

RATE = 8000
WAV_HEADER = 44


def _start(tmp_path: Path, processes: list[RecorderProcess]) -> tuple[RecorderProcess, Path]:
    key = tmp_path / "master.key"
    if not key.exists():
        create_master_key(key)
    doc = base_config(tmp_path, boards=tone_boards(tmp_path))
    doc["storage"].update({"encrypt": True, "key_file": str(key)})
    config = write_toml(tmp_path / "recorder.toml",
                        to_toml(config_from_dict(doc, base_dir=tmp_path)))
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    return proc, config


def _decrypted(path: Path, config: Path, out: Path) -> npt.NDArray[np.int16]:
    done = recorderctl("decrypt", path, "-o", out, "--config", config)
    assert done.returncode == 0, done.stderr
    samples, rate = soundfile.read(out, dtype="int16")
    assert rate == RATE
    return np.asarray(samples)


def _zero_runs(samples: npt.NDArray[np.int16]) -> int:
    """The longest run of exact zeros."""
    best = run = 0
    for quiet in samples == 0:
        run = run + 1 if quiet else 0
        best = max(best, run)
    return best


@pytest.mark.slow
def test_an_encrypted_recording_plays_exports_and_keeps_its_blackout(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, config = _start(tmp_path, processes)
    running = proc.wait_ready()
    assert "recordings encrypted with master key" in proc.log
    time.sleep(0.8)  # the pre-roll captured
    expect(running.request("CALLSTART", 1, DEVICEID="2001", USER2="10121968"), 20)
    running.wait_recorded("2001", 3.0)
    # A blackout reaching back 1 s over audio already sealed in the file.
    expect(running.request("BLACKOUTSTART", 2, DEVICEID="2001", TIMEOFFSET=-1), 20)
    expect(running.request("BLACKOUTSTOP", 3, DEVICEID="2001"), 20)
    running.wait_recorded("2001", running.seconds_recorded("2001") + 1.0)
    expect(running.request("CALLSTOP", 4, DEVICEID="2001"), 20)
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    ident, filename, duration, audio_hash, audio_size = wait_for(lambda: db.execute(
        "SELECT ident, filename, duration, audio_hash, audio_size FROM recordings "
        "WHERE status = 'complete'").fetchone(), timeout=15, what="the completed row")
    db.close()
    path = Path(filename)

    # On disk: ciphertext and its wrapped key; no player reads it, and the row's hash is of
    # the stored (encrypted) bytes.
    raw = path.read_bytes()
    assert raw[:8] == b"RCRDSEAL"
    assert Path(filename + ".key").is_file()
    assert subprocess.run(["sox", str(path), "-n", "stat"], capture_output=True,
                          check=False).returncode != 0
    assert (audio_size, audio_hash) == (len(raw), hashlib.sha256(raw).hexdigest())

    # What the engineer with the key gets: the whole call, the tone, the blackout silent.
    samples = _decrypted(path, config, tmp_path / "plain.wav")
    assert len(samples) / RATE == pytest.approx(duration, abs=0.01)
    assert dominant_hz(samples[:RATE], RATE) == pytest.approx(440, abs=5)
    assert 0.8 * RATE <= _zero_runs(samples) <= 1.3 * RATE
    # The plain bytes appear nowhere in the stored file.
    plain = (tmp_path / "plain.wav").read_bytes()
    assert plain[WAV_HEADER + 4000:WAV_HEADER + 4064] not in raw

    # The WebAPI's EXPORT as stored (WAV), with Range, and as MP3: the audio, not ciphertext.
    base = f"http://127.0.0.1:{running.web_port}/webAPI.aspx?type=export&requestid=9" \
           f"&uniquefield=ident&uniqueid={ident}"
    with urllib.request.urlopen(base + "&media_format=wav", timeout=30) as answer:
        exported = answer.read()
    assert exported == plain
    ranged = urllib.request.Request(base + "&media_format=wav", headers={"Range": "bytes=100-"})
    with urllib.request.urlopen(ranged, timeout=30) as answer:
        assert (answer.status, answer.read()) == (206, plain[100:])
    with urllib.request.urlopen(base + "&media_format=mp3", timeout=30) as answer:
        mp3 = tmp_path / "export.mp3"
        mp3.write_bytes(answer.read())
    decoded, rate = soundfile.read(mp3, dtype="int16")
    assert dominant_hz(np.asarray(decoded[:rate]), rate) == pytest.approx(440, abs=5)
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log

    # The row keeps the wrapped key too; rotation re-wraps both, never touching the file.
    assert _row_key(tmp_path, ident) == Path(filename + ".key").read_text()
    old_id = recorderctl("key", "id", "--config", config).stdout.strip()
    rotated = recorderctl("key", "rotate", "--config", config)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "re-wrapped 1 file key(s) beside the recordings and 1 in their rows" in rotated.stdout
    new_id = recorderctl("key", "id", "--config", config).stdout.strip()
    assert new_id != old_id
    assert f'"key_id": "{new_id}"' in _row_key(tmp_path, ident)
    assert _row_key(tmp_path, ident) == Path(filename + ".key").read_text()
    assert path.read_bytes() == raw
    again = _decrypted(path, config, tmp_path / "after-rotation.wav")
    assert np.array_equal(again, samples)


def _row_key(tmp_path: Path, ident: int) -> str:
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    try:
        return str(db.execute("SELECT file_key FROM recordings WHERE ident = ?",
                              (ident,)).fetchone()[0])
    finally:
        db.close()


@pytest.mark.slow
def test_kill_9_during_an_encrypted_recording_recovers_every_whole_chunk(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, config = _start(tmp_path, processes)
    running = proc.wait_ready()
    time.sleep(0.8)
    expect(running.request("CALLSTART", 1, DEVICEID="2001"), 20)
    recordings = tmp_path / "data" / "recordings"
    # Three whole chunks of audio on disk (about 3 s at 8 kHz PCM), and the tail after them.
    need = HEADER_BYTES + (WAV_HEADER + OVERHEAD) + 3 * (DEFAULT_CHUNK + OVERHEAD) + OVERHEAD

    def file_with_three_chunks() -> Path | None:
        found = sorted(recordings.rglob("2001-*.wav"))
        return found[0] if found and found[0].stat().st_size >= need else None

    path = wait_for(file_with_three_chunks, timeout=30, what="three chunks on disk")
    held = path.stat().st_size
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    whole_chunks = (held - HEADER_BYTES - (WAV_HEADER + OVERHEAD)) // (DEFAULT_CHUNK + OVERHEAD)
    assert read_journal(tmp_path / "data" / JOURNAL_NAME).open

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert "interrupted by a crash" in again.log
    assert f"{path}: encrypted, " in again.log  # repaired as an encrypted file
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    status, reason, duration, audio_hash = db.execute(
        "SELECT status, stop_reason, duration, audio_hash FROM recordings").fetchone()
    db.close()
    assert (status, reason) == ("complete", "recovered")
    samples = _decrypted(path, config, tmp_path / "recovered.wav")
    # Every whole chunk at the kill (and the tail sealed before it, unless torn) plays.
    assert len(samples) * 2 >= whole_chunks * DEFAULT_CHUNK
    assert len(samples) / RATE == pytest.approx(duration, abs=0.01)
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == audio_hash
    assert again.stop() == 0, again.log
    assert "Traceback" not in again.log, again.log


@pytest.mark.slow
def test_an_encrypted_recordings_audio_is_sealed_on_disk_at_least_every_half_second(
        tmp_path: Path, start_recorder: Callable[..., Running],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/encryption.md: the tail is sealed at least every 0.5 s, so a kill -9 costs an
    encrypted recording no more than a plain one (tests/test_disk_full.py's bound): after
    every pump, what the file on disk decrypts to (as recovery reads it: every chunk that
    authenticates) lags the audio the writer took by less than half a second."""
    key = tmp_path / "master.key"
    create_master_key(key)
    keys = [load_master_key(key)]
    running = start_recorder(storage={"data_dir": str(tmp_path / "data"), "encrypt": True,
                                      "key_file": str(key)})
    writer = running.recorder.writer if running.recorder is not None else None
    assert writer is not None
    expect(running.request("CALLSTART", 1, DEVICEID="1001"), 20)
    session = wait_for(lambda: next(iter(writer._sessions), None), what="the call's session")
    assert session is not None
    lags: list[int] = []
    pump = session.pump

    def pump_and_look(sync: bool = True) -> None:
        pump(sync)
        with session.open_and_held() as still_open:
            if not still_open:
                return
            assert session.path.read_bytes()[:8] == b"RCRDSEAL"
            with open_plain(session.path, keys, strict=False) as plain:
                on_disk = (len(plain.read()) - WAV_HEADER) // 2
            lags.append(session.writer.frames - on_disk)

    monkeypatch.setattr(session, "pump", pump_and_look)
    wait_for(lambda: session.writer.frames >= 3 * RATE, 30,
             what=lambda: f"3 s of the call written ({session.writer.frames} frames)")
    expect(running.request("CALLSTOP", 2, DEVICEID="1001"), 20)
    assert len(lags) >= 2, lags
    assert max(lags) < SYNC_SECONDS * RATE, max(lags)
    assert min(lags) >= 0
