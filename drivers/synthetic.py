"""The built-in demo board: speech-like talk spurts separated by pauses, different per channel.

The signal is a harmonic series on a slowly wandering pitch, shaped by two formant-like humps and
a ~4 Hz syllable envelope; talk spurts of 0.8-3 s alternate with 0.4-2 s pauses of low-level
noise. It exercises the whole chain (levels, silence, encoders) like a phone line would, without
any hardware.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recorder.config.boards import BoardCommon, one_channel_per_device
from recorder.config.setting import setting
from recorder.drivers.base import Block, PacedDriver

TALK_SECONDS = (0.8, 3.0)
PAUSE_SECONDS = (0.4, 2.0)
TALK_PEAK = 0.35 * 32767
NOISE_RMS = 0.001 * 32767  # about -60 dBFS: a quiet line is not digital zero
SYLLABLE_HZ = 4.0
BANDWIDTH_HZ = 3400.0


@dataclass(frozen=True, kw_only=True)
class SyntheticBoardConfig(BoardCommon):
    """The built-in demo board: speech-like talk spurts and pauses on every channel."""

    driver: str = setting("synthetic", "board driver")
    channels: int = setting(0, "number of channels; defaults to the number of devices",
                            min=0, max=65536)
    sample_rate: int = setting(8000, "samples per second", min=8000, max=48000)
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    seed: int = setting(0, "random seed of the generated speech", min=0, max=2**31 - 1)
    realtime: bool = setting(True, "false: generate as fast as the capture core takes it "
                             "(benchmarks)")

    def checked(self, where: str, problems: list[str]) -> SyntheticBoardConfig:
        return one_channel_per_device(self, where, problems)


class SyntheticDriver(PacedDriver):
    """Generates speech-like audio for every channel, paced in real time."""

    def __init__(self, key: str, config: SyntheticBoardConfig) -> None:
        super().__init__(key, config.channels, config.sample_rate, config.block_ms,
                         config.realtime)
        c = self.channels
        self._rng = np.random.default_rng([config.seed, c])
        self._pitch = self._rng.uniform(95.0, 220.0, c)
        self._phase = np.zeros(c)
        self._offset = self._rng.uniform(0.0, 2 * np.pi, c)
        self._talking = self._rng.random(c) < 0.5
        self._left = self._durations(self._talking)
        self._level = np.where(self._talking, 1.0, 0.0)
        self._t = 0  # samples generated so far

    def _durations(self, talking: np.ndarray) -> np.ndarray:
        talk = self._rng.uniform(*TALK_SECONDS, talking.shape)
        pause = self._rng.uniform(*PAUSE_SECONDS, talking.shape)
        return (np.where(talking, talk, pause) * self.sample_rate).astype(np.int64)

    def next_block(self, frames: int) -> Block:
        rate = self.sample_rate
        # Talk/pause state changes on block boundaries; 20 ms is finer than any listener notices.
        self._left -= frames
        flip = self._left <= 0
        if flip.any():
            self._talking = np.where(flip, ~self._talking, self._talking)
            self._left = np.where(flip, self._durations(self._talking), self._left)
        n = np.arange(frames)
        t = (self._t + n) / rate
        seconds = self._t / rate
        pitch = self._pitch * (1.0 + 0.08 * np.sin(2 * np.pi * 0.3 * seconds + self._offset))
        phase = self._phase[:, None] + 2 * np.pi * pitch[:, None] * (n + 1) / rate
        self._phase = phase[:, -1] % (2 * np.pi)

        voice = np.zeros((self.channels, frames))
        harmonics = int(BANDWIDTH_HZ // float(pitch.min()))
        for k in range(1, harmonics + 1):
            f = k * pitch
            weight = (1.0 + 2.0 * np.exp(-(((f - 600.0) / 300.0) ** 2))
                      + np.exp(-(((f - 1600.0) / 400.0) ** 2))) / k
            weight = np.where(f < BANDWIDTH_HZ, weight, 0.0)
            voice += weight[:, None] * np.sin(k * phase)
        voice /= np.abs(voice).max(axis=1, keepdims=True) + 1e-9

        # Ramp the spurt level across the block so spurts start and end without clicks.
        target = self._talking.astype(float)
        ramp = self._level[:, None] + (target - self._level)[:, None] * (n + 1) / frames
        self._level = target
        syllable = np.sin(2 * np.pi * SYLLABLE_HZ * t + self._offset[:, None])
        syllables = np.clip(0.55 + 0.45 * syllable, 0.0, 1.0)
        signal = TALK_PEAK * voice * syllables * ramp
        signal += self._rng.normal(0.0, NOISE_RMS, signal.shape)
        self._t += frames
        return np.clip(np.rint(signal), -32768, 32767).astype(np.int16).T.copy()
