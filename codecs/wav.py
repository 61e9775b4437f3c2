"""WAV files: PCM 16-bit and G.711 (μ-law, A-law), streamed to disk while a call is recorded.

The header is written first with zero sizes and patched with the real sizes by ``sync()`` (called
every half second of audio while recording) and by ``close()``. A process killed mid-call
therefore leaves a file that plays up to the last sync, not a file of unknown length. Blocks
written between syncs are kept and encoded together at the sync (or once half a second's worth
is waiting): one numpy call and one ``write`` per half second instead of one per 50 ms block,
most of the cost at thousands of channels. Players stop at the header's count anyway, so a
crash loses nothing more than before.

PCM uses the canonical 44-byte header. G.711 (format tags 7 and 6) uses an 18-byte ``fmt `` chunk
and a ``fact`` chunk holding the frame count, as the RIFF rules ask of every non-PCM format and as
sox writes it: 58 bytes, all of them rewritten by each sync.

A full disk (ENOSPC, or EDQUOT for a quota) is handled by the core the writers share
(``recorder.codecs.buffered``): ``close()`` cuts the file to the whole frames that reached the
disk and makes the header count exactly those, then raises the error.

``read_wav_info``/``iter_wav_blocks`` read these files back, including one left by a crash: audio
written after the last sync (present in the file, not yet counted by the header) is kept.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.codecs import g711
from recorder.codecs.buffered import StreamingWriter, rewrite_at_start
from recorder.codecs.stored import open_stored
from recorder.errors import CodecError

logger = logging.getLogger(__name__)

HEADER_BYTES = 44
G711_HEADER_BYTES = 58
WAVE_FORMAT_PCM = 1
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
# RIFF sizes are 32-bit. Past 4 GiB (about 74 hours of 8 kHz mono) the header saturates instead
# of wrapping, so players still read the file up to where the header stops counting.
MAX_RIFF_SIZE = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int, data_bytes: int,
               format_tag: int = WAVE_FORMAT_PCM) -> bytes:
    """The header of a WAV holding ``data_bytes`` of samples: 44 bytes for PCM16, 58 for G.711."""
    if format_tag == WAVE_FORMAT_PCM:
        block_align = 2 * channels
        return struct.pack(
            "<4sI4s4sIHHIIHH4sI",
            b"RIFF", min(MAX_RIFF_SIZE, 36 + data_bytes), b"WAVE",
            b"fmt ", 16, WAVE_FORMAT_PCM, channels, sample_rate, sample_rate * block_align,
            block_align, 16,
            b"data", min(MAX_RIFF_SIZE, data_bytes),
        )
    block_align = channels  # one 8-bit code per channel
    return struct.pack(
        "<4sI4s4sIHHIIHHH4sII4sI",
        b"RIFF", min(MAX_RIFF_SIZE, G711_HEADER_BYTES - 8 + data_bytes), b"WAVE",
        b"fmt ", 18, format_tag, channels, sample_rate, sample_rate * block_align,
        block_align, 8, 0,
        b"fact", 4, min(MAX_RIFF_SIZE, data_bytes // block_align),
        b"data", min(MAX_RIFF_SIZE, data_bytes),
    )


class WavWriter(StreamingWriter):
    """Appends int16 samples to a PCM16 WAV file it owns.

    After a full disk, ``close()`` cuts the file to the whole frames that reached it and makes
    the header count exactly those (``frames`` and ``data_bytes`` then describe the file).
    """

    extension = "wav"
    format_tag = WAVE_FORMAT_PCM
    bytes_per_sample = 2

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1) -> None:
        # Half a second: what a killed process can lose of what was handed to this writer.
        super().__init__(file, sample_rate, channels, max(1, sample_rate // 2))
        self.data_bytes = 0  # in the file, or waiting in _pending to be encoded into it
        self._synced_bytes = -1
        header = self._header()
        self._header_bytes = len(header)
        # Flushed at once, so the file is a valid (empty) WAV from its first moment: a reader,
        # or recovery after a crash in the first second, never meets an empty file.
        self._begin(header, "WAV header", flush=True)

    def _header(self) -> bytes:
        return wav_header(self.sample_rate, self.channels, self.data_bytes, self.format_tag)

    def _encode(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.generic]:
        return np.ascontiguousarray(samples, dtype="<i2")  # a no-op on little-endian machines

    @property
    def frames(self) -> int:
        return self.data_bytes // self._block_align

    @property
    def _block_align(self) -> int:
        return self.bytes_per_sample * self.channels

    def _accept(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        block = np.asarray(samples, dtype=np.int16)
        self.data_bytes += block.shape[0] * self.channels * self.bytes_per_sample
        return block

    def _encode_pending(self) -> None:
        if not self._pending:
            return
        self._file.write(self._encode(self._take_pending()).data)  # the buffer, not a copy

    def _sync(self) -> None:
        """Make the header describe everything written so far and hand the data to the OS."""
        if self._synced_bytes == self.data_bytes:
            return
        self._encode_pending()
        self._file.flush()
        rewrite_at_start(self._file, self._header())
        self._synced_bytes = self.data_bytes

    def _finish(self, fsync: bool) -> None:
        if fsync:
            self.fsync()
        else:
            self.sync()

    def _describe_kept(self, kept: int, plain: BinaryIO) -> tuple[int, bytes | None]:
        """The whole frames of a file cut to ``kept`` bytes, and the header counting them."""
        on_disk = max(0, kept - self._header_bytes)
        self.data_bytes = on_disk - on_disk % self._block_align
        return self._header_bytes + self.data_bytes, self._header()

    def _keep_on_disk(self, fd: int) -> str:
        """Whole frames, counted by the header, of what is really on disk."""
        on_disk = max(0, os.fstat(fd).st_size - self._header_bytes)
        self.data_bytes = on_disk - on_disk % self._block_align
        os.ftruncate(fd, self._header_bytes + self.data_bytes)  # a partly written frame goes
        os.pwrite(fd, self._header(), 0)  # bytes already allocated: no room needed
        return f"{self.frames} frames"


class G711WavWriter(WavWriter):
    """Appends int16 samples to a G.711 WAV (``law`` "ulaw" or "alaw"), one byte per sample."""

    bytes_per_sample = 1

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1,
                 law: g711.Law = "ulaw") -> None:
        self.law: g711.Law = law
        self.format_tag = g711.FORMAT_TAGS[law]
        super().__init__(file, sample_rate, channels)

    def _encode(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.generic]:
        return g711.encode(samples, self.law)


class UlawWavWriter(G711WavWriter):
    """μ-law WAV (format tag 7)."""

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1) -> None:
        super().__init__(file, sample_rate, channels, law="ulaw")


class AlawWavWriter(G711WavWriter):
    """A-law WAV (format tag 6)."""

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1) -> None:
        super().__init__(file, sample_rate, channels, law="alaw")


@dataclass(frozen=True)
class WavInfo:
    """Where a WAV's samples are and how to read them."""

    path: Path
    format_tag: int
    sample_rate: int
    channels: int
    data_offset: int
    data_bytes: int  # whole frames only, including any the header did not count yet

    @property
    def block_align(self) -> int:
        return self.channels * (2 if self.format_tag == WAVE_FORMAT_PCM else 1)

    @property
    def frames(self) -> int:
        return self.data_bytes // self.block_align

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


