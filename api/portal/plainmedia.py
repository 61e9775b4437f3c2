"""An encrypted recording played or downloaded from the portal: its plain bytes, decrypted
chunk by chunk as they are sent, with HTTP Range (a seek decrypts only the chunks it covers;
docs/encryption.md). A G.711 WAV is played as the PCM WAV a browser plays, converted as it is
sent (``G711AsPcm``: byte i of its samples is bytes 2i and 2i+1 of the PCM's, so a Range maps
straight back) rather than through a rendition on disk. Nothing of it is written to disk.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

import numpy as np

from recorder.api.transport.plainmedia import PlainMediaResponse, Run, byte_range
from recorder.codecs import g711
from recorder.codecs.stored import open_stored
from recorder.codecs.wav import (
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    WavInfo,
    read_wav_info,
    wav_header,
)


class G711AsPcm(io.RawIOBase):
    """A G.711 WAV (``source``, plain, described by ``info``) read as a PCM16 WAV."""

    def __init__(self, source: BinaryIO, info: WavInfo) -> None:
        super().__init__()
        self._source = source
        self._info = info
        self._law: g711.Law = "ulaw" if info.format_tag == WAVE_FORMAT_MULAW else "alaw"
        self._header = wav_header(info.sample_rate, info.channels, 2 * info.data_bytes)
        self.size = len(self._header) + 2 * info.data_bytes
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = {0: 0, 1: self._pos, 2: self.size}[whence] + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = self.size if size < 0 else min(self.size, self._pos + size)
        out = b""
        if self._pos < len(self._header):
            out = self._header[self._pos:end]
            self._pos += len(out)
        if self._pos < end:
            first = (self._pos - len(self._header)) // 2
            last = (end - len(self._header) + 1) // 2
            self._source.seek(self._info.data_offset + first)
            codes = np.frombuffer(self._source.read(last - first), dtype=np.uint8)
            pcm = g711.decode(codes, self._law).astype("<i2").tobytes()
            skip = (self._pos - len(self._header)) % 2
            piece = pcm[skip:skip + end - self._pos]
            out += piece
            self._pos += len(piece)
        return out

    def close(self) -> None:
        if not self.closed:
            self._source.close()
        super().close()


def open_played(path: Path) -> BinaryIO:
    """An encrypted WAV as a browser plays it: its plain bytes, a G.711 one as PCM."""
    plain = open_stored(path)
    try:
        info = read_wav_info(path, plain)
    except BaseException:
        plain.close()
        raise
    if info.format_tag == WAVE_FORMAT_PCM:
        return plain
    return G711AsPcm(plain, info)  # type: ignore[return-value]


async def open_plain_media(path: Path, headers: dict[str, str], run: Run, *,
                           played: bool = False, temporary: Path | None = None
                           ) -> PlainMediaResponse:
    """The response for ``path``'s plain bytes (``played``: as a browser plays them);
    opening it (on a worker) checks its key and its last chunk, so a file that cannot be
    read is refused before any header is sent (OSError, CodecError). ``temporary`` (a
    download made for this answer) is deleted once sent."""
    file: BinaryIO = await run(lambda: open_played(path) if played else open_stored(path))
    return PlainMediaResponse(file, headers, run, temporary=temporary)




__all__ = [
    "G711AsPcm",
    "PlainMediaResponse",
    "Run",
    "byte_range",
    "open_plain_media",
    "open_played",
]
