"""Audio writers keyed by the stored format's name (``storage.format`` and export formats)."""

from __future__ import annotations

from typing import BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from recorder.codecs.wav import WavWriter


class AudioWriter(Protocol):
    """What a recording session needs of the file it records into."""

    extension: str
    sample_rate: int
    channels: int
    data_bytes: int

    @property
    def frames(self) -> int: ...

    def write(self, samples: npt.NDArray[np.int16]) -> None: ...

    def sync(self) -> None: ...

    def close(self) -> None: ...


WRITERS: dict[str, type[WavWriter]] = {"wav": WavWriter}


def file_extension(fmt: str) -> str:
    return WRITERS[fmt].extension


def open_writer(fmt: str, file: BinaryIO, sample_rate: int, channels: int = 1) -> AudioWriter:
    """A writer of format ``fmt`` streaming into ``file`` (which it then owns and closes)."""
    try:
        cls = WRITERS[fmt]
    except KeyError:
        raise ValueError(f"unknown audio format {fmt!r} (known: {', '.join(WRITERS)})") from None
    return cls(file, sample_rate, channels)


__all__ = ["WRITERS", "AudioWriter", "WavWriter", "file_extension", "open_writer"]
