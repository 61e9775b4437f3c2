"""Audio formats by name (``storage.format`` and export formats): writers, readers, conversion.

One registry, ``FORMATS``, maps each name to its file extension, its writer and the options the
writer takes:

=========  =====  ==========================================================  ===============
name       ext    what                                                        options
=========  =====  ==========================================================  ===============
wav        wav    PCM 16-bit WAV, header kept valid while recording
wav-ulaw   wav    G.711 μ-law in WAV (format tag 7), bit-exact with sox
wav-alaw   wav    G.711 A-law in WAV (format tag 6), bit-exact with sox
mp3        mp3    MPEG Layer III through lameenc, gapless (LAME Info tag)     bitrate, quality
vox        vox    Dialogic/OKI 4-bit ADPCM, raw, bit-exact with sox/libsndfile  rate
cav        cav    export container: the audio plus the recording's metadata   see codecs.cav
=========  =====  ==========================================================  ===============

Every writer follows ``AudioWriter``: created on an open binary file it then owns, fed int16
blocks (``(frames,)`` mono or ``(frames, channels)``) as they are captured, ``sync()`` every half
second of audio (after which a killed process leaves a playable file), ``close()`` at the end.
``frames`` counts input frames, so ``frames / sample_rate`` is the recording's duration in every
format.

``convert`` turns a finished file into another format (export, after-call transcoding);
``read_audio``/``probe`` read any of them back (MP3 through libsndfile).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from recorder.codecs import cav, vox
from recorder.codecs.mp3 import Mp3Writer
from recorder.codecs.stereo import interleave, mix_to_mono
from recorder.codecs.vox import VoxWriter, encode_pending
from recorder.codecs.wav import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    AlawWavWriter,
    UlawWavWriter,
    WavWriter,
    iter_wav_blocks,
    read_wav_info,
)
from recorder.errors import CodecError

logger = logging.getLogger(__name__)

DEFAULT_VOX_RATE = 8000  # a raw .vox does not say its rate; Dialogic's default
BLOCK_FRAMES = 1 << 16  # frames per block when converting files


class AudioWriter(Protocol):
    """What a recording session needs of the file it records into."""

    extension: str
    sample_rate: int
    channels: int
    data_bytes: int

    @property
    def frames(self) -> int: ...

    def write(self, samples: npt.NDArray[np.int16]) -> None:
        """Append a block. The writer may keep it until ``sync()``: do not change it after."""

    def sync(self) -> None: ...

    def fsync(self) -> None:
        """``sync()``, then have the OS put the file on the disk."""

    def close(self, fsync: bool = False) -> None:
        """Close the file (``fsync``: durable first). After a full disk (ENOSPC, EDQUOT) the
        file is cut to what reached it whole, described exactly, and the OSError raised."""


WriterFactory = Callable[..., AudioWriter]


@dataclass(frozen=True)
class Format:
    """One stored or exported format."""

    name: str
    extension: str
    description: str
    writer: WriterFactory | None  # None: not written sample by sample (the CAV container)
    options: frozenset[str] = field(default_factory=frozenset)


FORMATS: dict[str, Format] = {
    f.name: f for f in (
        Format("wav", "wav", "PCM 16-bit WAV", WavWriter),
        Format("wav-ulaw", "wav", "G.711 μ-law WAV", UlawWavWriter),
        Format("wav-alaw", "wav", "G.711 A-law WAV", AlawWavWriter),
        Format("mp3", "mp3", "MP3 (lameenc)", Mp3Writer, frozenset({"bitrate", "quality"})),
        Format("vox", "vox", "Dialogic/OKI ADPCM", VoxWriter, frozenset({"rate"})),
        Format("cav", "cav", "audio and metadata container", None,
               frozenset({"metadata", "password", "audio_format"})),
    )
}


def get_format(fmt: str) -> Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise CodecError(f"unknown audio format {fmt!r} (known: {', '.join(FORMATS)})") from None


def file_extension(fmt: str) -> str:
    return get_format(fmt).extension


def open_writer(fmt: str, file: BinaryIO, sample_rate: int, channels: int = 1,
                **options: Any) -> AudioWriter:
    """A writer of format ``fmt`` streaming into ``file`` (which it then owns and closes).

    ``options`` are the format's own (``bitrate=24`` for mp3, ``rate=6000`` for vox); ``None``
    values mean "the default", so a caller can pass its configuration through unfiltered.
    """
    spec = get_format(fmt)
    if spec.writer is None:
        raise CodecError(f"{fmt} is an export container, not written while recording "
                         f"(see recorder.codecs.cav)")
    given = {k: v for k, v in options.items() if v is not None}
    unknown = set(given) - spec.options
    if unknown:
        raise CodecError(f"{fmt} takes no option {', '.join(sorted(unknown))}"
                         f" (it takes: {', '.join(sorted(spec.options)) or 'none'})")
    return spec.writer(file, sample_rate, channels, **given)


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
        with path.open("rb") as f:
            head = f.read(12)
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return _WAV_FORMATS.get(read_wav_info(path).format_tag, "wav")
    if head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"
    if head.startswith(cav.MAGIC):
        return "cav"
    if path.suffix.lower() == ".vox":
        return "vox"
    raise CodecError(f"{path}: not a WAV, MP3, CAV or .vox file")


def probe(path: Path, fmt: str | None = None, vox_rate: int = DEFAULT_VOX_RATE) -> AudioInfo:
    """Format, rate, channels and length of a stored file."""
    fmt = fmt or guess_format(path)
    if fmt.startswith("wav"):
        info = read_wav_info(path)
        return AudioInfo(path, _WAV_FORMATS[info.format_tag], info.sample_rate, info.channels,
                         info.frames)
    if fmt == "vox":
        return AudioInfo(path, "vox", vox_rate, 1, 2 * path.stat().st_size)
    if fmt == "mp3":
        import soundfile  # noqa: PLC0415 - loading libsndfile is only worth it for MP3

        try:
            sf_info = soundfile.info(str(path))
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise CodecError(f"{path}: unreadable MP3: {exc}") from exc
        return AudioInfo(path, "mp3", sf_info.samplerate, sf_info.channels, sf_info.frames)
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
        with path.open("rb") as f:
            while data := f.read(block_frames // 2 or 1):
                samples, state = vox.decode_codes(vox.unpack_codes(data), state)
                yield samples.reshape(-1, 1)
    except OSError as exc:
        raise CodecError(f"cannot read {path}: {exc}") from exc


def _iter_soundfile(path: Path, block_frames: int) -> Iterator[npt.NDArray[np.int16]]:
    import soundfile  # noqa: PLC0415 - loading libsndfile is only worth it for MP3

    try:
        with soundfile.SoundFile(str(path)) as f:
            while True:
                block = f.read(block_frames, dtype="int16", always_2d=True)
                if not len(block):
                    break
                yield block
    except (RuntimeError, soundfile.LibsndfileError) as exc:
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


__all__ = [
    "FORMATS",
    "AudioInfo",
    "AudioWriter",
    "Format",
    "Mp3Writer",
    "VoxWriter",
    "WavWriter",
    "convert",
    "encode_pending",
    "file_extension",
    "get_format",
    "guess_format",
    "interleave",
    "iter_audio",
    "mix_to_mono",
    "open_writer",
    "probe",
    "read_audio",
]
