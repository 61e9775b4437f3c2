"""Level meters: dBFS per 20 ms window and channel, silence flags, and where runs began."""

from __future__ import annotations

import numpy as np
import pytest

from recorder.capture.levels import LevelMeter, to_dbfs, window_power

RATE = 8000
W = 160


def tone(dbfs: float, frames: int, hz: float = 1000.0) -> np.ndarray:
    """A sine whose RMS is ``dbfs``."""
    amplitude = 32768 * 10 ** (dbfs / 20) * np.sqrt(2)
    t = np.arange(frames) / RATE
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


@pytest.mark.parametrize(("dbfs", "peak_dbfs"), [
    (-6.0, -3.0),   # a sine's peak is 3 dB above its RMS
    (-20.0, -17.0),
    (-40.0, -37.0),
])
def test_rms_and_peak_of_a_sine(dbfs: float, peak_dbfs: float) -> None:
    meter = LevelMeter(1, RATE, -45.0)
    meter.feed(tone(dbfs, W * 5)[:, None], 0)
    assert meter.rms_dbfs[0] == pytest.approx(dbfs, abs=0.1)
    assert meter.peak_dbfs[0] == pytest.approx(peak_dbfs, abs=0.2)


def test_full_scale_negative_peak_does_not_overflow() -> None:
    frames = np.full((W, 1), -32768, np.int16)
    power, peak = window_power(frames, W)
    assert peak[0, 0] == 32768
    assert to_dbfs(np.sqrt(power[0] / W))[0] == pytest.approx(0.0)


def test_digital_silence_is_minus_infinity() -> None:
    # docs/capture.md, docs/recorderctl.md: -inf, not a floor a quiet line could also reach.
    meter = LevelMeter(2, RATE, -45.0)
    meter.feed(np.zeros((W * 2, 2), np.int16), 0)
    assert (meter.rms_dbfs == -np.inf).all()
    assert (meter.peak_dbfs == -np.inf).all()
    meter.feed(np.ones((W, 2), np.int16), W * 2)  # the quietest signal there is: finite
    assert np.isfinite(meter.peak_dbfs).all()
    assert meter.silent.all()


def test_each_channel_is_measured_on_its_own() -> None:
    frames = np.stack([tone(-10, W * 3), tone(-50, W * 3), np.zeros(W * 3, np.int16)], axis=1)
    meter = LevelMeter(3, RATE, -45.0)
    meter.feed(frames, 0)
    assert meter.silent.tolist() == [False, True, True]
    assert meter.rms_dbfs[0] == pytest.approx(-10, abs=0.1)
    assert meter.rms_dbfs[1] == pytest.approx(-50, abs=0.1)


@pytest.mark.parametrize(("threshold", "silent"), [(-45.0, False), (-25.0, True)])
def test_the_threshold_is_the_boards(threshold: float, silent: bool) -> None:
    meter = LevelMeter(1, RATE, threshold)
    meter.feed(tone(-30, W)[:, None], 0)
    assert bool(meter.silent[0]) is silent


def test_runs_record_the_window_where_speech_and_silence_began() -> None:
    # Windows: 3 silent, 4 speech, 2 silent, fed in two uneven pieces.
    audio = np.concatenate([np.zeros(3 * W, np.int16), tone(-20, 4 * W),
                            np.zeros(2 * W, np.int16)])[:, None]
    meter = LevelMeter(1, RATE, -45.0)
    meter.feed(audio[: 5 * W], 1000)
    assert not meter.silent[0]
    assert meter.speech_since[0] == 1000 + 3 * W
    assert meter.analyzed == 1000 + 5 * W
    meter.feed(audio[5 * W:], 1000 + 5 * W)
    assert meter.silent[0]
    assert meter.silence_since[0] == 1000 + 7 * W
    assert meter.analyzed == 1000 + 9 * W


def test_a_partial_window_is_left_for_next_time() -> None:
    meter = LevelMeter(1, RATE, -45.0)
    meter.feed(tone(-20, W + 50)[:, None], 0)
    assert meter.analyzed == W
