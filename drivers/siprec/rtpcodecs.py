"""RTP payload decoders: one per stream, giving int16 mono audio at the stored rate.

G.711 uses ``codecs/g711``'s tables (the same ones the WAV writer uses). G.722, G.729 and Opus
are FFmpeg's decoders through PyAV: a recording is evidence, and a well-kept decoder beats
one of our own. Every decoder converts its output to mono int16 at the codec's audio rate and
then through one PyAV ``AudioResampler`` (libswresample) to the stored rate. Decoder and
resampler live as long as the stream, so filter state carries across packets (no clicks at
packet edges), and ``silence`` feeds zeros through the same resampler for a gap, so the last
packet's tail rings out instead of being cut.

Each ``decode`` also says how much RTP time the payload covers, read from the payload itself
(G.711/G.722 octets, G.729 frames, the Opus TOC), so the jitter buffer can place it exactly.
A payload FFmpeg refuses decodes to silence of that length and is counted.
"""

from __future__ import annotations

import logging
from typing import Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from av.audio.resampler import AudioResampler

from recorder.codecs import g711
from recorder.drivers.siprec import payloads
from recorder.drivers.siprec.payloads import PayloadFormat

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
_EMPTY: Samples = np.zeros(0, dtype=np.int16)
G729_FRAME_BYTES = 10  # 8 kbit/s, 10 ms
G729_SID_BYTES = 2  # Annex B comfort-noise frame (RFC 3551 §4.5.6)
G729_FRAME_TICKS = 80


class Decoder(Protocol):
    """What the jitter buffer needs of a payload decoder."""

    fmt: PayloadFormat
    rate: int  # stored sample rate of the output
    errors: int

    def ticks(self, payload: bytes) -> int:
        """The RTP time ``payload`` covers, from its own bytes."""
        ...

    def decode(self, payload: bytes) -> tuple[Samples, int]:
        """(audio at ``rate``, RTP ticks the payload covers)."""
        ...

    def silence(self, ticks: int) -> Samples:
        """``ticks`` of silence at ``rate``, continuing the resampler (a gap's audio)."""
        ...

    def reset(self) -> None:
        """Forget the codec state (a new SSRC: a new encoder at the other end)."""
        ...


class _Resample:
    """int16 mono from ``in_rate`` to ``out_rate``, keeping its filter state between calls."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self._resampler = (None if in_rate == out_rate else
                           AudioResampler(format="s16", layout="mono", rate=out_rate))

    def __call__(self, samples: Samples) -> Samples:
        if self._resampler is None or not len(samples):
            return samples
        frame = AudioFrame.from_ndarray(np.ascontiguousarray(samples)[None, :], format="s16",
                                        layout="mono")
        frame.sample_rate = self.in_rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
        return np.concatenate(out).astype(np.int16, copy=False) if out else _EMPTY


def to_mono_int16(frame: AudioFrame) -> Samples:
    """A decoded frame of any sample format and layout as mono int16 (channels averaged)."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        array = array.reshape(-1, channels).T
    if array.dtype.kind == "f":
        data = np.clip(array.astype(np.float64), -1.0, 1.0) * 32767.0
    elif array.dtype == np.int32:
        data = array.astype(np.float64) / 65536.0
    else:
        data = array.astype(np.float64)
    mono: npt.NDArray[np.float64] = data.mean(axis=0) if channels > 1 else data[0]
    return np.round(mono).astype(np.int16)


class G711Decoder:
    """PCMU/PCMA by table lookup (codecs/g711), resampled when the stored rate is not 8 kHz."""

    def __init__(self, fmt: PayloadFormat, rate: int) -> None:
        self.fmt = fmt
        self.rate = rate
        self.errors = 0
        self._law: g711.Law = "ulaw" if fmt.key == "PCMU" else "alaw"
        self._resample = _Resample(8000, rate)
        # At 8 kHz a payload is one table lookup (what g711.decode does, without its checks):
        # this runs for every packet, and the media thread decodes many streams' at once.
        self.table = g711.decode_table(self._law) if rate == 8000 else None

    def ticks(self, payload: bytes) -> int:
        return len(payload)

    def decode(self, payload: bytes) -> tuple[Samples, int]:
        codes = np.frombuffer(payload, dtype=np.uint8)
        if self.table is not None:
            return self.table.take(codes), len(payload)
        return self._resample(g711.decode(codes, self._law)), len(payload)

    def silence(self, ticks: int) -> Samples:
        return self._resample(np.zeros(ticks, dtype=np.int16))

    def reset(self) -> None:
        pass  # G.711 has no state


