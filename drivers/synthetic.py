"""The built-in demo board: speech-like talk spurts separated by pauses, different per channel.

The signal is a harmonic series on a slowly wandering pitch, shaped by two formant-like humps and
a ~4 Hz syllable envelope; talk spurts of 0.8-3 s alternate with 0.4-2 s pauses of low-level
noise. It exercises the whole chain (levels, silence, encoders) like a phone line would, without
any hardware.

It is made once, not per block: a few "voices" are synthesized into tapes of half a minute
when the board is created (wavetable synthesis, a fraction of a second; a board made again in
the same process with the same seed, channels and rate takes the same tapes), and each channel
plays one of them from its own starting point, looped. A block is then one gather from the
tapes, so the demo costs microseconds per channel-second and can show thousands of channels;
computing the speech for every channel as it played cost about 3 ms per channel-second, which
capped the demo near 256 channels and hid the rest of the recorder in every end-to-end
measurement.
"""

from __future__ import annotations

import functools

import numpy as np

from recorder.drivers.base import Block, PacedDriver
from recorder.drivers.settings import SyntheticBoardConfig

TALK_SECONDS = (0.8, 3.0)
PAUSE_SECONDS = (0.4, 2.0)
TALK_PEAK = 0.35 * 32767
NOISE_RMS = 0.001 * 32767  # about -60 dBFS: a quiet line is not digital zero
SYLLABLE_HZ = 4.0
BANDWIDTH_HZ = 3400.0


VOICES = 4  # tapes a board synthesizes; channels share them from different starting points
TAPE_SECONDS = 30.0  # each tape's length; it begins and ends in a pause, so the loop is seamless
TABLE_SIZE = 4096  # samples of one pitch period in a voice's wavetable
RAMP_SECONDS = 0.02  # spurts fade in and out over this, without clicks


def _wavetable(pitch: float, rate: int) -> np.ndarray:
    """One period of a voice: harmonics up to the phone band, shaped by two formant humps."""
    x = np.arange(TABLE_SIZE) * (2 * np.pi / TABLE_SIZE)
    table = np.zeros(TABLE_SIZE)
    for k in range(1, int(min(BANDWIDTH_HZ, rate / 2) // pitch) + 1):
        f = k * pitch
        weight = (1.0 + 2.0 * np.exp(-(((f - 600.0) / 300.0) ** 2))
                  + np.exp(-(((f - 1600.0) / 400.0) ** 2))) / k
        table += weight * np.sin(k * x)
    table /= np.abs(table).max() + 1e-9
    return table


def _talk_level(rng: np.random.Generator, frames: int, rate: int) -> np.ndarray:
    """0 in pauses, 1 in talk spurts, ramped between: pause first and last."""
    edges = [0]
    talking = False
    while edges[-1] < frames:
        span = rng.uniform(*(TALK_SECONDS if talking else PAUSE_SECONDS))
        edges.append(edges[-1] + int(span * rate))
        talking = not talking
    level = np.zeros(frames)
    ramp = max(1, int(RAMP_SECONDS * rate))
    # Spurts are the odd stretches [edges[i], edges[i+1]) for odd i; the last stays a pause.
    for begin, spurt_end in zip(edges[1::2], edges[2::2], strict=False):
        end = min(spurt_end, frames - ramp)
        if end - begin < 2 * ramp:
            continue
        level[begin:end] = 1.0
        level[begin:begin + ramp] = np.linspace(0.0, 1.0, ramp)
        level[end - ramp:end] = np.linspace(1.0, 0.0, ramp)
    return level


def _speech_tape(rng: np.random.Generator, rate: int, seconds: float) -> np.ndarray:
    """Half a minute of one speaker's talk spurts and pauses, as 16-bit samples."""
    frames = int(seconds * rate)
    t = np.arange(frames) / rate
    pitch = rng.uniform(95.0, 220.0)
    offset = rng.uniform(0.0, 2 * np.pi)
    wander = pitch * (1.0 + 0.08 * np.sin(2 * np.pi * 0.3 * t + offset))
    phase = np.cumsum(wander / rate) % 1.0
    voice: np.ndarray = _wavetable(pitch, rate)[(phase * TABLE_SIZE).astype(np.int64)
                                                % TABLE_SIZE]
    syllables = np.clip(0.55 + 0.45 * np.sin(2 * np.pi * SYLLABLE_HZ * t + offset), 0.0, 1.0)
    signal = TALK_PEAK * voice * syllables * _talk_level(rng, frames, rate)
    signal += rng.normal(0.0, NOISE_RMS, frames)
    samples: np.ndarray = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
    return samples


@functools.lru_cache(maxsize=16)
def _voices(seed: int, channels: int, rate: int) -> np.ndarray:
    """A board's tapes. They depend on nothing else, so a process that makes the same board
    again (a test's recorder, each of hundreds in the test suite) takes them from here instead
    of a fifth of a second of synthesis."""
    rng = np.random.default_rng([seed, channels, 0])
    tapes = np.stack([_speech_tape(rng, rate, TAPE_SECONDS)
                      for _ in range(max(1, min(VOICES, channels)))])
    tapes.flags.writeable = False  # shared by every board made with these
    return tapes


class SyntheticDriver(PacedDriver):
    """Plays speech-like audio on every channel, paced in real time."""

    def __init__(self, key: str, config: SyntheticBoardConfig) -> None:
        super().__init__(key, config.channels, config.sample_rate, config.block_ms,
                         config.realtime)
        c = self.channels
        self._tapes = _voices(config.seed, c, config.sample_rate)
        voices = self._tapes.shape[0]
        rng = np.random.default_rng([config.seed, c, 1])  # the channels' starting points
        self._length = self._tapes.shape[1]
        self._voice = np.arange(c) % voices
        # Channels sharing a voice start far apart on its tape, so no two sound alike at once.
        shared = -(-c // voices)
        spacing = self._length // shared
        self._start = ((np.arange(c) // voices) * spacing
                       + rng.integers(0, max(1, spacing // 2), c)) % self._length
        self._t = 0  # samples played so far

    def next_block(self, frames: int) -> Block:
        # One gather of (frames, channels), already in the order the ring takes.
        at = (self._t + np.arange(frames))[:, None] + self._start[None, :]
        self._t += frames
        block: Block = self._tapes[self._voice[None, :], at % self._length]
        return block
