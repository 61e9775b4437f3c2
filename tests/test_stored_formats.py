"""The stored format: live or after-call encoding, and what a crash leaves (always a recording)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from recorder.codecs.convert import probe
from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from recorder.errors import ConfigError
from recorder.store.records import RecordingQuery
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import result_code
from tests.helpers.audio import sox_info
from tests.helpers.exports import dominant_hz, tone_boards
from tests.helpers.recorders import RecorderProcess, base_config, write_toml
from tests.helpers.waiting import wait_for

PREROLL_SECONDS = 0.5  # capture.preroll_seconds' default: a recording starts this early
# What one second of the demo board's 8 kHz audio takes in a file being written: 16-bit WAV,
# 4-bit VOX, MP3 at 16 kbit/s.
ON_DISK_BYTES_PER_SECOND = {"wav": 16000, "vox": 4000, "mp3": 2000}


def _recording_file(data: Path, fmt: str) -> Path | None:
    found = sorted((data / "recordings").rglob(f"*.{fmt}")) if (data / "recordings").exists() \
        else []
    return found[0] if found else None


def decoded_by_ffmpeg(path: Path) -> np.ndarray:
    """The 8 kHz mono samples ffmpeg decodes from ``path``, whatever its tag says."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
                          "-ar", "8000", "-"], capture_output=True, check=True, timeout=30)
    return np.frombuffer(out.stdout, dtype="<i2")


def ffprobe_seconds(path: str) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                          "csv=p=0", path], capture_output=True, text=True, check=True,
                         timeout=30)
    return float(out.stdout.strip())


def one_call(running: Any, seconds: float, device: str = "1001") -> Any:
    time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
    assert result_code(running.request("CALLSTART", 1, deviceid=device)) == 20
    # ``seconds`` of the call's own audio (and its pre-roll), however late a loaded machine
    # captures them, then the stop at once: the file holds that, give or take the request.
    running.wait_recorded(device, seconds + PREROLL_SECONDS)
    assert result_code(running.request("CALLSTOP", 2, deviceid=device)) == 20
    found = running.request("CALLLIST", 3, deviceid=device).find("SEARCHRESULT")
    assert found is not None
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "encoding"), [("wav-ulaw", "u-law"), ("wav-alaw", "A-law")])
def test_a_live_g711_recording_is_in_the_stored_format(
        tmp_path: Path, start_recorder: Any, fmt: str, encoding: str) -> None:
    running = start_recorder(storage={"data_dir": str(tmp_path / "d"), "format": fmt})
    found = one_call(running, 1.5)
    filename = found.findtext("FILENAME")
    assert filename.endswith(".wav")
    info = sox_info(filename)
    assert encoding in info["-e"]
    assert info["-r"] == "8000"
    # 1.5 s of call plus the 0.5 s pre-roll
    assert float(info["-D"]) == pytest.approx(2.0, abs=0.35)


@pytest.mark.slow
def test_a_live_mp3_recording(tmp_path: Path, start_recorder: Any) -> None:
    running = start_recorder(storage={"data_dir": str(tmp_path / "d"), "format": "mp3",
                                      "mp3_bitrate": 24})
    found = one_call(running, 1.5)
    filename = found.findtext("FILENAME")
    assert filename.endswith(".mp3")
    info = soundfile.info(filename)
    assert (info.samplerate, info.channels) == (8000, 1)
    assert info.duration == pytest.approx(2.0, abs=0.35)
    assert ffprobe_seconds(filename) == pytest.approx(2.0, abs=0.4)


def sox_raw(path: Path, *args: str) -> npt.NDArray[np.int16]:
    """What sox decodes from ``path`` (read as ``args`` say) as 16-bit little-endian samples."""
    out = subprocess.run(["sox", *args, str(path), "-t", "raw", "-e", "signed", "-b", "16",
                          "-L", "-"], capture_output=True, check=True, timeout=30)
    return np.frombuffer(out.stdout, dtype="<i2")


