"""Capture drivers: one contract for every driver, then what each one does on its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.config import FileBoardConfig, SyntheticBoardConfig
from recorder.drivers import Driver, create_driver
from recorder.errors import DriverError


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


def synthetic(tmp_path: Path) -> Driver:
    return create_driver("boards[0]", SyntheticBoardConfig(devices=("1", "2", "3"), channels=3))


def replay(tmp_path: Path) -> Driver:
    files = tuple(write_wav(tmp_path / f"{i}.wav", np.full(4000, i * 100, np.int16))
                  for i in range(3))
    return create_driver("boards[0]", FileBoardConfig(files=files, devices=("1", "2", "3")))


DRIVERS: list[Callable[[Path], Driver]] = [synthetic, replay]


@pytest.fixture(params=DRIVERS, ids=lambda f: f.__name__)
def driver(request: pytest.FixtureRequest, tmp_path: Path) -> Driver:
    factory: Callable[[Path], Driver] = request.param
    return factory(tmp_path)


class Sink:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.threads: set[str] = set()

    def __call__(self, block: np.ndarray) -> None:
        self.blocks.append(block)
        self.threads.add(threading.current_thread().name)


def test_contract_blocks_are_int16_frames_by_channels_paced_in_real_time(driver: Driver) -> None:
    sink = Sink()
    driver.start(sink)
    time.sleep(1.0)
    driver.stop()
    assert driver.join(5)
    assert sink.blocks
    assert all(b.dtype == np.int16 and b.ndim == 2 and b.shape[1] == driver.channels
               for b in sink.blocks)
    seconds = sum(b.shape[0] for b in sink.blocks) / driver.sample_rate
    # Paced, not as fast as it can: never ahead of the wall clock (one block of slack).
    assert 0.2 < seconds <= 1.05 + sink.blocks[0].shape[0] / driver.sample_rate
    assert sink.threads == {"driver-boards[0]"}  # delivered from the driver's own thread


def test_contract_stop_leaves_no_thread_behind(driver: Driver) -> None:
    driver.start(Sink())
    time.sleep(0.1)
    driver.stop()
    assert driver.join(5)
    assert not [t for t in threading.enumerate() if t.name.startswith("driver-")]


def test_contract_join_before_start_and_double_start(driver: Driver) -> None:
    assert driver.join(0)
    driver.start(Sink())
    with pytest.raises(RuntimeError, match="already started"):
        driver.start(Sink())
    driver.stop()
    assert driver.join(5)


def rms_dbfs(block: np.ndarray) -> np.ndarray:
    rms = np.sqrt((block.astype(np.float64) ** 2).mean(axis=0))
    return 20 * np.log10(np.maximum(rms, 1e-9) / 32768)


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
