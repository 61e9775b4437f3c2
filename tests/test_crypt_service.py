"""Encrypted recordings in a real recorderd (docs/encryption.md): MP3 recorded live and VOX
encoded after the call are encrypted from their first byte, nothing in clear ever reaches the
data directory, a kill -9 is recovered; ``recorderctl key rotate`` under the running service
changes the key new files get while the old files stay readable; ``recorderctl verify``
authenticates every chunk, and a lost key file comes back from the row."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.crypt.keys import create_master_key
from tests.helpers.api import expect
from tests.helpers.audio import ffmpeg_decode, run
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import dominant_hz, tone_boards
from tests.helpers.recorders import RecorderProcess, Running, base_config, write_toml
from tests.helpers.waiting import wait_for

# Each test starts recorderd and runs recorderctl a few times: a minute or two apiece when other
# work shares the machine's two cores.
pytestmark = [pytest.mark.slow, pytest.mark.process, pytest.mark.timeout(360)]

RATE = 8000


def _start(tmp_path: Path, processes: list[RecorderProcess], **storage: Any
           ) -> tuple[RecorderProcess, Running, Path]:
    key = tmp_path / "master.key"
    if not key.exists():
        create_master_key(key)
    doc = base_config(tmp_path, boards=tone_boards(tmp_path))
    doc["storage"].update({"encrypt": True, "key_file": str(key), **storage})
    config = write_toml(tmp_path / "recorder.toml",
                        to_toml(config_from_dict(doc, base_dir=tmp_path)))
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    return proc, proc.wait_ready(), config


def _rows(tmp_path: Path, count: int) -> list[tuple[Any, ...]]:
    """The complete rows, once there are ``count``: (ident, filename, file_key, audio_hash)."""
    def complete() -> list[tuple[Any, ...]] | None:
        db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
        try:
            rows = db.execute("SELECT ident, filename, file_key, audio_hash FROM recordings "
                              "WHERE status = 'complete' ORDER BY ident").fetchall()
        finally:
            db.close()
        return rows if len(rows) >= count else None

    found: list[tuple[Any, ...]] = wait_for(complete, timeout=60, what=f"{count} rows")
    return found


def _call(running: Running, device: str, seconds: float) -> None:
    expect(running.request("CALLSTART", 1, DEVICEID=device), 20)
    running.wait_recorded(device, seconds)
    expect(running.request("CALLSTOP", 2, DEVICEID=device), 20)


def _heard(path: Path, config: Path, tmp_path: Path, fmt: str,
           *key: str) -> npt.NDArray[np.int16]:
    """``recorderctl decrypt``, then what ffmpeg (or sox, for VOX) plays of it."""
    out = tmp_path / f"{path.name}.plain.{fmt}"
    done = recorderctl("decrypt", path, "-o", out, "--config", config, *key)
    assert done.returncode == 0, done.stderr
    if fmt == "vox":
        wav = out.with_suffix(".wav")
        run("sox", "-t", "vox", "-r", str(RATE), out, "-b", "16", wav)
        out = wav
    return ffmpeg_decode(out)


def _nothing_in_clear(data: Path) -> None:
    """Every file that may hold audio (the recordings, the work area's exports and
    renditions) is encrypted; beside the recordings only their wrapped keys."""
    for path in [*(data / "recordings").rglob("*"), *(data / "tmp").rglob("*")]:
        if path.is_file() and path.suffix != ".key":
            assert path.read_bytes()[:8] == b"RCRDSEAL", path


def test_mp3_recorded_live_encrypted_exports_verifies_and_survives_kill_9(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, running, config = _start(tmp_path, processes, format="mp3")
    time.sleep(0.8)
    expect(running.request("CALLSTART", 1, DEVICEID="2001"), 20)
    running.wait_recorded("2001", 3.0)
    # A blackout reaching back 1 s over audio already in the file: the MP3 is re-encoded at
    # its close with the silence in it, encrypted under its own key.
    expect(running.request("BLACKOUTSTART", 2, DEVICEID="2001", TIMEOFFSET=-1), 20)
    expect(running.request("BLACKOUTSTOP", 3, DEVICEID="2001"), 20)
    running.wait_recorded("2001", running.seconds_recorded("2001") + 1.5)
    expect(running.request("CALLSTOP", 4, DEVICEID="2001"), 20)
    ((ident, filename, file_key, _),) = _rows(tmp_path, 1)
    path = Path(filename)
    assert path.suffix == ".mp3"
    assert path.read_bytes()[:8] == b"RCRDSEAL"
    assert file_key == Path(filename + ".key").read_text()
    assert not Path(filename + ".blackout.json").exists()  # silenced, not left pending
    samples = _heard(path, config, tmp_path, "mp3")
    assert len(samples) / RATE >= 4.0
    assert dominant_hz(samples[:RATE], RATE) == pytest.approx(440, abs=5)
    quiet = max((run for run in np.split(np.arange(len(samples)),
                                         np.flatnonzero(np.abs(samples) > 300) + 1)),
                key=len)
    assert 0.8 * RATE <= len(quiet) <= 1.4 * RATE  # the blacked-out second
    # The WebAPI's export as stored: what the engineer decrypts, never the ciphertext.
    base = f"http://127.0.0.1:{running.web_port}/webAPI.aspx?type=export&requestid=9" \
           f"&uniquefield=ident&uniqueid={ident}"
    with urllib.request.urlopen(base + "&media_format=mp3", timeout=30) as answer:
        assert answer.read() == (tmp_path / f"{path.name}.plain.mp3").read_bytes()
    _nothing_in_clear(tmp_path / "data")
    verified = recorderctl("verify", "--config", config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "1 as stored" in verified.stdout

    # kill -9 in the middle of a second call: the next start makes it whole and playable.
    expect(running.request("CALLSTART", 3, DEVICEID="2002"), 20)
    running.wait_recorded("2002", 3.0)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert "interrupted by a crash" in again.log
    rows = _rows(tmp_path, 2)
    crashed = Path(rows[1][1])
    samples = _heard(crashed, config, tmp_path, "mp3")
    assert len(samples) / RATE >= 2.0
    assert dominant_hz(samples, RATE) == pytest.approx(1000, abs=5)
    assert again.stop() == 0, again.log
    assert "Traceback" not in again.log, again.log


def test_vox_encoded_after_the_call_is_encrypted_and_nothing_is_ever_in_clear(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, running, config = _start(tmp_path, processes, format="vox", encode="after-call")
    time.sleep(0.8)
    _call(running, "2001", 3.0)

    def encoded() -> Path | None:
        found = list((tmp_path / "data" / "recordings").rglob("*.vox"))
        return found[0] if found and not list(found[0].parent.glob("*.wav")) else None

    path = wait_for(encoded, timeout=60, what="the VOX file, its WAV gone")
    ((_, filename, file_key, audio_hash),) = _rows(tmp_path, 1)
    wait_for(lambda: Path(_rows(tmp_path, 1)[0][1]).suffix == ".vox", timeout=30,
             what="the row pointed at the VOX file")
    ((_, filename, file_key, audio_hash),) = _rows(tmp_path, 1)
    assert Path(filename) == path
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".key"]
    assert file_key == Path(filename + ".key").read_text()
    import hashlib  # noqa: PLC0415

    assert hashlib.sha256(path.read_bytes()).hexdigest() == audio_hash
    samples = _heard(path, config, tmp_path, "vox")
    assert len(samples) / RATE >= 3.0
    assert dominant_hz(samples, RATE) == pytest.approx(440, abs=5)
    _nothing_in_clear(tmp_path / "data")
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


def _key_ids(tmp_path: Path) -> set[str]:
    """The master keys the recordings' wrapped keys name, beside the files and in the rows."""
    recordings = tmp_path / "data" / "recordings"
    beside = {json.loads(p.read_text())["key_id"] for p in recordings.rglob("*.key")}
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    try:
        rows = {json.loads(r[0])["key_id"] for r in db.execute(
            "SELECT file_key FROM recordings")}
    finally:
        db.close()
    return beside | rows


