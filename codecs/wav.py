"""PCM 16-bit WAV, streamed to disk while a call is recorded.

The header is written first with zero sizes and patched with the real sizes by ``sync()`` (called
about once a second while recording) and by ``close()``. A process killed mid-call therefore
leaves a file that plays up to the last sync, not a file of unknown length.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.errors import CodecError

HEADER_BYTES = 44
WAVE_FORMAT_PCM = 1
# RIFF sizes are 32-bit. Past 4 GiB (about 74 hours of 8 kHz mono) the header saturates instead
# of wrapping, so players still read the file up to where the header stops counting.
MAX_RIFF_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int, data_bytes: int) -> bytes:
    """The 44-byte canonical header of a PCM16 WAV holding ``data_bytes`` of samples."""
    block_align = 2 * channels
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF", min(MAX_RIFF_SIZE, 36 + data_bytes), b"WAVE",
        b"fmt ", 16, WAVE_FORMAT_PCM, channels, sample_rate, sample_rate * block_align,
        block_align, 16,
        b"data", min(MAX_RIFF_SIZE, data_bytes),
    )


class WavWriter:
    """Appends int16 samples to a PCM16 WAV file it owns."""

    extension = "wav"

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1) -> None:
        self._file = file
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_bytes = 0
        self._synced_bytes = -1
        self.closed = False
        try:
            file.write(wav_header(sample_rate, channels, 0))
        except OSError as exc:
            raise CodecError(f"cannot write WAV header: {exc}") from exc

    @property
    def frames(self) -> int:
        return self.data_bytes // (2 * self.channels)

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append samples: shape ``(frames,)`` for mono or ``(frames, channels)``."""
        data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
        self._file.write(data)
        self.data_bytes += len(data)

    def sync(self) -> None:
        """Make the header describe everything written so far and hand the data to the OS."""
        if self._synced_bytes == self.data_bytes:
            return
        self._file.flush()
        end = self._file.tell()
        self._file.seek(0)
        self._file.write(wav_header(self.sample_rate, self.channels, self.data_bytes))
        self._file.seek(end)
        self._file.flush()
        self._synced_bytes = self.data_bytes

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.sync()
        finally:
            self.closed = True
            self._file.close()
