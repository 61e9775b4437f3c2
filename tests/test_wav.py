"""The streaming WAV writer: valid when closed, and playable after a crash up to its last sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from recorder.codecs.formats import open_writer
from recorder.codecs.wav import WavWriter
from tests.helpers.audio import sox_info


def tone(frames: int, rate: int = 8000) -> np.ndarray:
    t = np.arange(frames) / rate
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_closed_file_holds_exactly_the_samples(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    writer = open_writer("wav", path.open("xb"), 8000)
    samples = tone(24000)
    for chunk in np.array_split(samples, 7):
        writer.write(chunk)
    writer.close()
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == 8000
    np.testing.assert_array_equal(data, samples)
    info = sox_info(path)
    assert (info["-r"], info["-c"], info["-b"]) == ("8000", "1", "16")
    assert info["-e"] == "Signed Integer PCM"
    assert float(info["-D"]) == 3.0


def test_an_unclosed_file_plays_up_to_the_last_sync(tmp_path: Path) -> None:
    """What a kill -9 leaves behind: the header describes everything written before sync()."""
    path = tmp_path / "crash.wav"
    file = path.open("xb")
    writer = open_writer("wav", file, 8000)
    writer.write(tone(8000))
    writer.sync()
    writer.write(tone(4000))
    file.flush()  # the OS has these bytes too, but the header does not count them yet
    data, rate = soundfile.read(path, dtype="int16")
    assert (len(data), rate) == (8000, 8000)
    assert float(sox_info(path)["-D"]) == 1.0
    file.close()


def test_stereo_frames(tmp_path: Path) -> None:
    path = tmp_path / "s.wav"
    writer = open_writer("wav", path.open("xb"), 16000, channels=2)
    samples = np.stack([tone(1600, 16000), -tone(1600, 16000)], axis=1)
    writer.write(samples)
    writer.close()
    assert writer.frames == 1600
    data, rate = soundfile.read(path, dtype="int16")
    assert rate == 16000
    np.testing.assert_array_equal(data, samples)


def test_a_new_wav_is_a_valid_empty_wav_on_disk_before_any_audio(tmp_path: Path) -> None:
    path = tmp_path / "new.wav"
    writer = WavWriter(path.open("wb"), 8000, 2)
    try:
        info = soundfile.info(str(path))  # read through the file system, not the writer
        assert (info.frames, info.samplerate, info.channels) == (0, 8000, 2)
    finally:
        writer.close()