def test_key_rotation_under_a_running_recorderd(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    """The service goes on recording through the rotation: a call that started under the old
    key ends under the new one, new files get the new key, every file (old ones too) opens
    with the new key alone and through the service, and the retired key opens none."""
    proc, running, config = _start(tmp_path, processes)
    old_id = recorderctl("key", "id", "--config", config).stdout.strip()
    time.sleep(0.8)
    _call(running, "2001", 1.5)
    expect(running.request("CALLSTART", 3, DEVICEID="2002"), 20)  # across the rotation
    running.wait_recorded("2002", 1.0)
    rotated = recorderctl("key", "rotate", "--config", config)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new_id = recorderctl("key", "id", "--config", config).stdout.strip()
    assert new_id != old_id
    assert f"recorderd (pid {proc.proc.pid}) wraps new files by key {new_id}" in rotated.stdout
    assert f"new files wrapped by master key {new_id}" in proc.log
    status = json.loads((tmp_path / "data" / "keys-in-use.json").read_text())
    assert (status["sealing"], status["opening"]) == (new_id, [new_id])  # old key dropped
    running.wait_recorded("2002", running.seconds_recorded("2002") + 1.0)
    expect(running.request("CALLSTOP", 4, DEVICEID="2002"), 20)
    _call(running, "2001", 1.5)
    rows = _rows(tmp_path, 3)
    assert _key_ids(tmp_path) == {new_id}
    for ident, filename, _, _ in rows:
        samples = _heard(Path(filename), config, tmp_path, "wav")
        assert dominant_hz(samples, RATE) == pytest.approx(
            1000 if "2002" in filename else 440, abs=5)
        # Through the running service too: the old file, re-wrapped, plays.
        web = f"http://127.0.0.1:{running.web_port}/webAPI.aspx?type=export&requestid=5" \
              f"&uniquefield=ident&uniqueid={ident}&media_format=wav"
        with urllib.request.urlopen(web, timeout=30) as answer:
            assert answer.read() == (tmp_path / f"{Path(filename).name}.plain.wav").read_bytes()
    retired = tmp_path / f"master.key.retired-{old_id}"
    refused = recorderctl("decrypt", rows[0][1], "-o", tmp_path / "x.wav", "--key-file",
                          retired)
    assert refused.returncode == 1
    assert f"needs master key {new_id}" in refused.stderr
    expect(running.request("TEST", 9), 20)
    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log


def test_a_lost_key_file_is_reported_by_verify_and_restored_from_the_row(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, running, config = _start(tmp_path, processes, format="wav-ulaw")
    time.sleep(0.8)
    _call(running, "2001", 1.5)
    _call(running, "2002", 1.5)
    rows = _rows(tmp_path, 2)
    assert proc.stop() == 0, proc.log
    first, second = (Path(r[1]) for r in rows)
    Path(str(first) + ".key").unlink()  # lost
    Path(str(second) + ".key").write_text(rows[0][2])  # the other file's key beside it
    raw = bytearray(first.read_bytes())
    verified = recorderctl("verify", "--config", config)
    assert verified.returncode == 1
    assert f"RECORDID {rows[0][0]}: {first}.key is missing" in verified.stdout
    assert f"RECORDID {rows[1][0]}: {second}.key is the key of another file" in verified.stdout
    assert "recorderctl key restore" in verified.stdout
    restored = recorderctl("key", "restore", "--config", config)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "2 key file(s) restored from their rows" in restored.stdout
    assert recorderctl("verify", "--config", config).returncode == 0
    assert dominant_hz(_heard(first, config, tmp_path, "wav"), RATE) == pytest.approx(440, abs=5)
    # The engineer's own copy, recorderd down: in clear, as decrypt writes it.
    copy = tmp_path / "copy.mp3"
    exported = recorderctl("export", str(rows[1][0]), "--offline", "--format", "mp3", "-o",
                           copy, "--config", config)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    assert dominant_hz(ffmpeg_decode(copy), RATE) == pytest.approx(1000, abs=5)
    # A flipped byte and a cut file: verify names the chunk, beside the hash that differs.
    raw[len(raw) // 2] ^= 1
    first.write_bytes(bytes(raw))
    second.write_bytes(second.read_bytes()[:-100])
    verified = recorderctl("verify", "--config", config)
    assert verified.returncode == 1
    assert f"RECORDID {rows[0][0]}: {first}: chunk " in verified.stdout
    assert "does not authenticate" in verified.stdout
    assert f"RECORDID {rows[1][0]}: {second}: chunk " in verified.stdout
    assert "cut short" in verified.stdout or "the file was cut" in verified.stdout
    assert verified.stdout.count("differs from the file stored at its close") == 2


def test_a_crash_with_the_key_file_lost_is_recovered_with_the_rows_key(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc, running, config = _start(tmp_path, processes)
    time.sleep(0.8)
    expect(running.request("CALLSTART", 1, DEVICEID="2001"), 20)
    running.wait_recorded("2001", 2.5)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    (sidecar,) = (tmp_path / "data" / "recordings").rglob("*.key")
    sidecar.unlink()
    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert "restored from the row" in again.log
    ((_, filename, _, _),) = _rows(tmp_path, 1)
    samples = _heard(Path(filename), config, tmp_path, "wav")
    assert len(samples) / RATE >= 2.0
    assert again.stop() == 0, again.log


def test_a_crash_across_a_rotation_with_every_key_file_lost_is_recovered_and_restored(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    """A call recording across ``key rotate``, then kill -9, then every ``NAME.key`` lost:
    the crash journal's copy of the row holds the key wrapped by the retired master key, the
    database's row the re-wrapped one. The next start restores the interrupted recording's
    key from the database's row and completes it; ``recorderctl key restore`` puts back the
    finished recording's; every file then verifies and plays with the new key alone."""
    proc, running, config = _start(tmp_path, processes)
    old_id = recorderctl("key", "id", "--config", config).stdout.strip()
    time.sleep(0.8)
    _call(running, "2001", 1.5)
    expect(running.request("CALLSTART", 3, DEVICEID="2002"), 20)
    running.wait_recorded("2002", 1.0)
    rotated = recorderctl("key", "rotate", "--config", config)
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    new_id = recorderctl("key", "id", "--config", config).stdout.strip()
    assert new_id != old_id
    running.wait_recorded("2002", running.seconds_recorded("2002") + 1.5)
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    recordings = tmp_path / "data" / "recordings"
    sidecars = sorted(recordings.rglob("*.key"))
    assert len(sidecars) == 2
    for sidecar in sidecars:
        sidecar.unlink()

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    again.wait_ready()
    assert "interrupted by a crash" in again.log
    assert f"restored from the row (key id {new_id})" in again.log, again.log
    assert "stays to be recovered" not in again.log, again.log
    assert again.stop() == 0, again.log
    assert "Traceback" not in again.log, again.log
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    try:
        stopped = dict(db.execute("SELECT device_id, stop_reason FROM recordings").fetchall())
    finally:
        db.close()
    assert stopped == {"2001": "callstop", "2002": "recovered"}

    missing = recorderctl("verify", "--config", config)
    assert missing.returncode == 1
    assert missing.stdout.count(".key is missing") == 1, missing.stdout
    restored = recorderctl("key", "restore", "--config", config)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "1 key file(s) restored from their rows; 0 could not be" in restored.stdout
    verified = recorderctl("verify", "--config", config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert _key_ids(tmp_path) == {new_id}
    rows = _rows(tmp_path, 2)
    for _, filename, _, _ in rows:
        samples = _heard(Path(filename), config, tmp_path, "wav")
        crashed = "2002" in filename
        # 2.5 s recorded before the kill, which may cost the last half second.
        assert len(samples) / RATE >= (2.0 if crashed else 1.5)
        assert dominant_hz(samples, RATE) == pytest.approx(1000 if crashed else 440, abs=5)
    retired = tmp_path / f"master.key.retired-{old_id}"
    refused = recorderctl("decrypt", rows[1][1], "-o", tmp_path / "x.wav", "--key-file",
                          retired)
    assert refused.returncode == 1
    assert f"needs master key {new_id}" in refused.stderr