# FFmpeg decoder and the channel layout it is opened with (RFC 7587: Opus is signalled as two
# channels whatever it carries; its mono packets decode to both).
_AV_CODECS = {"G722": ("g722", "mono"), "G729": ("g729", "mono"), "OPUS": ("opus", "stereo")}


class AvDecoder:
    """G.722, G.729 or Opus through FFmpeg, resampled to the stored rate."""

    def __init__(self, fmt: PayloadFormat, rate: int) -> None:
        self.fmt = fmt
        self.rate = rate
        self.errors = 0
        self._native = payloads.audio_rate(fmt)
        self._resample = _Resample(self._native, rate)
        self._context = self._open()

    def _open(self) -> AudioCodecContext:
        name, layout = _AV_CODECS[self.fmt.key]
        context = av.CodecContext.create(name, "r")
        if not isinstance(context, AudioCodecContext):
            raise ValueError(f"{name} is not an audio decoder")
        context.sample_rate = self._native
        context.layout = layout
        return context

    def ticks(self, payload: bytes) -> int:
        """The RTP time ``payload`` covers, from its own bytes."""
        if self.fmt.key == "G722":
            return len(payload)  # one octet: two 16 kHz samples, one 8 kHz RTP tick
        if self.fmt.key == "G729":
            frames, rest = divmod(len(payload), G729_FRAME_BYTES)
            return (frames + (rest == G729_SID_BYTES)) * G729_FRAME_TICKS
        return opus_ticks(payload)

    def decode(self, payload: bytes) -> tuple[Samples, int]:
        ticks = self.ticks(payload)
        data = payload
        tail = 0
        if self.fmt.key == "G729":
            # FFmpeg takes whole 10-octet frames only; an Annex B SID frame is 10 ms of
            # comfort noise, which a recording keeps as silence.
            speech = len(payload) - len(payload) % G729_FRAME_BYTES
            if len(payload) % G729_FRAME_BYTES not in (0, G729_SID_BYTES):
                self.errors += 1
            data, tail = payload[:speech], (ticks - speech // G729_FRAME_BYTES *
                                            G729_FRAME_TICKS)
        chunks: list[Samples] = []
        if data:
            try:
                frames = self._context.decode(av.Packet(data))
            except (av.error.FFmpegError, ValueError):
                self.errors += 1
                return self.silence(ticks), ticks
            chunks += [to_mono_int16(f) for f in frames]
        if tail:
            chunks.append(np.zeros(tail * self._native // self.fmt.clock_rate, np.int16))
        native = np.concatenate(chunks) if chunks else _EMPTY
        return self._resample(native), ticks

    def silence(self, ticks: int) -> Samples:
        return self._resample(np.zeros(ticks * self._native // self.fmt.clock_rate, np.int16))

    def reset(self) -> None:
        self._context = self._open()


# RFC 6716 §3.1: frame length by TOC config, in 48 kHz samples.
_OPUS_FRAME = ([480, 960, 1920, 2880] * 3) + ([480, 960] * 2) + ([120, 240, 480, 960] * 4)


def opus_ticks(payload: bytes) -> int:
    """The duration of an Opus packet in 48 kHz RTP ticks, from its TOC (0 if unreadable)."""
    if not payload:
        return 0
    toc = payload[0]
    frame = _OPUS_FRAME[toc >> 3]
    code = toc & 0x03
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    elif len(payload) >= 2:
        count = payload[1] & 0x3F
    else:
        return 0
    return frame * count


def create_decoder(fmt: PayloadFormat, rate: int = 8000) -> Decoder | None:
    """A decoder for ``fmt`` producing audio at ``rate``; None for a codec we cannot decode
    (the SDP answer refuses such a stream)."""
    if rate <= 0 or not payloads.can_decode(fmt):
        return None
    if fmt.key in ("PCMU", "PCMA"):
        return G711Decoder(fmt, rate)
    try:
        return AvDecoder(fmt, rate)
    except (av.error.FFmpegError, ValueError):
        logger.exception("FFmpeg has no %s decoder", fmt.name)
        return None
