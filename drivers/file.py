"""Replays one audio file per channel, looped or once, paced in real time (a test line for the
field)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from recorder.config.boards import BoardCommon
from recorder.config.setting import setting
from recorder.drivers.base import Block, PacedDriver
from recorder.errors import DriverError


@dataclass(frozen=True, kw_only=True)
class FileBoardConfig(BoardCommon):
    """Replays one audio file per channel, looped, paced in real time."""

    driver: str = setting("file", "board driver")
    files: tuple[Path, ...] = setting(doc="one audio file per channel (WAV, FLAC, ...)",
                                      example=("/srv/test-lines/a.wav",))
    block_ms: int = setting(20, "length of one capture block", min=5, max=200)
    loop: bool = setting(True, "start the files again at their end; false: silence after")
    realtime: bool = setting(True, "false: replay as fast as the capture core takes it")

    def checked(self, where: str, problems: list[str]) -> FileBoardConfig:
        if len(self.files) != len(self.devices):
            problems.append(f"{where}.devices: {len(self.devices)} device(s) for "
                            f"{len(self.files)} file(s); list one DEVICEID per file")
        for i, path in enumerate(self.files):
            if not path.is_file():
                problems.append(f"{where}.files[{i}]: no such file: {path}")
        return self


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
    """Each channel plays its file from the start and loops at the end."""

    def __init__(self, key: str, config: FileBoardConfig) -> None:
        loaded = [_load(f"{key}.files[{i}]", str(p)) for i, p in enumerate(config.files)]
        rates = {rate for _, rate in loaded}
        if len(rates) != 1:
            listing = ", ".join(f"{p.name}: {r} Hz" for p, (_, r) in zip(config.files, loaded,
                                                                          strict=True))
            raise DriverError(f"{key}.files: all files of a board need one sample rate ({listing})")
        super().__init__(key, len(loaded), rates.pop(), config.block_ms, config.realtime)
        self._tracks = [samples for samples, _ in loaded]
        self._pos = [0] * len(loaded)
        self._loop = config.loop

    def next_block(self, frames: int) -> Block:
        block = np.zeros((frames, self.channels), dtype=np.int16)
        for c, track in enumerate(self._tracks):
            if self._loop:
                idx = (self._pos[c] + np.arange(frames)) % track.shape[0]
                block[:, c] = track[idx]
                self._pos[c] = (self._pos[c] + frames) % track.shape[0]
            else:
                # Played once: the line goes quiet after the file, like a call that ended.
                part = track[self._pos[c]:self._pos[c] + frames]
                block[: part.shape[0], c] = part
                self._pos[c] += part.shape[0]
        return block
