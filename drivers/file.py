"""Replays one audio file per channel, looped or once, paced in real time (a test line for the
field)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from recorder.drivers.base import Block, PacedDriver
from recorder.drivers.settings import FileBoardConfig
from recorder.errors import DriverError


def _load(key: str, path: str) -> tuple[np.ndarray, int]:
    try:
        data, rate = soundfile.read(path, dtype="int16", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise DriverError(f"{key}: cannot read audio from {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise DriverError(f"{key}: {path} holds no audio")
    if data.shape[1] > 1:
        # A stereo test file still taps one line: mix it down rather than drop a side.
        data = np.rint(data.mean(axis=1, keepdims=True)).astype(np.int16)
    return data[:, 0].copy(), int(rate)


class FileDriver(PacedDriver):
    """Each channel plays its file from the start and loops at the end (or goes quiet)."""

    def __init__(self, key: str, config: FileBoardConfig) -> None:
        # A file named for many channels (a load test's thousand lines) is read and kept once.
        first: dict[Path, int] = {}
        for i, p in enumerate(config.files):
            first.setdefault(p.resolve(), i)
        loaded = {path: _load(f"{key}.files[{i}]", str(config.files[i]))
                  for path, i in first.items()}
        rates = {rate for _, rate in loaded.values()}
        if len(rates) != 1:
            listing = ", ".join(f"{p.name}: {r} Hz" for p, (_, r) in loaded.items())
            raise DriverError(f"{key}.files: all files of a board need one sample rate ({listing})")
        super().__init__(key, len(config.files), rates.pop(), config.block_ms, config.realtime)
        # Every distinct track end to end in one array: a block is then one gather for all
        # channels, not a Python step per channel (which cost about a second a second at
        # 4,096 channels).
        paths = list(loaded)
        lengths = [loaded[p][0].shape[0] for p in paths]
        starts = np.cumsum([0, *lengths[:-1]])
        self._tape = np.concatenate([loaded[p][0] for p in paths] + [np.zeros(1, np.int16)])
        index = {path: i for i, path in enumerate(paths)}
        which = [index[p.resolve()] for p in config.files]
        self._start = np.array([starts[w] for w in which], dtype=np.int64)
        self._length = np.array([lengths[w] for w in which], dtype=np.int64)
        self._silence = len(self._tape) - 1  # the zero after the last track
        self._played = 0  # frames played on every channel so far
        self._loop = config.loop

    def next_block(self, frames: int) -> Block:
        at = (self._played + np.arange(frames, dtype=np.int64))[:, None]
        self._played += frames
        if self._loop:
            index = self._start[None, :] + at % self._length[None, :]
        else:
            # Played once: the line goes quiet after the file, like a call that ended.
            index = np.where(at < self._length[None, :], self._start[None, :] + at,
                             self._silence)
        block: Block = self._tape[index]
        return block