@pytest.mark.slow
def test_vox_at_6_khz(tmp_path: Path, start_recorder: Any) -> None:
    """The line's 440 Hz tone at amplitude 8000 (tests/helpers/exports.py), stored as VOX at
    6 kHz: sox must hear that tone, at its level, all through the file. sox decodes anything
    as VOX (random bytes, text) and says nothing, so its exit status alone proves nothing."""
    running = start_recorder(storage={"data_dir": str(tmp_path / "d"), "format": "vox",
                                      "vox_rate": 6000}, boards=tone_boards(tmp_path))
    found = one_call(running, 1.0, device="2001")
    filename = found.findtext("FILENAME")
    assert filename.endswith(".vox")
    size = Path(filename).stat().st_size
    samples = sox_raw(Path(filename), "-t", "vox", "-r", "6000")
    assert len(samples) == 2 * size  # two 4-bit codes a byte
    assert len(samples) / 6000 == pytest.approx(1.5, abs=0.35)  # the call and its pre-roll
    assert dominant_hz(samples, 6000) == pytest.approx(440, abs=2)
    # Every tenth of a second after the first (where ADPCM's step size is still growing to
    # the tone's level) is the tone: its pitch, and the RMS of a sine of amplitude 8000.
    window = 600
    for start in range(window, len(samples) - window + 1, window):
        part = samples[start:start + window]
        assert dominant_hz(part, 6000) == pytest.approx(440, abs=10), start
        rms = float(np.sqrt(np.mean(part.astype(np.float64) ** 2)))
        assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.1), start


