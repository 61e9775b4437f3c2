"""Capture drivers: one contract for every driver, then what each one does on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from recorder.drivers.base import DriverState
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import FileBoardConfig, SyntheticBoardConfig
from recorder.errors import DriverError
from tests.helpers.contract import Harness, RecordingSink
from tests.helpers.modem_emulator import voicemodem
from tests.helpers.pulseaudio import sounddevice_board


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


def synthetic(tmp_path: Path) -> Iterator[Harness]:
    yield Harness(create_driver("boards[0]", SyntheticBoardConfig(devices=("1", "2", "3"),
                                                                  channels=3)))


def synthetic_fast(tmp_path: Path) -> Iterator[Harness]:
    yield Harness(create_driver("boards[0]", SyntheticBoardConfig(
        devices=("1", "2"), channels=2, realtime=False)))


def replay(tmp_path: Path) -> Iterator[Harness]:
    files = tuple(write_wav(tmp_path / f"{i}.wav", np.full(4000, i * 100, np.int16))
                  for i in range(3))
    yield Harness(create_driver("boards[0]", FileBoardConfig(files=files,
                                                             devices=("1", "2", "3"))))


# Every driver, fake or real, runs the same contract. The real ones bring up their device here:
# a PulseAudio null sink for sounddevice, a V.253 modem emulator on a pty for voicemodem.
# (The PulseAudio daemon is a process: the fast lane leaves that harness out.)
HARNESSES: list[Any] = [synthetic, synthetic_fast, replay,
                        pytest.param(sounddevice_board, marks=pytest.mark.process), voicemodem]


@pytest.fixture(params=HARNESSES, ids=lambda f: f.__name__)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    make: Callable[[Path], Iterator[Harness]] = request.param
    gen = make(tmp_path)
    h = next(gen)
    try:
        yield h
    finally:
        h.driver.stop()
        h.driver.join(10)
        h.close()
        next(gen, None)


def driver_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t is not threading.main_thread()}


@pytest.mark.slow
def test_contract_blocks_are_int16_frames_by_channels_at_the_sample_rate(
        harness: Harness) -> None:
    driver, sink = harness.driver, RecordingSink()
    driver.start(sink)
    assert sink.wait_for(lambda: bool(sink.blocks), 10), "no audio within 10 s"
    # Counted until an amount of audio has come, not over a fixed sleep: on a loaded machine a
    # real-time driver may fall behind (and catch up, or report the frames lost), which is no
    # fault of its own. ``began`` before ``first`` and ``took`` after the last count, so the
    # window holds every frame counted.
    began = time.monotonic()
    first = sink.frames()
    want = (3.0 if driver.realtime else 6.0) * driver.sample_rate
    assert sink.wait_for(lambda: sink.frames() - first >= want, 30), \
        f"{want} frames within 30 s, not {sink.frames() - first}"
    got = sink.frames() - first
    took = time.monotonic() - began
    driver.stop()
    assert driver.join(10)
    assert all(b.dtype == np.int16 and b.ndim == 2 and b.shape[1] == driver.channels
               for b in sink.blocks)
    assert threading.get_ident() not in sink.threads, "delivered from the driver's threads"
    seconds = got / driver.sample_rate
    if driver.realtime:
        # Real time: never ahead of the wall clock, but for a few blocks a device may buffer;
        # and not far behind it, counting what it says it lost (a driver at half speed fails,
        # one a loaded machine holds up for two seconds does not).
        lost = sum(sink.lost) / driver.sample_rate
        assert seconds < took + 0.3, (seconds, took)
        assert seconds + lost > 0.6 * took, (seconds, lost, took)
    else:
        # Faster than real time, by more than a paced driver ever runs ahead (a generous
        # margin: a starved CPU makes the speech-like audio slowly).
        assert seconds > took + 0.3, ("a non-realtime driver runs faster than real time",
                                      seconds, took)
    assert sink.states
    assert sink.states[0][0] in (DriverState.STARTING, DriverState.RUNNING)
    assert DriverState.RUNNING in [s for s, _ in sink.states]


def test_contract_stop_leaves_no_thread_behind(harness: Harness) -> None:
    before = driver_threads()
    sink = RecordingSink()
    harness.driver.start(sink)
    assert sink.wait_for(lambda: bool(sink.blocks), 10)
    harness.driver.stop()
    assert harness.driver.join(10)
    assert driver_threads() - before == set()


def test_contract_join_before_start_and_double_start(harness: Harness) -> None:
    assert harness.driver.join(0)
    harness.driver.start(RecordingSink())
    with pytest.raises(RuntimeError, match="already started"):
        harness.driver.start(RecordingSink())


def test_contract_stop_right_after_start(harness: Harness) -> None:
    before = driver_threads()
    harness.driver.start(RecordingSink())
    harness.driver.stop()
    assert harness.driver.join(10)
    assert driver_threads() - before == set()


@pytest.mark.slow
def test_contract_a_lost_device_shows_error_and_comes_back(harness: Harness) -> None:
    if harness.lose is None or harness.restore is None:
        pytest.skip(f"{type(harness.driver).__name__} has no device to lose")
    driver, sink = harness.driver, RecordingSink()
    driver.start(sink)
    assert sink.wait_for(lambda: sink.last_state() is DriverState.RUNNING and bool(sink.blocks),
                         15)
    harness.lose()
    assert sink.wait_for(
        lambda: sink.last_state() in (DriverState.ERROR, DriverState.RESETTING), 15), \
        f"the loss was not reported: {sink.states}"
    harness.restore()
    assert sink.wait_for(lambda: sink.last_state() is DriverState.RUNNING, 30), sink.states
    resumed = sink.frames()
    assert sink.wait_for(lambda: sink.frames() > resumed + driver.sample_rate // 2, 15), \
        "audio flows again after the device came back"
    if driver.realtime:
        assert sum(sink.lost) > 0, "the time the device was away is reported as lost frames"
    driver.stop()
    assert driver.join(10)


def test_contract_stop_while_the_device_is_lost(harness: Harness) -> None:
    if harness.lose is None:
        pytest.skip(f"{type(harness.driver).__name__} has no device to lose")
    before = driver_threads()
    driver, sink = harness.driver, RecordingSink()
    driver.start(sink)
    assert sink.wait_for(lambda: bool(sink.blocks), 15)
    harness.lose()
    assert sink.wait_for(
        lambda: sink.last_state() in (DriverState.ERROR, DriverState.RESETTING), 15)
    driver.stop()
    assert driver.join(10)
    assert driver_threads() - before == set()


def rms_dbfs(block: np.ndarray) -> np.ndarray:
    rms = np.sqrt((block.astype(np.float64) ** 2).mean(axis=0))
    return 20 * np.log10(np.maximum(rms, 1e-9) / 32768)


@pytest.mark.slow
def test_synthetic_alternates_talk_spurts_and_pauses_per_channel() -> None:
    driver = create_driver("b", SyntheticBoardConfig(devices=("1", "2"), channels=2))
    blocks = [driver.next_block(160) for _ in range(1000)]  # 20 s of audio
    levels = np.array([rms_dbfs(b) for b in blocks])  # (blocks, channels)
    for ch in range(2):
        talking = levels[:, ch] > -35
        paused = levels[:, ch] < -50
        assert 0.2 < talking.mean() < 0.9, "talk spurts"
        assert paused.mean() > 0.1, "pauses"
        assert (levels[:, ch] > -100).all(), "a pause is a quiet line, not digital zero"
    assert not np.array_equal(blocks[10][:, 0], blocks[10][:, 1]), "channels differ"


def test_synthetic_is_repeatable_for_a_seed() -> None:
    def first_blocks(seed: int) -> np.ndarray:
        d = create_driver("b", SyntheticBoardConfig(devices=("1",), channels=1, seed=seed))
        return np.concatenate([d.next_block(160) for _ in range(50)])

    np.testing.assert_array_equal(first_blocks(1), first_blocks(1))
    assert not np.array_equal(first_blocks(1), first_blocks(2))


def test_file_replays_each_file_looped(tmp_path: Path) -> None:
    a = np.arange(1000, 1300, dtype=np.int16)
    b = np.arange(-500, -430, dtype=np.int16)
    driver = create_driver("boards[2]", FileBoardConfig(
        files=(write_wav(tmp_path / "a.wav", a), write_wav(tmp_path / "b.wav", b)),
        devices=("1", "2")))
    got = np.concatenate([driver.next_block(160) for _ in range(5)])
    np.testing.assert_array_equal(got[:, 0], np.resize(a, 800))
    np.testing.assert_array_equal(got[:, 1], np.resize(b, 800))


def test_file_played_once_goes_quiet_and_one_file_serves_many_lines(tmp_path: Path) -> None:
    a = np.arange(1, 251, dtype=np.int16)
    b = np.arange(-400, -100, dtype=np.int16)
    wa, wb = write_wav(tmp_path / "a.wav", a), write_wav(tmp_path / "b.wav", b)
    driver = create_driver("boards[2]", FileBoardConfig(
        files=(wa, wb, wa), devices=("1", "2", "3"), loop=False))
    got = np.concatenate([driver.next_block(160) for _ in range(3)])
    for column, track in ((0, a), (1, b), (2, a)):
        expected = np.zeros(480, np.int16)
        expected[:len(track)] = track
        np.testing.assert_array_equal(got[:, column], expected)


def test_file_mixes_stereo_down_to_one_line(tmp_path: Path) -> None:
    stereo = np.stack([np.full(100, 1000, np.int16), np.full(100, 3000, np.int16)], axis=1)
    driver = create_driver("b", FileBoardConfig(files=(write_wav(tmp_path / "s.wav", stereo),),
                                                devices=("1",)))
    assert (driver.next_block(50)[:, 0] == 2000).all()


def test_file_rates_must_agree(tmp_path: Path) -> None:
    files = (write_wav(tmp_path / "a.wav", np.zeros(10, np.int16), 8000),
             write_wav(tmp_path / "b.wav", np.zeros(10, np.int16), 16000))
    with pytest.raises(DriverError, match=r"boards\[1\]\.files: all files .* one sample rate"):
        create_driver("boards[1]", FileBoardConfig(files=files, devices=("1", "2")))


def test_file_that_is_not_audio_names_its_key(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("not audio")
    with pytest.raises(DriverError, match=r"boards\[0\]\.files\[0\]: cannot read audio"):
        create_driver("boards[0]", FileBoardConfig(files=(bogus,), devices=("1",)))
