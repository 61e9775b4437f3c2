"""Encoders for the SRC side of the codec tests, none of them ours: G.722 is FFmpeg's encoder
(through PyAV), G.729 is Belledonne's bcg729 (Debian's libbcg729-0) through ctypes. The
recorder decodes both with FFmpeg's decoders. G.729 keeps a voice's spectrum rather than its
waveform, so what a G.729 recording is compared with is bcg729's own decoding of the same
frames: two implementations that must agree."""

from __future__ import annotations

import ctypes
import ctypes.util

import av
import numpy as np
import numpy.typing as npt
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame

Samples = npt.NDArray[np.int16]
G722_RATE = 16000
G722_OCTETS_20MS = 160  # 64 kbit/s: one octet per two 16 kHz samples
G729_FRAME = 80  # samples of 8 kHz audio per 10-octet frame
G729_FRAME_BYTES = 10


def g722_payloads(samples: Samples) -> list[bytes]:
    """16 kHz audio as 20 ms G.722 payloads (the codec's bit stream cut every 160 octets, as
    an RTP sender does: the encoder's state runs on across them)."""
    encoder = av.CodecContext.create("g722", "w")
    assert isinstance(encoder, AudioCodecContext)
    encoder.sample_rate = G722_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    frame = AudioFrame.from_ndarray(np.ascontiguousarray(samples)[None, :], format="s16",
                                    layout="mono")
    frame.sample_rate = G722_RATE
    frame.pts = 0
    stream = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    return [stream[i:i + G722_OCTETS_20MS] for i in range(0, len(stream), G722_OCTETS_20MS)]


def bcg729() -> ctypes.CDLL | None:
    """Debian's libbcg729, or None when it is not installed."""
    name = ctypes.util.find_library("bcg729") or "libbcg729.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    # bcg729 1.1: initBcg729EncoderChannel(uint8_t enableVAD);
    # bcg729Encoder(ctx, const int16_t in[80], uint8_t out[10], uint8_t *outLength).
    lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
    lib.initBcg729EncoderChannel.argtypes = [ctypes.c_uint8]
    lib.bcg729Encoder.restype = None
    lib.bcg729Encoder.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16),
                                  ctypes.POINTER(ctypes.c_uint8),
                                  ctypes.POINTER(ctypes.c_uint8)]
    lib.closeBcg729EncoderChannel.restype = None
    lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
    # initBcg729DecoderChannel(void); bcg729Decoder(ctx, const uint8_t in[], uint8_t length,
    # uint8_t frameErasure, uint8_t SIDFrame, uint8_t rfc3389Payload, int16_t out[80]).
    lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
    lib.initBcg729DecoderChannel.argtypes = []
    lib.bcg729Decoder.restype = None
    lib.bcg729Decoder.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8),
                                  ctypes.c_uint8, ctypes.c_uint8, ctypes.c_uint8,
                                  ctypes.c_uint8, ctypes.POINTER(ctypes.c_int16)]
    lib.closeBcg729DecoderChannel.restype = None
    lib.closeBcg729DecoderChannel.argtypes = [ctypes.c_void_p]
    return lib


def g729_payloads(lib: ctypes.CDLL, samples: Samples, frames_per_packet: int = 2
                  ) -> list[bytes]:
    """8 kHz audio as G.729 payloads of ``frames_per_packet`` 10 ms frames (annexb=no: VAD
    off, so every frame is a speech frame and the stream never goes quiet)."""
    channel = lib.initBcg729EncoderChannel(0)
    assert channel, "bcg729 gave no encoder"
    whole = len(samples) - len(samples) % G729_FRAME
    stream = bytearray()
    try:
        for start in range(0, whole, G729_FRAME):
            block = np.ascontiguousarray(samples[start:start + G729_FRAME], dtype=np.int16)
            out = (ctypes.c_uint8 * G729_FRAME_BYTES)()
            length = ctypes.c_uint8(0)
            lib.bcg729Encoder(channel, block.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)),
                              out, ctypes.byref(length))
            assert length.value == G729_FRAME_BYTES, length.value
            stream += bytes(out)
    finally:
        lib.closeBcg729EncoderChannel(channel)
    size = G729_FRAME_BYTES * frames_per_packet
    return [bytes(stream[i:i + size]) for i in range(0, len(stream), size)]


def g729_decode(lib: ctypes.CDLL, payloads: list[bytes]) -> Samples:
    """What bcg729's decoder makes of G.729 payloads (whole speech frames only)."""
    channel = lib.initBcg729DecoderChannel()
    assert channel, "bcg729 gave no decoder"
    out: list[Samples] = []
    try:
        for payload in payloads:
            for start in range(0, len(payload) - G729_FRAME_BYTES + 1, G729_FRAME_BYTES):
                bits = (ctypes.c_uint8 * G729_FRAME_BYTES).from_buffer_copy(
                    payload[start:start + G729_FRAME_BYTES])
                audio = np.zeros(G729_FRAME, np.int16)
                lib.bcg729Decoder(channel, bits, G729_FRAME_BYTES, 0, 0, 0,
                                  audio.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)))
                out.append(audio)
    finally:
        lib.closeBcg729DecoderChannel(channel)
    return np.concatenate(out) if out else np.zeros(0, np.int16)