@pytest.mark.slow
def test_after_call_encoding_replaces_the_wav_with_an_mp3(tmp_path: Path,
                                                          start_recorder: Any) -> None:
    running = start_recorder(storage={"data_dir": str(tmp_path / "d"), "format": "mp3",
                                      "encode": "after-call"})
    found = one_call(running, 1.5)
    record_id = found.findtext("RECORDID")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = running.request("CALLLIST", 4, deviceid="1001").find("SEARCHRESULT")
        name = found.findtext("FILENAME")
        if name.endswith(".mp3") and not Path(name).with_suffix(".wav").exists():
            break
        time.sleep(0.2)
    filename = found.findtext("FILENAME")
    assert filename.endswith(".mp3")
    assert found.findtext("RECORDID") == record_id
    assert not Path(filename).with_suffix(".wav").exists()
    assert ffprobe_seconds(filename) == pytest.approx(2.0, abs=0.4)
    data, rate = soundfile.read(filename, dtype="int16")
    assert rate == 8000
    assert np.abs(data).max() > 1000  # the demo board's speech, not silence


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["wav", "mp3", "vox"])
def test_a_killed_recorder_leaves_every_recording_playable_and_complete(
        tmp_path: Path, processes: list[RecorderProcess], fmt: str) -> None:
    """SIGKILL mid-call: the next start completes the row from the file, header repaired."""
    config = config_from_dict(base_config(tmp_path, storage={
        "data_dir": str(tmp_path / "data"), "format": fmt}), base_dir=tmp_path)
    path = write_toml(tmp_path / "recorder.toml", to_toml(config))
    first = RecorderProcess(["--config", str(path)])
    processes.append(first)
    running = first.wait_ready()
    started = time.monotonic()  # before the request: the call starts before its answer
    assert result_code(running.request("CALLSTART", 1, deviceid="1002", ani="5551234")) == 20
    # Killed once two seconds of the call are on disk, however slowly a loaded machine writes
    # them: what was on disk before the kill is what the next start must keep.
    rate = ON_DISK_BYTES_PER_SECOND[fmt]
    written = wait_for(lambda: _recording_file(tmp_path / "data", fmt), timeout=30,
                       what="the recording's file")
    size = wait_for(lambda: (n := written.stat().st_size) >= 2.0 * rate and n, timeout=30,
                    what=lambda: f"2 s of audio in {written} ({written.stat().st_size} bytes)")
    # MP3's bytes are not proportional to its audio (a tag, LAME's delay): a copy of the file
    # as it was at the kill, decoded by ffprobe, says how much audio it held.
    snapshot = tmp_path / "at-the-kill.mp3"
    snapshot.write_bytes(written.read_bytes()[:size])
    first.proc.kill()
    killed = time.monotonic()
    first.proc.wait(10)

    second = RecorderProcess(["--config", str(path)])
    processes.append(second)
    running = second.wait_ready()
    found = running.request("CALLLIST", 2, deviceid="1002").find("SEARCHRESULT")
    assert found is not None
    assert found.findtext("ANI") == "5551234"
    filename = found.findtext("FILENAME")
    assert filename.endswith("." + fmt)
    # Everything on disk counts (MP3 may drop its last, unfinished frame), and nothing more
    # than the call's pre-roll and the time up to the kill.
    seconds = probe(Path(filename)).duration
    # ffmpeg decodes an MP3 frame cut off mid-write too: one frame (72 ms at 8 kHz) of slack.
    on_disk = len(decoded_by_ffmpeg(snapshot)) / 8000 - 0.072 if fmt == "mp3" else size / rate
    assert seconds >= on_disk - 0.01, (seconds, on_disk)
    # ...but for what a board behind the clock at the CALLSTART caught up before the kill.
    assert seconds <= killed - started + PREROLL_SECONDS + MAX_CATCH_UP_SECONDS + 0.1
    if fmt == "wav":
        assert float(sox_info(filename)["-D"]) == pytest.approx(seconds, abs=0.01)
    elif fmt == "mp3":
        assert ffprobe_seconds(filename) == pytest.approx(seconds, abs=0.2)
    assert int(found.findtext("DURATION")) == round(seconds)
    assert "interrupted by a crash" in second.log
    assert second.stop() == 0
    store = SqliteStore(config.storage.database_path)
    store.open()
    try:
        (row,) = store.list_recordings(RecordingQuery(limit=10))
        assert (row.status, row.stop_reason) == ("complete", "recovered")
        assert row.audio_size == Path(filename).stat().st_size
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")
def test_after_call_work_left_by_a_kill_is_done_at_the_next_start(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config = config_from_dict(base_config(tmp_path, storage={
        "data_dir": str(tmp_path / "data"), "format": "mp3", "encode": "after-call",
        "transcode_workers": 1}), base_dir=tmp_path)
    path = write_toml(tmp_path / "recorder.toml", to_toml(config))
    first = RecorderProcess(["--config", str(path)])
    processes.append(first)
    running = first.wait_ready()
    for device in ("1001", "1002", "1003"):
        assert result_code(running.request("CALLSTART", 1, deviceid=device)) == 20
    time.sleep(1.5)
    for device in ("1001", "1002", "1003"):
        assert result_code(running.request("CALLSTOP", 2, deviceid=device)) == 20
    first.proc.kill()  # right after the stops: the conversions have barely begun
    first.proc.wait(10)

    second = RecorderProcess(["--config", str(path)])
    processes.append(second)
    running = second.wait_ready()
    deadline = time.monotonic() + 30
    names: list[str] = []
    while time.monotonic() < deadline:
        names = [r.findtext("FILENAME") for r in running.request("CALLLIST", 3).findall(
            "SEARCHRESULT")]
        if (len(names) == 3 and all(n.endswith(".mp3") for n in names)
                and not list((tmp_path / "data").rglob("*.wav"))):
            break
        time.sleep(0.3)
    assert len(names) == 3
    assert all(n.endswith(".mp3") for n in names), names
    for name in names:
        assert ffprobe_seconds(name) == pytest.approx(2.0, abs=0.4)
        assert not Path(name).with_suffix(".wav").exists()
    assert not list((tmp_path / "data").rglob("*.part"))
    assert second.stop() == 0


def test_after_call_g711_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"storage\.encode: wav-ulaw"):
        config_from_dict({"storage": {"format": "wav-ulaw", "encode": "after-call"}})
