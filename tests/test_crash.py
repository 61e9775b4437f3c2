"""kill -9 with many recordings open: the next start finds, repairs and completes every one.

A real recorderd records six lines (each a tone of its own frequency, from WAV files played by
the file board) in WAV, MP3 or VOX, and is killed with SIGKILL mid-call. The next start must
repair every file so independent decoders (sox, ffmpeg) play it, complete its row with stop reason
``recovered`` and the duration the file holds - every sample that was in the file at the kill,
however far a loaded machine's writer lagged the call - and send RECORDINGSTOPPED with
ERRORREASON RECOVERED to the subscriber that connects after the restart. ``recorderctl
recover`` does the same offline; its events come at the next start.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from lxml import etree

from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from recorder.recording.journal import JOURNAL_NAME, read_journal
from tests.helpers.audio import ffmpeg_decode
from tests.helpers.ctl import recorderctl
from tests.helpers.recorders import RecorderProcess, Running, write_toml
from tests.helpers.waiting import wait_for

RATE = 8000
TONES = (300.0, 450.0, 600.0, 750.0, 900.0, 1050.0)  # one per line
DEVICES = tuple(f"40{i:02d}" for i in range(len(TONES)))
AMPLITUDE = 8000
PREROLL = 0.5  # capture.preroll_seconds' default
# What one second of 8 kHz audio takes in a file being written: 16-bit WAV (after its 44-byte
# header), 4-bit VOX, MP3 at 16 kbit/s.
ON_DISK_BYTES_PER_SECOND = {"wav": 16000, "vox": 4000, "mp3": 2000}
WAV_HEADER = 44


def _tone_files(tmp_path: Path) -> list[Path]:
    """10 s of each tone, a whole number of cycles, so the file board loops it seamlessly."""
    t = np.arange(10 * RATE) / RATE
    paths = []
    for freq in TONES:
        path = tmp_path / f"tone{int(freq)}.wav"
        soundfile.write(path, (AMPLITUDE * np.sin(2 * np.pi * freq * t)).astype(np.int16), RATE,
                        subtype="PCM_16")
        paths.append(path)
    return paths


def _config(tmp_path: Path, fmt: str) -> Path:
    files = ", ".join(f'"{p}"' for p in _tone_files(tmp_path))
    devices = ", ".join(f'"{d}"' for d in DEVICES)
    return write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      f'format = "{fmt}"\n[api]\nsocket_port = 0\nweb_port = 0\n'
                      f'[[boards]]\ndriver = "file"\nfiles = [{files}]\n'
                      f'devices = [{devices}]\n')


def _rows(database: Path) -> dict[int, tuple[str, str, float | None, str, str]]:
    db = sqlite3.connect(database)
    try:
        return {ident: (device, status, duration, reason, filename)
                for ident, device, status, duration, reason, filename in db.execute(
                    "SELECT ident, device_id, status, duration, stop_reason, filename "
                    "FROM recordings")}
    finally:
        db.close()


def _decode(path: Path, fmt: str) -> npt.NDArray[np.int16]:
    """The file as independent decoders play it: sox for WAV and VOX, ffmpeg for MP3."""
    if fmt == "mp3":
        return ffmpeg_decode(path)
    options = ["-t", "vox", "-r", str(RATE), "-c", "1"] if fmt == "vox" else []
    out = subprocess.run(["sox", *options, str(path), "-t", "s16", "-"], check=True,
                         capture_output=True).stdout
    return np.frombuffer(out, dtype="<i2").astype(np.int16)


def _dominant_hz(samples: npt.NDArray[np.int16]) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def _stopped_events(running: Running, count: int) -> list[dict[str, str]]:
    """The RECORDINGSTOPPED a subscriber connecting now receives (waits for ``count``)."""
    conn = running.connect()
    try:
        assert conn.request("EVENTS", 1, EVENTCLASS="ALL").findtext("RESULTCODE") == "20"
        found: list[dict[str, str]] = []
        deadline = time.monotonic() + 15
        while len(found) < count and time.monotonic() < deadline:
            event = etree.fromstring(conn.read_line())
            if event.findtext("EVENTTYPE") == "RECORDINGSTOPPED":
                data = event.find("EVENTDATA")
                assert data is not None
                found.append({child.tag: child.text or "" for child in data})
        return found
    finally:
        conn.close()


@dataclass(frozen=True)
class Lasted:
    """How much of a call the kill left: ``on_disk`` seconds of audio were in its file just
    before the kill; ``at_most`` seconds passed from before its CALLSTART (with the pre-roll)
    to the kill."""

    on_disk: float
    at_most: float


def _recording_file(data: Path, device: str, fmt: str) -> Path | None:
    found = sorted((data / "recordings").rglob(f"{device}-*.{fmt}")) \
        if (data / "recordings").exists() else []
    return found[0] if found else None


def _seconds_in(held: bytes, fmt: str, copy: Path) -> float:
    """The seconds of audio a recording file holding ``held`` plays."""
    if fmt != "mp3":
        return (len(held) - (WAV_HEADER if fmt == "wav" else 0)) / ON_DISK_BYTES_PER_SECOND[fmt]
    # MP3's bytes are not proportional to its audio (a tag, LAME's delay): ffmpeg decodes a
    # copy, less one frame (72 ms at 8 kHz) the kill may have cut mid-write.
    copy.write_bytes(held)
    return len(ffmpeg_decode(copy)) / RATE - 0.072


def _kill_mid_call(config: Path, fmt: str,
                   processes: list[RecorderProcess]) -> dict[str, Lasted]:
    """Start recorderd, start a call on every line, kill -9 it once each call has two seconds
    on disk; what each call had then."""
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    # The lines must have captured their pre-roll before the calls start, or the first
    # recordings would begin at the start of capture, short of the pre-roll ``at_most`` counts.
    time.sleep(PREROLL + 0.5)
    data = config.parent / "data"
    started: dict[str, float] = {}
    for device in DEVICES:
        started[device] = time.monotonic()
        answer = running.request("CALLSTART", 1, DEVICEID=device, ANI="6145551212")
        assert answer.findtext("RESULTCODE") == "20", etree.tostring(answer)
    # However slowly a loaded machine writes, the kill comes once every call has two seconds
    # in its file; what was there then is what the recovery must keep.
    need = 2.0 * ON_DISK_BYTES_PER_SECOND[fmt] + WAV_HEADER

    def two_seconds_in(device: str) -> Path | None:
        path = _recording_file(data, device, fmt)
        return path if path is not None and path.stat().st_size >= need else None

    files: list[Path] = []
    for device in DEVICES:
        found = wait_for(partial(two_seconds_in, device), timeout=30,
                         what=f"2 s of audio in {device}'s recording file")
        assert found is not None
        files.append(found)
    held = [path.read_bytes() for path in files]
    proc.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.proc.wait(10)
    return {device: Lasted(_seconds_in(held[i], fmt, config.parent / f"at-the-kill.{fmt}"),
                           killed - started[device] + PREROLL)
            for i, device in enumerate(DEVICES)}


def _check_recovered(data: Path, fmt: str, lasted: dict[str, Lasted],
                     events: list[dict[str, str]]) -> None:
    rows = _rows(data / "recorder.sqlite3")
    assert len(rows) == len(DEVICES)
    assert {e["RECORDID"] for e in events} == {str(i) for i in rows}
    assert all(e["ERRORREASON"] == "RECOVERED" for e in events)
    by_device = {e["DEVICEID"]: e for e in events}
    for ident, (device, status, duration, reason, filename) in rows.items():
        assert (status, reason) == ("complete", "recovered"), rows[ident]
        assert by_device[device]["FILENAME"] == filename
        assert by_device[device]["ANI"] == "6145551212"
        assert duration is not None
        # All the call had on disk at the kill, and no more than it lasted from its pre-roll
        # to the kill (MP3 adds its last frame's padding, a few ms), but for what a board
        # behind the clock at the CALLSTART caught up before the kill.
        assert lasted[device].on_disk - 0.01 <= duration, (device, duration, lasted[device])
        assert duration <= lasted[device].at_most + MAX_CATCH_UP_SECONDS + 0.1, (
            device, duration, lasted[device])
        audio = _decode(Path(filename), fmt)
        assert len(audio) / RATE == pytest.approx(duration, abs=0.08 if fmt == "mp3" else 0.01)
        # The line's own tone, at its level, through the whole file.
        tone = TONES[DEVICES.index(device)]
        middle = audio[int(0.2 * RATE):-int(0.2 * RATE)]
        assert _dominant_hz(middle) == pytest.approx(tone, abs=8)
        rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
        assert rms == pytest.approx(AMPLITUDE / np.sqrt(2), rel=0.15)


@pytest.mark.skipif(shutil.which("sox") is None or shutil.which("ffmpeg") is None,
                    reason="needs sox and ffmpeg")
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["wav", "mp3", "vox"])
def test_kill_9_with_six_recordings_open_recovers_every_one_at_the_next_start(
        tmp_path: Path, processes: list[RecorderProcess], fmt: str) -> None:
    config = _config(tmp_path, fmt)
    data = tmp_path / "data"
    lasted = _kill_mid_call(config, fmt, processes)

    # The journal knows every open recording; the database still has them in progress.
    journal = read_journal(data / JOURNAL_NAME)
    assert sorted(e.row.device_id for e in journal.open.values()) == sorted(DEVICES)
    assert {status for _, status, *_ in _rows(data / "recorder.sqlite3").values()} == {
        "recording"}

    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    running = again.wait_ready()
    events = _stopped_events(running, len(DEVICES))
    assert len(events) == len(DEVICES), again.log
    assert "interrupted by a crash" in again.log
    _check_recovered(data, fmt, lasted, events)
    assert not read_journal(data / JOURNAL_NAME).open  # nothing left to recover

    # The recorder records as before after its recovery.
    assert running.request("CALLSTART", 2, DEVICEID=DEVICES[0]).findtext("RESULTCODE") == "20"
    time.sleep(0.5)
    assert running.request("CALLSTOP", 3, DEVICEID=DEVICES[0]).findtext("RESULTCODE") == "20"
    assert again.stop() == 0, again.log
    assert "Traceback" not in again.log, again.log
    assert len(_rows(data / "recorder.sqlite3")) == len(DEVICES) + 1


@pytest.mark.slow
def test_recorderctl_recover_offline_and_the_events_at_the_next_start(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config = _config(tmp_path, "wav")
    data = tmp_path / "data"
    lasted = _kill_mid_call(config, "wav", processes)

    done = recorderctl("recover", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert f"completed {len(DEVICES)} interrupted recording(s)" in done.stdout
    rows = _rows(data / "recorder.sqlite3")
    assert {(status, reason) for _, status, _, reason, _ in rows.values()} == {
        ("complete", "recovered")}

    # recorderd has nothing left to repair, and sends the events recover could not.
    again = RecorderProcess(["--config", str(config)])
    processes.append(again)
    running = again.wait_ready()
    events = _stopped_events(running, len(DEVICES))
    _check_recovered(data, "wav", lasted, events)
    assert "interrupted by a crash" not in again.log
    assert again.stop() == 0, again.log
    # Announced once: a restart does not send them again.
    third = RecorderProcess(["--config", str(config)])
    processes.append(third)
    running = third.wait_ready()
    assert _stopped_events_now(running) == []
    assert third.stop() == 0, third.log


def _stopped_events_now(running: Running) -> list[str]:
    """RECORDINGSTOPPED a new subscriber receives within a second (none expected)."""
    conn = running.connect()
    try:
        assert conn.request("EVENTS", 1, EVENTCLASS="ALL").findtext("RESULTCODE") == "20"
        conn.sock.settimeout(1.0)
        seen = []
        try:
            while True:
                seen.append(etree.fromstring(conn.read_line()).findtext("EVENTTYPE") or "")
        except OSError:
            pass
        return [t for t in seen if t == "RECORDINGSTOPPED"]
    finally:
        conn.close()