_SUPPORTED_TAGS = {WAVE_FORMAT_PCM: "PCM", WAVE_FORMAT_MULAW: "ulaw", WAVE_FORMAT_ALAW: "alaw"}


def read_wav_info(path: Path, opened: BinaryIO | None = None) -> WavInfo:
    """Parse ``path``'s chunks (read from ``opened`` when given, else from ``path`` opened
    through ``recorder.codecs.stored``): PCM16, μ-law or A-law, any rate and channel count.

    A file longer than both its RIFF size and its data chunk say is what a crash between two
    syncs leaves: the bytes after the counted data are samples, so they are counted too (whole
    frames only).
    """
    try:
        with contextlib.nullcontext(opened) if opened is not None else open_stored(path) as f:
            file_size = f.seek(0, 2)
            f.seek(0)
            riff = f.read(12)
            if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
                raise CodecError(f"{path}: not a RIFF/WAVE file")
            riff_end = 8 + struct.unpack("<I", riff[4:8])[0]
            fmt: tuple[int, int, int, int] | None = None
            pos = 12
            while pos + 8 <= file_size:
                f.seek(pos)
                chunk_id, size = struct.unpack("<4sI", f.read(8))
                body = pos + 8
                if chunk_id == b"fmt ":
                    raw = f.read(min(size, 16))
                    if len(raw) < 16:
                        raise CodecError(f"{path}: short fmt chunk")
                    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", raw)
                    fmt = (tag, channels, rate, bits)
                elif chunk_id == b"data":
                    if fmt is None:
                        raise CodecError(f"{path}: data chunk before fmt chunk")
                    tag, channels, rate, bits = fmt
                    if tag not in _SUPPORTED_TAGS or channels < 1 or rate < 1 or (
                            bits != (16 if tag == WAVE_FORMAT_PCM else 8)):
                        raise CodecError(
                            f"{path}: unsupported WAV encoding (tag {tag}, {bits} bits)")
                    available = file_size - body
                    data_bytes = min(size, available)
                    if available > size and riff_end < file_size:
                        # The header counts fewer bytes than the file holds and the RIFF size
                        # does not cover them either: both were last written by a sync before
                        # a crash, and the bytes after are samples written since.
                        logger.info("%s: %d bytes after the last header sync kept",
                                    path, available - size)
                        data_bytes = available
                    info = WavInfo(path, tag, rate, channels, body, 0)
                    usable = data_bytes - data_bytes % info.block_align
                    return WavInfo(path, tag, rate, channels, body, usable)
                pos = body + size + (size & 1)
            raise CodecError(f"{path}: no data chunk")
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc
    except struct.error as exc:
        raise CodecError(f"{path}: truncated WAV header") from exc


def iter_wav_blocks(info: WavInfo, block_frames: int = 1 << 16,
                    ) -> Iterator[npt.NDArray[np.int16]]:
    """The file's samples as int16 blocks of up to ``block_frames`` frames, shape (n, channels)."""
    remaining = info.data_bytes
    step = block_frames * info.block_align
    try:
        with open_stored(info.path) as f:
            f.seek(info.data_offset)
            while remaining > 0:
                raw = f.read(min(step, remaining))
                if not raw:
                    break
                raw = raw[:len(raw) - len(raw) % info.block_align]
                remaining -= len(raw)
                if info.format_tag == WAVE_FORMAT_PCM:
                    samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
                else:
                    law: g711.Law = "ulaw" if info.format_tag == WAVE_FORMAT_MULAW else "alaw"
                    samples = g711.decode(np.frombuffer(raw, dtype=np.uint8), law)
                yield samples.reshape(-1, info.channels)
    except OSError as exc:
        raise CodecError(f"cannot read {info.path}: {exc}") from exc
