"""A sender whose clock is not ours, at the unit level (no sockets, no real time): a stream
fed packets and asked for blocks as the media thread does, on simulated clocks.

What a user checks: over a long call no audio is lost as late, the delay between a word said
and its place in the file stays near the playout delay, and a sender on our clock is still
recorded sample for sample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest

from recorder.codecs import g711
from recorder.drivers.siprec.drift import DriftTracker
from recorder.drivers.siprec.events import AnsweredStream
from recorder.drivers.siprec.jitter import Piece
from recorder.drivers.siprec.mediastream import StreamMedia
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.rtp import RtpPacket

Samples = npt.NDArray[np.int16]
RATE = 8000
FRAME = 160  # 20 ms, the sender's packets and the board's blocks alike
DELAY = 800  # the media thread's 0.1 s
BOUND = 160  # 20 ms: how far the recorded timeline may stray from real time
SRC = ("127.0.0.1", 4000)
STREAM = AnsweredStream(index=0, label="1", port=20000, remote=SRC,
                        codec=PayloadFormat(0, "PCMU", 8000), telephone_event=None,
                        comfort_noise=None, crypto=None, local_crypto=None, paused=False,
                        participant=None)


@dataclass
class Recorded:
    stream: StreamMedia
    audio: Samples  # the channel as the board got it, from the stream's anchor on
    sent: Samples  # what the sender's packets decode to, in order
    real: float  # seconds of our clock the sender took to send it all
    lost: list[tuple[int, int]]


def _audio(stream: StreamMedia, piece: Piece | None) -> Samples:
    """A block as the board gets it: silence where the stream has nothing, G.711 codes (what
    ``take`` gives for packets in order) decoded as the media thread's ``place`` does."""
    return np.zeros(FRAME, np.int16) if piece is None else stream.jitter.decode_piece(piece)


def simulate(ppm: float, seconds: float, *, jitter_ms: float = 8.0, seed: int = 1
             ) -> Recorded:
    """A sender whose clock runs ``ppm`` fast (negative: slow) sends ``seconds`` of its own
    time in 20 ms packets, each held up 5 ms plus up to ``jitter_ms`` by the network; the
    board takes a block every 20 ms of our clock, as ``MediaEngine`` does."""
    rng = np.random.default_rng(seed)
    magnitude = rng.integers(2000, 20000, 50 * FRAME)
    codes = g711.encode((magnitude * rng.choice([-1, 1], 50 * FRAME)).astype(np.int16), "ulaw")
    decoded = g711.decode(codes, "ulaw")  # one second of noise G.711 never turns into 0
    packets = round(seconds * 1000) // 20
    period = 0.02 / (1 + ppm * 1e-6)  # a 20 ms packet of the sender's, in our seconds
    arrivals = np.arange(packets) * period + 0.005 + rng.uniform(0, jitter_ms / 1000, packets)
    order = np.argsort(arrivals, kind="stable")  # jitter may swap neighbours
    stream = StreamMedia(STREAM, None, 0, RATE, allowed=lambda host: True, now=0.0)
    out: list[Samples] = []
    lost: list[tuple[int, int]] = []
    block = 0
    for k in order:
        arrival = float(arrivals[k])
        while (block + 1) * 0.02 <= arrival:  # the blocks due before this packet comes
            samples, losses = stream.take(block * FRAME, FRAME)
            lost += losses
            out.append(_audio(stream, samples))
            block += 1
        i = int(k) % 50
        data = RtpPacket(0, int(k) % 65536, (int(k) * FRAME) % 2**32, 0x1234,
                         codes[i * FRAME:(i + 1) * FRAME].tobytes()).to_bytes()
        stream.receive(data, SRC, arrival, int(arrival * RATE), DELAY)
    stream.finish()
    while not stream.drained:
        samples, losses = stream.take(block * FRAME, FRAME)
        lost += losses
        out.append(_audio(stream, samples))
        block += 1
    assert stream.anchor is not None
    audio = np.concatenate(out)[stream.anchor - stream.counts.drift_inserted
                                + stream.counts.drift_dropped:]
    sent = np.tile(decoded, packets // 50 + 1)[:packets * FRAME]
    return Recorded(stream, audio, sent, packets * period, lost)


@pytest.mark.parametrize("ppm", [-500, 500])
@pytest.mark.slow
def test_a_drifting_sender_loses_nothing_and_keeps_its_delay_over_ten_minutes(
        ppm: float) -> None:
    rec = simulate(ppm, 600.0)
    counts, jitter = rec.stream.counts, rec.stream.jitter.stats
    assert jitter.late == 0
    assert jitter.lost_packets == 0
    assert rec.lost == []
    # The file's timeline follows our clock: the stream's audio spans the time it took to
    # send, not the sender's idea of it (0.3 s apart after ten minutes at 500 ppm).
    spoken = np.flatnonzero(rec.audio)
    length = int(spoken[-1]) + 1
    assert abs(length - rec.real * RATE) <= BOUND, (length, rec.real * RATE)
    # Every sample the sender sent is there, in order, but what the moves left out; the
    # moves were small.
    kept = rec.audio[spoken]
    if ppm < 0:
        assert counts.drift_dropped == 0
        assert counts.drift_inserted > 0
        np.testing.assert_array_equal(kept, rec.sent)
    else:
        assert counts.drift_inserted == 0
        assert len(kept) == len(rec.sent) - counts.drift_dropped
    moved = counts.drift_inserted + counts.drift_dropped
    assert abs(moved - 600 * 500e-6 * RATE) <= BOUND  # the drift, no more
    assert moved <= counts.drift_moves * 40  # 5 ms at most at each seam


@pytest.mark.slow
def test_a_sender_on_our_clock_is_recorded_sample_for_sample() -> None:
    rec = simulate(0, 600.0, jitter_ms=15.0, seed=2)
    assert rec.stream.counts.drift_moves == 0
    assert rec.stream.jitter.stats.late == 0
    spoken = np.flatnonzero(rec.audio)
    np.testing.assert_array_equal(rec.audio[spoken[0]:spoken[0] + len(rec.sent)], rec.sent)


def test_a_jump_of_the_senders_is_not_taken_for_drift() -> None:
    drift = DriftTracker(RATE)
    position = 0
    for lead in [800] * 200 + [800 - 4000] * 200:  # a lead half a second shorter all at once
        assert drift.observe(lead, position) == 0
        position += FRAME
