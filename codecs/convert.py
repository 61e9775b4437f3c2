"""Stored audio read back, and turned into another format: export, after-call transcoding,
blackouts in finished files. ``probe``/``iter_audio``/``read_audio`` read every stored format
(MP3 through libsndfile); ``convert`` writes one or several files as another format.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from recorder.codecs import vox
from recorder.codecs.formats import AudioWriter, open_writer
from recorder.codecs.stored import open_stored
from recorder.codecs.wav import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    iter_wav_blocks,
    read_wav_info,
)
from recorder.errors import CodecError

DEFAULT_VOX_RATE = 8000  # a raw .vox does not say its rate; Dialogic's default
BLOCK_FRAMES = 1 << 16  # frames per block when converting files


@dataclass(frozen=True)
class AudioInfo:
    """What a stored audio file holds."""

    path: Path
    format: str
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


_WAV_FORMATS = {WAVE_FORMAT_PCM: "wav", WAVE_FORMAT_MULAW: "wav-ulaw", WAVE_FORMAT_ALAW: "wav-alaw"}


def guess_format(path: Path) -> str:
    """The format of an existing file: from its first bytes, else from its extension."""
    try:
        with open_stored(path) as f:
            head = f.read(12)
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _WAV_FORMATS.get(read_wav_info(path).format_tag, "wav")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if path.suffix.lower() == ".vox":
        return "vox"
    raise CodecError(f"{path}: not a WAV, MP3 or .vox file")


def probe(path: Path, fmt: str | None = None, vox_rate: int = DEFAULT_VOX_RATE) -> AudioInfo:
    """Format, rate, channels and length of a stored file."""
    fmt = fmt or guess_format(path)
    if fmt.startswith("wav"):
        info = read_wav_info(path)
        return AudioInfo(path, _WAV_FORMATS[info.format_tag], info.sample_rate, info.channels,
                         info.frames)
    if fmt == "vox":
        try:
            with open_stored(path) as f:  # an encrypted one's plain size
                return AudioInfo(path, "vox", vox_rate, 1, 2 * f.seek(0, 2))
        except OSError as exc:
            raise CodecError(f"cannot read {path}: {exc}") from exc
    if fmt == "mp3":
        import soundfile  # noqa: PLC0415 - loading libsndfile is only worth it for MP3

        try:
            # libsndfile reads through the opened file: an encrypted MP3 decrypted as it goes.
            with open_stored(path) as f, soundfile.SoundFile(f) as sf_info:
                return AudioInfo(path, "mp3", sf_info.samplerate, sf_info.channels,
                                 sf_info.frames)
        except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
            raise CodecError(f"{path}: unreadable MP3: {exc}") from exc
    raise CodecError(f"{path}: cannot read {fmt} as audio")


def iter_audio(path: Path, fmt: str | None = None, vox_rate: int = DEFAULT_VOX_RATE,
               block_frames: int = BLOCK_FRAMES,
               ) -> tuple[AudioInfo, Iterator[npt.NDArray[np.int16]]]:
    """A stored file's description and its samples as (frames, channels) int16 blocks."""
    info = probe(path, fmt, vox_rate)
    if info.format.startswith("wav"):
        return info, iter_wav_blocks(read_wav_info(path), block_frames)
    if info.format == "vox":
        return info, _iter_vox(path, block_frames)
    return info, _iter_soundfile(path, block_frames)


def _iter_vox(path: Path, block_frames: int) -> Iterator[npt.NDArray[np.int16]]:
    state = vox.INITIAL_STATE
    try:
        with open_stored(path) as f:
            while data := f.read(block_frames // 2 or 1):
                samples, state = vox.decode_codes(vox.unpack_codes(data), state)
                yield samples.reshape(-1, 1)
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc


def _iter_soundfile(path: Path, block_frames: int) -> Iterator[npt.NDArray[np.int16]]:
    import soundfile  # noqa: PLC0415 - loading libsndfile is only worth it for MP3

    try:
        with open_stored(path) as opened, soundfile.SoundFile(opened) as f:
            while True:
                block = f.read(block_frames, dtype="int16", always_2d=True)
                if not len(block):
                    break
                yield block
    except (RuntimeError, soundfile.LibsndfileError, OSError) as exc:
        raise CodecError(f"{path}: unreadable: {exc}") from exc


def read_audio(path: Path, fmt: str | None = None, vox_rate: int = DEFAULT_VOX_RATE,
               ) -> tuple[npt.NDArray[np.int16], int]:
    """A whole stored file: samples (frames, channels) and sample rate."""
    info, blocks = iter_audio(path, fmt, vox_rate)
    parts = list(blocks)
    if not parts:
        return np.zeros((0, info.channels), dtype=np.int16), info.sample_rate
    return np.concatenate(parts), info.sample_rate


def convert(sources: Path | Sequence[Path], file: BinaryIO, fmt: str,
            source_format: str | None = None, vox_rate: int = DEFAULT_VOX_RATE,
            **options: Any) -> AudioWriter:
    """Write ``sources`` (one file, or several played one after the other) to ``file`` as ``fmt``.

    ``file`` is owned and closed like a writer's; the closed writer is returned (its ``frames``,
    ``data_bytes``). Several sources must share rate and channel count.
    """
    paths = [sources] if isinstance(sources, Path) else list(sources)
    if not paths:
        file.close()
        raise CodecError("nothing to convert")
    opened = [iter_audio(p, source_format, vox_rate) for p in paths]
    first = opened[0][0]
    for info, _ in opened[1:]:
        if (info.sample_rate, info.channels) != (first.sample_rate, first.channels):
            file.close()
            raise CodecError(f"{info.path} is {info.sample_rate} Hz, {info.channels} ch, "
                             f"{first.path} {first.sample_rate} Hz, {first.channels} ch: "
                             f"cannot join them")
    try:
        writer = open_writer(fmt, file, first.sample_rate, first.channels, **options)
    except BaseException:
        file.close()
        raise
    try:
        for _, blocks in opened:
            for block in blocks:
                writer.write(block if first.channels > 1 else block[:, 0])
    finally:
        writer.close()
    return writer
