"""MP3 through lameenc (LAME 3.100), with a LAME "Info" tag so decoders play the exact length.

An MP3 stream starts with the encoder's delay (576 samples for LAME) and ends padded to a whole
frame; without being told, a decoder plays both, 0.1 to 0.2 s too much at 8 kHz. LAME's own tag
frame says how much to trim, but lameenc cannot write it (it needs the finished file), so this
writer does: the first frame of the file is an Info frame (a silent frame carrying the Xing
fields and LAME extension), written as a placeholder and rewritten by ``sync()`` and ``close()``
like a WAV header. ffmpeg, mpg123 and libsndfile then decode exactly the samples written.

Defaults suit 8 kHz telephone speech: 16 kbit/s per channel CBR (MPEG-2.5 Layer III at 8 kHz,
about 7 MB per hour) and LAME quality 5. A higher quality number is faster, not better.

lameenc releases the GIL while encoding, so writers in different threads encode in parallel.
Blocks are handed to it half a second's worth at a time (or at ``sync()``), which costs less
than one call per 50 ms block; LAME itself holds back a frame or two (about 0.15 s at 8 kHz).

A full disk (ENOSPC, EDQUOT) is handled by ``recorder.codecs.buffered``: ``close()`` cuts the file
after the last MPEG frame that reached the disk whole and rewrites the Info tag for exactly those
frames, so decoders play what is there and nothing more.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import lameenc
import numpy as np
import numpy.typing as npt

from recorder.codecs.buffered import StreamingWriter, fsync_file, rewrite_at_start
from recorder.errors import CodecError

logger = logging.getLogger(__name__)

DEFAULT_KBPS_PER_CHANNEL = 16
DEFAULT_QUALITY = 5
ENCODER_DELAY = 576  # samples LAME 3.100 puts before the first input sample
# A decoder's own delay (528 + 1, as mpg123 and ffmpeg count it): the last this many samples of
# a stream are only complete once a further frame is decoded, so a file cut after its last
# whole frame plays that many fewer, and its tag says so as end padding.
DECODER_DELAY = 529
ENCODER_NAME = b"LAME3.100"

_MPEG1, _MPEG2, _MPEG25 = 3, 2, 0  # version bits of the frame header
_RATES = {  # sample rate -> (version bits, rate index)
    44100: (_MPEG1, 0), 48000: (_MPEG1, 1), 32000: (_MPEG1, 2),
    22050: (_MPEG2, 0), 24000: (_MPEG2, 1), 16000: (_MPEG2, 2),
    11025: (_MPEG25, 0), 12000: (_MPEG25, 1), 8000: (_MPEG25, 2),
}
_BITRATES = {  # Layer III bit rates by header index, kbit/s
    _MPEG1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    _MPEG2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MIN_TAG_FRAME = 192  # LAME's own tag frames are never shorter; some readers expect as much
_XING_FLAGS = 0x0F  # frames, bytes, TOC and quality fields present


@dataclass(frozen=True)
class _Layout:
    version: int
    rate_index: int
    mono: bool

    @property
    def bitrates(self) -> tuple[int, ...]:
        return _BITRATES[_MPEG1 if self.version == _MPEG1 else _MPEG2]

    @property
    def samples_per_frame(self) -> int:
        return 1152 if self.version == _MPEG1 else 576

    @property
    def side_info(self) -> int:
        if self.version == _MPEG1:
            return 17 if self.mono else 32
        return 9 if self.mono else 17

    def frame_bytes(self, kbps: int, sample_rate: int, padding: int) -> int:
        coefficient = 144000 if self.version == _MPEG1 else 72000
        return coefficient * kbps // sample_rate + padding


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()
# A CBR file's table of contents: byte offset proportional to time.
_TOC = bytes(min(255, i * 256 // 100) for i in range(100))


def _crc16(data: bytes, crc: int = 0) -> int:
    """CRC-16/ARC (reflected polynomial 0xA001), the checksum of LAME's tag."""
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


class _FrameCounter:
    """Counts the MPEG frames in a byte stream handed over in arbitrary pieces."""

    def __init__(self, layout: _Layout, sample_rate: int) -> None:
        self._layout = layout
        self._rate = sample_rate
        self._skip = 0  # bytes left of the current frame
        self._head = b""  # a frame header split across pieces
        self.frames = 0

    def feed(self, data: bytes | bytearray) -> None:
        pos = 0
        while pos < len(data):
            if self._skip:
                step = min(self._skip, len(data) - pos)
                self._skip -= step
                pos += step
                continue
            need = 4 - len(self._head)
            self._head += bytes(data[pos:pos + need])
            pos += need
            if len(self._head) < 4:
                return
            h = int.from_bytes(self._head, "big")
            self._head = b""
            if h >> 21 != 0x7FF:
                raise CodecError(f"lameenc produced a byte stream out of frame sync ({h:08x})")
            kbps = self._layout.bitrates[(h >> 12) & 15]
            self._skip = self._layout.frame_bytes(kbps, self._rate, (h >> 9) & 1) - 4
            self.frames += 1


