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
=========  =====  ==========================================================  ===============

Every writer follows ``AudioWriter``: created on an open binary file it then owns, fed int16
blocks (``(frames,)`` mono or ``(frames, channels)``) as they are captured, ``sync()`` every half
second of audio (after which a killed process leaves a playable file), ``close()`` at the end.
``frames`` counts input frames, so ``frames / sample_rate`` is the recording's duration in every
format.

``recorder.codecs.convert`` reads any of them back and turns one into another.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np
import numpy.typing as npt

from recorder.codecs.mp3 import DEFAULT_KBPS_PER_CHANNEL, Mp3Writer, tag_frame_bytes
from recorder.codecs.voxwriter import VoxWriter
from recorder.codecs.wav import (
    G711_HEADER_BYTES,
    HEADER_BYTES,
    AlawWavWriter,
    UlawWavWriter,
    WavWriter,
)
from recorder.errors import CodecError

logger = logging.getLogger(__name__)



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

    def prepare_fsync(self) -> int:
        """``fsync()`` but the wait for the disk: the descriptor to ``os.fsync`` (-1: none)."""

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
    writer: WriterFactory
    options: frozenset[str] = field(default_factory=frozenset)


FORMATS: dict[str, Format] = {
    f.name: f for f in (
        Format("wav", "wav", "PCM 16-bit WAV", WavWriter),
        Format("wav-ulaw", "wav", "G.711 μ-law WAV", UlawWavWriter),
        Format("wav-alaw", "wav", "G.711 A-law WAV", AlawWavWriter),
        Format("mp3", "mp3", "MP3 (lameenc)", Mp3Writer, frozenset({"bitrate", "quality"})),
        Format("vox", "vox", "Dialogic/OKI ADPCM", VoxWriter, frozenset({"rate"})),
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
    given = {k: v for k, v in options.items() if v is not None}
    unknown = set(given) - spec.options
    if unknown:
        raise CodecError(f"{fmt} takes no option {', '.join(sorted(unknown))}"
                         f" (it takes: {', '.join(sorted(spec.options)) or 'none'})")
    return spec.writer(file, sample_rate, channels, **given)


# MP3's size beyond its bit rate: the Info tag frame, a padding byte in some frames, the
# encoder's delay and its last partial frame. A generous bound: a second of audio, and 2 %.
_MP3_SLACK_SECONDS = 1.0
_MP3_SLACK_RATIO = 1.02


def encoded_size(fmt: str, frames: int, sample_rate: int, channels: int = 1,
                 **options: Any) -> int:
    """At most how many bytes a ``fmt`` file of ``frames`` frames at ``sample_rate`` takes.

    Work that writes beside live recordings (exports, after-call encoding) reserves this much
    of the disk before it writes anything, so the bound must never fall short; it may be a
    little over (MP3's is its constant bit rate, with room for the frames around the audio).
    """
    spec = get_format(fmt)
    frames, channels = max(0, frames), max(1, channels)
    if spec.name == "wav":
        return HEADER_BYTES + 2 * channels * frames
    if spec.name in ("wav-ulaw", "wav-alaw"):
        return G711_HEADER_BYTES + channels * frames
    if spec.name == "mp3":
        kbps = options.get("bitrate") or DEFAULT_KBPS_PER_CHANNEL * min(channels, 2)
        seconds = frames / max(1, sample_rate) + _MP3_SLACK_SECONDS
        return math.ceil(kbps * 125 * seconds * _MP3_SLACK_RATIO) + 4096
    # VOX: two samples a byte, mono, at its own rate (the recording's unless given).
    rate = options.get("rate") or sample_rate
    return math.ceil(frames * rate / max(1, sample_rate) / 2) + 64



def rewritten_start(fmt: str, sample_rate: int, channels: int = 1) -> int:
    """How many bytes at the start of a ``fmt`` file its writer rewrites as the file grows (a
    WAV's header, an MP3's Info tag frame); 0: none (VOX). An encrypted recording seals them as
    a chunk of their own (docs/encryption.md, "The prologue")."""
    spec = get_format(fmt)
    if spec.name == "wav":
        return HEADER_BYTES
    if spec.name in ("wav-ulaw", "wav-alaw"):
        return G711_HEADER_BYTES
    if spec.name == "mp3":
        return tag_frame_bytes(sample_rate, channels)
    return 0


def steady_bytes_per_second(fmt: str, sample_rate: int, channels: int = 1,
                            **options: Any) -> int | None:
    """The bytes a second of audio adds to a ``fmt`` file, when that is the same for every
    second (PCM, G.711, VOX); None when it is not (MP3's frames do not fall on seconds)."""
    spec = get_format(fmt)
    channels = max(1, channels)
    if spec.name == "wav":
        return 2 * channels * sample_rate
    if spec.name in ("wav-ulaw", "wav-alaw"):
        return channels * sample_rate
    if spec.name == "vox":
        return int(options.get("rate") or sample_rate) // 2
    return None
