"""``mixing.place``: a block of the board from its streams' blocks, G.711 codes decoded together
where a channel has one stream, audio added up in the order taken where it has several; the
same block as decoding and writing each stream's block alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recorder.codecs import g711
from recorder.drivers.siprec.jitter import Piece
from recorder.drivers.siprec.mixing import place

FRAMES = 160
Samples = npt.NDArray[np.int16]


@dataclass
class _Jitter:
    codes: Samples

    def decode_piece(self, piece: Piece) -> Samples:
        if isinstance(piece, bytes):
            return self.codes.take(np.frombuffer(piece, dtype=np.uint8))
        return piece


@dataclass
class _Stream:
    """What ``place`` asks of a StreamMedia: its codes' table and its jitter buffer."""

    codes: Samples

    @property
    def jitter(self) -> _Jitter:
        return _Jitter(self.codes)


def by_hand(block: Samples, taken: list[tuple[int, Piece, _Stream]]) -> None:
    """The rule, one stream at a time: the first of a channel written, the others added."""
    written: set[int] = set()
    for channel, piece, stream in taken:
        samples = stream.jitter.decode_piece(piece).astype(np.int32)
        if channel in written:
            block[:, channel] = np.clip(block[:, channel] + samples, -32768, 32767)
        else:
            block[:, channel] = samples
            written.add(channel)


def test_codes_and_audio_land_as_if_each_stream_were_written_alone() -> None:
    rng = np.random.default_rng(7)
    ulaw = _Stream(g711.decode_table("ulaw"))
    alaw = _Stream(g711.decode_table("alaw"))

    def codes() -> bytes:
        return bytes(rng.integers(0, 256, FRAMES, dtype=np.uint8))

    loud = np.full(FRAMES, 30000, dtype=np.int16)
    taken: list[tuple[int, Piece, _Stream]] = [
        (0, codes(), ulaw),
        (3, codes(), alaw),
        (1, codes(), ulaw),  # channel 1 has three streams: codes, audio, codes
        (2, rng.integers(-999, 999, FRAMES).astype(np.int16), alaw),
        (1, loud, ulaw),
        (1, codes(), alaw),
        (5, codes(), alaw),
    ]
    expected = np.zeros((FRAMES, 6), dtype=np.int16)
    by_hand(expected, taken)
    block = np.zeros((FRAMES, 6), dtype=np.int16)
    place(block, taken)  # type: ignore[arg-type]
    assert np.array_equal(block, expected)
    assert not block[:, 4].any()  # a channel nobody sends on stays silent