def tag_frame_bytes(sample_rate: int, channels: int) -> int:
    """The bytes of the Info tag frame ``Mp3Writer`` starts its file with and rewrites at every
    sync (an encrypted MP3 seals them as a chunk of their own); CodecError for settings the
    writer refuses."""
    if sample_rate not in _RATES:
        raise CodecError(f"MP3 cannot carry {sample_rate} Hz")
    version, rate_index = _RATES[sample_rate]
    return _tag_length(_Layout(version, rate_index, channels == 1), sample_rate)[1]


def _tag_length(layout: _Layout, sample_rate: int) -> tuple[int, int]:
    """(bit rate index, bytes) of the tag frame: the smallest frame LAME's tag fits in."""
    need = 4 + layout.side_info + 120 + 36
    index = next(i for i, kbps in enumerate(layout.bitrates)
                 if i and layout.frame_bytes(kbps, sample_rate, 0) >= max(need, _MIN_TAG_FRAME))
    return index, layout.frame_bytes(layout.bitrates[index], sample_rate, 0)


class Mp3Writer(StreamingWriter):
    """Encodes int16 samples into an MP3 file it owns: CBR ``bitrate`` kbit/s, LAME ``quality``.

    After a full disk, ``close()`` cuts the file after its last whole frame and rewrites the tag
    for those frames (``frames`` is then what a decoder plays).
    """

    extension = "mp3"

    def __init__(self, file: BinaryIO, sample_rate: int, channels: int = 1,
                 bitrate: int | None = None, quality: int = DEFAULT_QUALITY) -> None:
        if sample_rate not in _RATES:
            raise CodecError(f"MP3 cannot carry {sample_rate} Hz (rates: "
                             f"{', '.join(str(r) for r in sorted(_RATES))})")
        if channels not in (1, 2):
            raise CodecError(f"MP3 takes 1 or 2 channels, not {channels}")
        version, rate_index = _RATES[sample_rate]
        self._layout = _Layout(version, rate_index, channels == 1)
        kbps = bitrate if bitrate is not None else DEFAULT_KBPS_PER_CHANNEL * channels
        if kbps not in self._layout.bitrates[1:]:
            raise CodecError(f"MP3 at {sample_rate} Hz takes bit rates "
                             f"{', '.join(str(b) for b in self._layout.bitrates[1:])} kbit/s, "
                             f"not {kbps}")
        if not 0 <= quality <= 9:
            raise CodecError(f"LAME quality is 0 (slowest) to 9 (fastest), not {quality}")
        super().__init__(file, sample_rate, channels, sample_rate // 2)
        self.bitrate = kbps
        self.quality = quality
        self._frames = 0
        self._encoder = lameenc.Encoder()
        try:
            self._encoder.set_in_sample_rate(sample_rate)
            self._encoder.set_out_sample_rate(sample_rate)  # LAME would otherwise pick one
            self._encoder.set_channels(channels)
            self._encoder.set_bit_rate(kbps)
            self._encoder.set_quality(quality)
            self._encoder.silence()
        except RuntimeError as exc:
            raise CodecError(f"lameenc refused the settings: {exc}") from exc
        self._counter = _FrameCounter(self._layout, sample_rate)
        self._tag_bytes = len(self._tag(0, 0, 0))
        self.data_bytes = self._tag_bytes
        self._synced = (-1, -1)
        self._begin(self._tag(0, 0, 0), "MP3 tag frame")

    @property
    def frames(self) -> int:
        return self._frames

    def _accept(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        block = np.asarray(samples, dtype="<i2")
        self._frames += block.shape[0]
        return block

    def _encode_pending(self) -> None:
        if not self._pending:
            return
        pcm = self._take_pending()
        try:
            out = self._encoder.encode(pcm)  # takes the array's buffer as it is
        except RuntimeError as exc:
            raise CodecError(f"lameenc failed: {exc}") from exc
        self._put(out)

    def _put(self, data: bytes | bytearray) -> None:
        if data:
            self._counter.feed(data)
            self._file.write(data)
            self.data_bytes += len(data)

    def _padding(self, finished: bool) -> int:
        if not finished:
            return 0  # frames still inside LAME count for nothing yet
        total = self._counter.frames * self._layout.samples_per_frame
        return max(0, min(4095, total - ENCODER_DELAY - self._frames))

    def _tag(self, frames: int, size: int, padding: int) -> bytes:
        """The Info frame: Xing fields (frames, bytes, TOC, quality) and the LAME extension."""
        layout = self._layout
        kbps_index, length = _tag_length(layout, self.sample_rate)
        header = (0x7FF << 21 | layout.version << 19 | 1 << 17 | 1 << 16  # Layer III, no CRC
                  | kbps_index << 12 | layout.rate_index << 10
                  | (3 if layout.mono else 1) << 6)  # mono, or joint stereo as LAME encodes
        xing = b"Info" + struct.pack(">III", _XING_FLAGS, frames, size) + _TOC + struct.pack(
            ">I", 100 - 10 * self.quality)
        lame = (ENCODER_NAME
                + bytes([0x01, 0])  # tag revision 0 / CBR; lowpass unknown
                + bytes(8)  # ReplayGain: none
                + bytes([0, min(255, self.bitrate)])  # encoding flags; bit rate
                + ((ENCODER_DELAY << 12) | padding).to_bytes(3, "big")
                + bytes(4)  # misc, MP3 gain, preset/surround
                + struct.pack(">I", size)
                + bytes(2))  # music CRC: not computed (no decoder checks it)
        frame = bytearray(length)
        frame[0:4] = header.to_bytes(4, "big")
        body = xing + lame
        start = 4 + layout.side_info
        frame[start:start + len(body)] = body
        crc_at = start + len(body)
        # LAME's CRC covers everything before it: 190 bytes for MPEG-1 stereo, fewer otherwise.
        frame[crc_at:crc_at + 2] = _crc16(bytes(frame[:crc_at])).to_bytes(2, "big")
        return bytes(frame)

    def _rewrite_tag(self, finished: bool) -> None:
        key = (self._counter.frames, self._padding(finished))
        self._file.flush()
        if key == self._synced:
            return
        rewrite_at_start(self._file, self._tag(self._counter.frames, self.data_bytes, key[1]))
        self._synced = key

    def _sync(self) -> None:
        """Make the tag describe every frame written so far and hand the data to the OS."""
        self._encode_pending()
        self._rewrite_tag(finished=False)

    def _finish(self, fsync: bool) -> None:
        self._encode_pending()
        if self._frames:
            try:
                self._put(self._encoder.flush())
            except RuntimeError as exc:
                raise CodecError(f"lameenc failed to flush: {exc}") from exc
        self._rewrite_tag(finished=True)
        if fsync:
            fsync_file(self._file)

    def _keep_on_disk(self, fd: int) -> str | None:
        """Keep the frames that reached the disk whole; the tag counts exactly those."""
        size = os.fstat(fd).st_size
        if size < self._tag_bytes:
            # Not even the tag frame made it: an empty file is what there is to keep.
            os.ftruncate(fd, 0)
            self._counter.frames = self._frames = self.data_bytes = 0
            return None
        # The writer's descriptor is write-only: the frames are read through a second one.
        name = getattr(self._file, "name", None)
        source = name if isinstance(name, str) else f"/proc/self/fd/{fd}"
        with open(source, "rb") as reading:
            end, tag = self._describe_kept(size, reading)
        os.ftruncate(fd, end)  # a frame cut off part-way goes
        os.pwrite(fd, tag, 0)  # allocated bytes: no room needed
        return f"{self._counter.frames} MPEG frames"

    def _describe_kept(self, kept: int, plain: BinaryIO) -> tuple[int, bytes]:
        """The whole frames of a file cut to ``kept`` bytes (read from ``plain``) and the
        tag counting them; the writer's counts then describe them."""
        frames, end = self._whole_frames(plain, kept)
        self._counter.frames = frames
        self.data_bytes = end
        # What a decoder plays of them: the encoder's delay is trimmed at the start, and at
        # the end what the missing next frame would have completed.
        self._frames = min(self._frames, max(
            0, frames * self._layout.samples_per_frame - ENCODER_DELAY - DECODER_DELAY))
        return end, self._tag(frames, end, DECODER_DELAY)

    def _whole_frames(self, reading: BinaryIO, size: int) -> tuple[int, int]:
        """(frames, end): the MPEG frames after the tag frame that lie wholly in ``size``."""
        layout = self._layout
        pos, frames = self._tag_bytes, 0
        while pos + 4 <= size:
            reading.seek(pos)
            head = reading.read(4)
            h = int.from_bytes(head, "big")
            if len(head) < 4 or h >> 21 != 0x7FF:
                break
            length = layout.frame_bytes(layout.bitrates[(h >> 12) & 15], self.sample_rate,
                                        (h >> 9) & 1)
            if pos + length > size:
                break
            pos += length
            frames += 1
        return frames, pos
