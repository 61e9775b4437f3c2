"""SIPREC media: RTP/RTCP packets, the jitter buffer's sample-exact timeline (loss, reorder,
duplicates, wraps, SSRC changes, gaps), the decoders (a 1 kHz tone through PyAV's own
encoders and back) and SRTP (protected by libsrtp here, unprotected by the module)."""

from __future__ import annotations

import os
import random
import struct

import av
import numpy as np
import numpy.typing as npt
import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.codecs import g711
from recorder.drivers.siprec import rtpcodecs
from recorder.drivers.siprec.jitter import JitterBuffer
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.rtp import (
    Kind,
    RtpPacket,
    classify,
    parse_rtp,
    parse_telephone_event,
)
from recorder.drivers.siprec.rtpcodecs import create_decoder, opus_ticks
from recorder.drivers.siprec.srtp import (
    CryptoAttribute,
    SrtpReceiver,
    local_crypto,
    parse_crypto,
)
from tests.helpers.siprec import packets, peak_hz, tone
from tests.helpers.voicecodecs import bcg729, g729_payloads

# FUZZ_EXAMPLES raises the examples for a longer local run (as in test_fuzz.py).
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PCMU = PayloadFormat(0, "PCMU", 8000)
G722 = PayloadFormat(9, "G722", 8000)
G729 = PayloadFormat(18, "G729", 8000)
OPUS = PayloadFormat(111, "opus", 48000, 2)
Samples = npt.NDArray[np.int16]


# --- RTP ------------------------------------------------------------------------------------

def test_rtp_fields() -> None:
    data = bytes([0x80 | 0x20 | 0x10 | 2, 0x80 | 8]) + struct.pack("!HII", 65535, 2**32 - 1, 7)
    data += struct.pack("!II", 11, 22) + struct.pack("!HH", 0xBEDE, 1) + b"\x01\x02\x03\x04"
    data += b"payload" + b"\x00\x00\x03"
    packet = parse_rtp(data)
    assert packet == RtpPacket(8, 65535, 2**32 - 1, 7, b"payload", marker=True, csrcs=(11, 22),
                               extension_profile=0xBEDE, extension=b"\x01\x02\x03\x04",
                               padding=3)


@pytest.mark.parametrize("data", [
    b"", b"\x80\x00" + b"\x00" * 9,  # shorter than a header
    b"\x40\x00" + b"\x00" * 10 + b"x",  # version 1
    b"\xa0\x00" + b"\x00" * 10 + b"x\x00",  # padding count 0
    b"\xa0\x00" + b"\x00" * 10 + b"x\x09",  # padding longer than the payload
    b"\x83\x00" + b"\x00" * 10 + b"\x00" * 8,  # three CSRCs, room for two
    b"\x90\x00" + b"\x00" * 10 + b"\xbe\xde\x00\x02abcd",  # extension longer than the packet
    b"\x80\xc8" + b"\x00" * 26,  # an RTCP sender report
])
def test_malformed_rtp_is_none(data: bytes) -> None:
    assert parse_rtp(data) is None


@pytest.mark.parametrize(("data", "kind"), [
    (b"\x80\x00", Kind.RTP), (b"\x80\x08", Kind.RTP), (b"\x80\x65", Kind.RTP),
    (b"\x80\xe5", Kind.RTP),  # PT 101 with the marker bit: 229 is above the RTCP range
    (b"\x80\xc8", Kind.RTCP), (b"\x81\xc9", Kind.RTCP), (b"\x81\xca", Kind.RTCP),
    (b"\x81\xcb", Kind.RTCP), (b"\x80\xcc", Kind.RTCP), (b"\x8f\xcf", Kind.RTCP),
    (b"\x00\x01", Kind.OTHER),  # STUN
    (b"\x16\xfe", Kind.OTHER),  # DTLS
    (b"\x80", Kind.OTHER),
])
def test_rtp_and_rtcp_are_told_apart(data: bytes, kind: Kind) -> None:
    assert classify(data + b"\x00" * 10 if len(data) == 2 else data) is kind


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_give_a_packet_or_none(data: bytes) -> None:
    packet = parse_rtp(data)
    if packet is not None:
        assert classify(data) is Kind.RTP
        assert len(packet.payload) <= len(data) - 12


@st.composite
def rtp_packets(draw: st.DrawFn) -> RtpPacket:
    profile = draw(st.one_of(st.none(), st.integers(0, 65535)))
    return RtpPacket(
        payload_type=draw(st.integers(0, 127).filter(lambda pt: not 64 <= pt < 96)),
        sequence=draw(st.integers(0, 65535)), timestamp=draw(st.integers(0, 2**32 - 1)),
        ssrc=draw(st.integers(0, 2**32 - 1)), payload=draw(st.binary(max_size=200)),
        marker=draw(st.booleans()),
        csrcs=tuple(draw(st.lists(st.integers(0, 2**32 - 1), max_size=15))),
        extension_profile=profile,
        extension=draw(st.binary(max_size=3)) * 4 if profile is not None else b"")


@FUZZ
@given(rtp_packets())
def test_packets_survive_the_wire(packet: RtpPacket) -> None:
    assert parse_rtp(packet.to_bytes()) == packet


def test_telephone_event_is_read_only_to_be_counted() -> None:
    event = parse_telephone_event(bytes([5, 0x80 | 10]) + struct.pack("!H", 800))
    assert event is not None
    assert (event.event, event.end, event.volume, event.duration) == (5, True, 10, 800)
    assert parse_telephone_event(b"\x05") is None


# --- jitter buffer --------------------------------------------------------------------------

CODES = [c for c in range(1, 127)]  # μ-law codes with distinct, non-zero values


def marked(i: int) -> bytes:
    """160 samples of one value that names packet ``i``."""
    return bytes([CODES[i % len(CODES)]]) * 160


def expected(count: int, missing: set[int] = frozenset()) -> Samples:  # type: ignore[assignment]
    values = g711.decode(np.array([CODES[i % len(CODES)] for i in range(count)], np.uint8),
                         "ulaw")
    out = np.repeat(values, 160)
    for i in missing:
        out[i * 160:(i + 1) * 160] = 0
    return out


def buffer(**options: int) -> JitterBuffer:
    decoder = create_decoder(PCMU)
    assert decoder is not None
    return JitterBuffer(decoder, **options)  # type: ignore[arg-type]


def run(jb: JitterBuffer, sent: list[tuple[RtpPacket, float]]) -> Samples:
    out = []
    for packet, arrival in sent:
        jb.push(packet, arrival)
        out.append(jb.ready().samples)
    out.append(jb.flush().samples)
    return np.concatenate(out)


def timed(stream: list[RtpPacket], start: float = 0.0, step: float = 0.02
          ) -> list[tuple[RtpPacket, float]]:
    return [(p, start + i * step) for i, p in enumerate(stream)]


@pytest.mark.parametrize(("seq", "ts"), [(1000, 50_000), (65500, 7), (30, 2**32 - 800),
                                         (65530, 2**32 - 480)])
def test_in_order_across_wraps_is_exact(seq: int, ts: int) -> None:
    jb = buffer()
    out = run(jb, timed(packets([marked(i) for i in range(100)], ticks=160, seq=seq, ts=ts)))
    np.testing.assert_array_equal(out, expected(100))
    assert (jb.stats.packets, jb.stats.lost_packets, jb.stats.late) == (100, 0, 0)


def test_depth_holds_packets_back() -> None:
    jb = buffer(depth_ms=60)
    stream = packets([marked(i) for i in range(10)], ticks=160)
    played = []
    for i, packet in enumerate(stream):
        jb.push(packet, i * 0.02)
        played.append(len(jb.ready().samples) // 160)
    # 60 ms = three packets stay held behind the newest.
    assert played == [0, 0, 0, 0, 1, 1, 1, 1, 1, 1]


def test_a_lost_packet_is_silence_of_its_length() -> None:
    jb = buffer()
    stream = packets([marked(i) for i in range(20)], ticks=160)
    out = run(jb, timed([p for i, p in enumerate(stream) if i not in (5, 6, 12)]))
    np.testing.assert_array_equal(out, expected(20, {5, 6, 12}))
    assert (jb.stats.lost_packets, jb.stats.lost_samples) == (3, 480)


def test_reordered_and_duplicated_packets() -> None:
    stream = packets([marked(i) for i in range(20)], ticks=160)
    order = [1, 0, 2, 3, 3, 5, 4, 6, 7, 9, 8, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 2]
    jb = buffer()
    out = run(jb, [(stream[i], n * 0.02) for n, i in enumerate(order)])
    np.testing.assert_array_equal(out, expected(20))
    assert (jb.stats.duplicates, jb.stats.lost_packets, jb.stats.late) == (3, 0, 0)


def test_a_packet_after_its_playout_is_late() -> None:
    jb = buffer()
    stream = packets([marked(i) for i in range(10)], ticks=160)
    for i in (0, 1, 2, 4):
        jb.push(stream[i], i * 0.02)
    first = jb.drain_until(stream[4].timestamp + 160)
    jb.push(stream[3], 0.2)
    rest = jb.flush()
    assert len(first.samples) == 5 * 160
    assert len(rest.samples) == 0
    assert (first.counts.lost_packets, rest.counts.late) == (1, 1)
    np.testing.assert_array_equal(first.samples, expected(5, {3}))


def test_drain_until_fills_silence_up_to_the_time_asked() -> None:
    jb = buffer()
    stream = packets([marked(i) for i in range(3)], ticks=160, ts=1000)
    for i, packet in enumerate(stream):
        jb.push(packet, i * 0.02)
    out = jb.drain_until(1000 + 160 * 3 + 800)
    assert len(out.samples) == 3 * 160 + 800
    assert (out.counts.gap_samples, out.counts.lost_samples) == (800, 0)
    later = stream[-1]
    jb.push(RtpPacket(0, later.sequence + 1, later.timestamp + 160, later.ssrc, marked(3)), 0.1)
    assert jb.flush().counts.late == 1  # its time was drained already


def test_play_to_plays_on_time_and_fills_what_has_not_come() -> None:
    jb = buffer()
    stream = packets([marked(i) for i in range(6)], ticks=160)
    for i in (0, 1, 3, 2):  # 2 and 3 swapped: both there in time
        jb.push(stream[i], i * 0.02)
    first = jb.play_to(4 * 160)
    np.testing.assert_array_equal(first.samples, expected(4))
    assert first.lost == []
    more = jb.play_to(6 * 160)  # 4 and 5 have not come: silence, a gap for now
    assert (len(more.samples), more.counts.gap_samples, more.lost) == (320, 320, [])
    jb.push(stream[5], 0.2)  # 4 never comes, 5 comes too late: both were lost audio
    later = jb.play_to(7 * 160)
    assert later.lost == [(4 * 160, 6 * 160)]
    assert (jb.stats.lost_samples, jb.stats.gap_samples, jb.stats.late) == (320, 160, 1)


def test_silence_play_to_filled_stays_a_gap_when_nothing_was_missing() -> None:
    jb = buffer()
    before = packets([marked(i) for i in range(3)], ticks=160)
    for i, packet in enumerate(before):
        jb.push(packet, i * 0.02)
    jb.play_to(3 * 160 + 800)  # the SRC sends nothing for 100 ms
    after = RtpPacket(0, before[-1].sequence + 1, before[-1].timestamp + 160 + 800,
                      before[-1].ssrc, marked(3))
    jb.push(after, 0.2)
    out = jb.play_to(4 * 160 + 800)
    np.testing.assert_array_equal(out.samples, expected(4)[-160:])
    assert (out.lost, jb.stats.lost_samples, jb.stats.gap_samples) == ([], 0, 800)


def test_a_loss_found_after_its_silence_was_played_is_reported_there() -> None:
    jb = buffer()
    before = packets([marked(i) for i in range(3)], ticks=160)
    for i, packet in enumerate(before):
        jb.push(packet, i * 0.02)
    jb.play_to(3 * 160 + 480)  # three packets' time with nothing
    after = RtpPacket(0, before[-1].sequence + 5, before[-1].timestamp + 5 * 160,
                      before[-1].ssrc, marked(7))  # four packets were lost, one is still ahead
    jb.push(after, 0.2)
    out = jb.play_to(8 * 160)
    assert out.lost == [(480, 960), (960, 1120)]  # the silence played, then the part ahead
    assert (jb.stats.lost_packets, jb.stats.lost_samples, jb.stats.gap_samples) == (4, 640, 0)


@pytest.mark.parametrize("lost", [False, True])
def test_a_two_second_gap_is_exactly_two_seconds(lost: bool) -> None:
    jb = buffer()
    before = packets([marked(i) for i in range(10)], ticks=160)
    # After 2 s of nothing: sequence numbers go on (silence suppression) or jump (loss).
    skip = 100 if lost else 0
    after = packets([marked(10 + i) for i in range(10)], ticks=160,
                    seq=before[-1].sequence + 1 + skip, ts=before[-1].timestamp + 160 + 16000)
    out = run(jb, timed(before) + timed(after, start=0.18 + 2.02))
    assert len(out) == 20 * 160 + 16000
    np.testing.assert_array_equal(out[:1600], expected(10))
    assert not out[1600:1600 + 16000].any()
    np.testing.assert_array_equal(out[-1600:], expected(20)[1600:])
    assert (jb.stats.lost_samples, jb.stats.gap_samples) == ((16000, 0) if lost else (0, 16000))
    assert jb.stats.segments == 0


def test_ssrc_change_continues_without_a_gap() -> None:
    jb = buffer()
    first = packets([marked(i) for i in range(30)], ticks=160, ssrc=1)
    second = packets([marked(30 + i) for i in range(30)], ticks=160, ssrc=2, seq=9, ts=123)
    out = run(jb, timed(first + second))
    np.testing.assert_array_equal(out, expected(60))
    assert (jb.stats.segments, jb.stats.segment_samples, jb.stats.strays) == (1, 0, 0)


def test_ssrc_change_after_a_pause_keeps_the_pause_by_arrival_time() -> None:
    jb = buffer()
    first = packets([marked(i) for i in range(30)], ticks=160, ssrc=1)
    second = packets([marked(30 + i) for i in range(30)], ticks=160, ssrc=2, seq=9, ts=123)
    # The new source's first packet comes 1.5 s after the old one's last would have ended.
    out = run(jb, timed(first) + timed(second, start=29 * 0.02 + 0.02 + 1.5))
    assert len(out) == 60 * 160 + 12000
    assert jb.stats.segment_samples == 12000
    np.testing.assert_array_equal(out[-4800:], expected(60)[-4800:])


def test_a_timestamp_jump_without_time_passing_is_a_new_segment() -> None:
    jb = buffer()
    first = packets([marked(i) for i in range(20)], ticks=160)
    # Same SSRC, sequence goes on, timestamps leap 10 s ahead, yet packets keep coming at 20 ms.
    second = packets([marked(20 + i) for i in range(20)], ticks=160, seq=1020,
                     ts=first[-1].timestamp + 80_000)
    out = run(jb, timed(first + second))
    np.testing.assert_array_equal(out, expected(40))
    assert jb.stats.segments == 1


def test_a_timestamp_jump_the_clock_agrees_with_is_silence() -> None:
    jb = buffer()
    first = packets([marked(i) for i in range(20)], ticks=160)
    second = packets([marked(20 + i) for i in range(20)], ticks=160, seq=1020,
                     ts=first[-1].timestamp + 160 + 80_000)
    out = run(jb, timed(first) + timed(second, start=0.4 + 10.0))
    assert len(out) == 40 * 160 + 80_000
    assert jb.stats.segments == 0


def test_a_lone_stray_packet_is_dropped() -> None:
    jb = buffer()
    stream = packets([marked(i) for i in range(20)], ticks=160)
    stray = RtpPacket(0, 5, 999_999, 0xDEAD, b"\x00" * 160)
    out = run(jb, timed([*stream[:10], stray, *stream[10:]]))
    np.testing.assert_array_equal(out, expected(20))
    assert (jb.stats.strays, jb.stats.segments) == (1, 0)


def test_comfort_noise_events_and_unknown_types_are_silence_not_loss() -> None:
    jb = buffer(events_pt=101)
    stream = packets([marked(i) for i in range(10)], ticks=160)
    extra = [RtpPacket(13, 0, 0, 0x1234, b"\x40"),  # CN, then nothing for 2 packets
             RtpPacket(101, 0, 0, 0x1234, bytes([1, 0, 0, 160])),
             RtpPacket(101, 0, 0, 0x1234, bytes([1, 0x80, 1, 64])),
             RtpPacket(96, 0, 0, 0x1234, b"video?")]
    # Sequence numbers: 0-3 audio, CN, 2 events, one unknown, then audio 4-9 two packets later.
    sent = stream[:4]
    for n, packet in enumerate(extra):
        sent.append(RtpPacket(packet.payload_type, 1004 + n, stream[4].timestamp,
                              packet.ssrc, packet.payload))
    sent += [RtpPacket(0, 1008 + i, p.timestamp + 320, p.ssrc, p.payload)
             for i, p in enumerate(stream[4:])]
    out = run(jb, timed(sent))
    assert len(out) == 12 * 160
    np.testing.assert_array_equal(out[:640], expected(4))
    assert not out[640:960].any()
    counts = jb.stats
    assert (counts.comfort_noise, counts.events, counts.unknown_pt) == (1, 2, 1)
    assert (counts.lost_packets, counts.lost_samples, counts.gap_samples) == (0, 0, 320)


def test_the_timeline_is_exact_over_ten_thousand_packets() -> None:
    rng = random.Random(7)
    count = 10_000
    stream = packets([marked(i) for i in range(count)], ticks=160, seq=60_000, ts=2**32 - 9000)
    lost = {i for i in range(1, count - 1) if rng.random() < 0.04}
    very_late = set(rng.sample(sorted(set(range(100, count - 100)) - lost), 20))
    arrivals: list[tuple[float, int, RtpPacket]] = []
    for i, packet in enumerate(stream):
        if i in lost:
            continue
        # Network jitter up to 50 ms (never more than the 60 ms depth), a few 1 s late.
        delay = 1.0 if i in very_late else rng.uniform(0, 0.05)
        arrivals.append((i * 0.02 + delay, i, packet))
        if rng.random() < 0.03 and i not in very_late:
            arrivals.append((i * 0.02 + rng.uniform(0, 0.3), i, packet))
    arrivals.sort(key=lambda a: (a[0], a[1]))
    jb = buffer(depth_ms=60)
    out = run(jb, [(packet, at) for at, _, packet in arrivals])
    assert len(out) == count * 160
    np.testing.assert_array_equal(out, expected(count, lost | very_late))
    stats = jb.stats
    assert stats.late == len(very_late)
    assert stats.lost_packets == len(lost) + len(very_late)
    assert stats.lost_samples == 160 * (len(lost) + len(very_late))
    assert stats.packets == count - len(lost) - len(very_late)
    assert stats.duplicates == len(arrivals) - (count - len(lost))


@pytest.mark.parametrize(("fmt", "ticks", "rate"), [(G722, 160, 8000), (G722, 160, 16000),
                                                    (OPUS, 960, 8000), (OPUS, 960, 16000)])
def test_rtp_clock_to_stored_rate(fmt: PayloadFormat, ticks: int, rate: int) -> None:
    encoded = encode_tone(fmt)
    decoder = create_decoder(fmt, rate)
    assert decoder is not None
    jb = JitterBuffer(decoder)
    stream = packets(encoded, ticks=ticks, pt=fmt.pt)
    out = run(jb, timed([p for i, p in enumerate(stream) if i != 20]))
    # 50 packets of 20 ms: exactly one second at the stored rate, one packet of it silent.
    assert len(out) == rate
    assert jb.stats.lost_samples == rate // 50
    assert abs(peak_hz(out[rate // 2:], rate) - 1000) < 10


# --- decoders -------------------------------------------------------------------------------

def encode_tone(fmt: PayloadFormat, seconds: float = 1.0) -> list[bytes]:
    """20 ms payloads of a 1 kHz tone, encoded by FFmpeg (the codec's reference encoder)."""
    name, rate = {"G722": ("g722", 16000), "OPUS": ("libopus", 48000)}[fmt.key]
    encoder = av.CodecContext.create(name, "w")
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16"
    if fmt.key == "OPUS":
        encoder.bit_rate = 32000
    encoder.open()
    signal = tone(1000, rate, int(rate * seconds))
    frame_samples = rate // 50
    out: list[bytes] = []
    for start in range(0, len(signal), frame_samples):
        frame = av.AudioFrame.from_ndarray(signal[None, start:start + frame_samples],
                                           format="s16", layout="mono")
        frame.sample_rate = rate
        out += [bytes(p) for p in encoder.encode(frame)]
    out += [bytes(p) for p in encoder.encode(None)]
    return out[: int(seconds * 50)]


def decode_all(fmt: PayloadFormat, payloads: list[bytes], rate: int) -> tuple[Samples, int]:
    decoder = create_decoder(fmt, rate)
    assert decoder is not None
    chunks, ticks = zip(*(decoder.decode(p) for p in payloads), strict=True)
    return np.concatenate(chunks), sum(ticks)


def test_g711_uses_the_shared_tables() -> None:
    assert rtpcodecs.g711 is g711
    codes = np.arange(256, dtype=np.uint8)
    for fmt, law in ((PCMU, "ulaw"), (PayloadFormat(8, "PCMA", 8000), "alaw")):
        samples, ticks = decode_all(fmt, [codes.tobytes()], 8000)
        np.testing.assert_array_equal(samples, g711.decode(codes, law))  # type: ignore[arg-type]
        assert ticks == 256


@pytest.mark.parametrize("rate", [8000, 16000])
def test_g711_tone_at_either_stored_rate(rate: int) -> None:
    payloads = [g711.encode(tone(1000, 8000, 8000)[i:i + 160], "ulaw").tobytes()
                for i in range(0, 8000, 160)]
    samples, ticks = decode_all(PCMU, payloads, rate)
    assert ticks == 8000
    assert abs(len(samples) - rate) <= rate // 500  # less only the resampler's delay
    assert abs(peak_hz(samples[rate // 4:], rate) - 1000) < 10


@pytest.mark.parametrize(("fmt", "rate"), [(G722, 8000), (G722, 16000), (OPUS, 8000),
                                           (OPUS, 16000)])
def test_a_tone_encoded_by_ffmpeg_decodes_to_its_pitch(fmt: PayloadFormat, rate: int) -> None:
    samples, ticks = decode_all(fmt, encode_tone(fmt), rate)
    assert ticks == fmt.clock_rate  # 50 packets: one second of RTP time
    assert abs(len(samples) - rate) <= rate // 100
    assert abs(peak_hz(samples[rate // 4:], rate) - 1000) < 10
    assert np.abs(samples[rate // 4:]).max() > 3000  # audio, not a whisper


@pytest.mark.skipif(bcg729() is None, reason="FFmpeg has no G.729 encoder and libbcg729 "
                    "(Debian libbcg729-0) is not installed to encode the test tone")
def test_g729_tone_encoded_by_bcg729() -> None:
    lib = bcg729()
    assert lib is not None
    payloads = g729_payloads(lib, tone(1000, 8000, 8000))
    samples, ticks = decode_all(G729, payloads, 8000)
    assert (ticks, len(samples)) == (8000, 8000)
    assert abs(peak_hz(samples[2000:], 8000) - 1000) < 15


def test_g729_frames_and_sid_keep_their_length() -> None:
    decoder = create_decoder(G729)
    assert isinstance(decoder, rtpcodecs.AvDecoder)
    rng = np.random.default_rng(1)
    speech = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    assert [len(decoder.decode(p)[0]) for p in (speech, speech[:10], speech + b"\x00\x01",
                                                b"\x00\x01")] == [160, 80, 240, 80]
    assert not decoder.decode(b"\x00\x01")[0].any()  # comfort noise is silence
    assert decoder.errors == 0
    decoder.decode(b"abc")
    assert decoder.errors == 1


@pytest.mark.parametrize("fmt", [PayloadFormat(3, "GSM", 8000), PayloadFormat(96, "opus", 48000),
                                 PayloadFormat(97, "AMR", 8000), PayloadFormat(0, "PCMU", 16000)])
def test_no_decoder_for_what_we_cannot_decode(fmt: PayloadFormat) -> None:
    assert create_decoder(fmt) is None


@pytest.mark.parametrize(("payload", "ticks"), [
    (bytes([(1 << 3) | 0]), 960),  # SILK NB 20 ms, one frame
    (bytes([(3 << 3) | 1]), 5760),  # SILK 60 ms, two frames
    (bytes([(16 << 3) | 0]), 120),  # CELT 2.5 ms
    (bytes([(31 << 3) | 3, 3]), 2880),  # CELT 20 ms, three frames
    (bytes([(13 << 3) | 2]), 1920),  # hybrid 20 ms, two frames
    (bytes([3]), 0), (b"", 0),
])
def test_opus_duration_from_the_toc(payload: bytes, ticks: int) -> None:
    assert opus_ticks(payload) == ticks


# --- SRTP -----------------------------------------------------------------------------------

KEY = bytes(range(1, 31))


def sender(key: bytes = KEY, profile: int = pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80
           ) -> pylibsrtp.Session:
    return pylibsrtp.Session(pylibsrtp.Policy(key=key,
                                              ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                              srtp_profile=profile))


@pytest.mark.parametrize(("value", "parsed"), [
    ("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^20",
     CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY, "2^20")),
    ("7 aes_cm_128_hmac_sha1_32 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e",
     CryptoAttribute(7, "AES_CM_128_HMAC_SHA1_32", KEY)),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^20|1:4", None),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e KDR=1", None),
    ("1 F8_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e", None),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:AQIDBA==", None),
    ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", None),
    ("AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e", None),
])
def test_crypto_attributes(value: str, parsed: CryptoAttribute | None) -> None:
    assert parse_crypto(value) == parsed


def test_our_answer_key_is_fresh_and_round_trips() -> None:
    offered = CryptoAttribute(3, "AES_CM_128_HMAC_SHA1_32", KEY, "2^31")
    ours = local_crypto(offered)
    assert (ours.tag, ours.suite, len(ours.key_salt)) == (3, "AES_CM_128_HMAC_SHA1_32", 30)
    assert ours.key_salt != KEY
    assert local_crypto(offered).key_salt != ours.key_salt
    assert parse_crypto(ours.to_string()) == ours


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
def test_srtp_is_unprotected_and_a_tampered_packet_dropped(suite: str) -> None:
    profile = {"AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
               "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32}[suite]
    src = sender(profile=profile)
    receiver = SrtpReceiver(CryptoAttribute(1, suite, KEY))
    plain = [p.to_bytes() for p in packets([marked(i) for i in range(5)], ticks=160,
                                           seq=65533)]
    protected = [src.protect(p) for p in plain]
    assert protected[0] != plain[0]
    assert len(protected[0]) > len(plain[0])
    assert [receiver.unprotect(p) for p in protected[:3]] == plain[:3]
    tampered = bytearray(protected[3])
    tampered[20] ^= 0x01
    assert receiver.unprotect(bytes(tampered)) is None
    assert receiver.auth_failures == 1
    assert receiver.unprotect(protected[3]) == plain[3]  # the genuine one still passes
    assert receiver.unprotect(protected[3]) is None  # a replay does not
    assert (receiver.replays, receiver.dropped) == (1, 2)
    assert receiver.unprotect(b"\x80\x00\x00") is None
    assert receiver.unprotect(protected[4][:-4] + b"\x00" * 4) is None


def test_a_wrong_key_authenticates_nothing() -> None:
    receiver = SrtpReceiver(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", bytes(30)))
    packet = sender().protect(packets([marked(0)], ticks=160)[0].to_bytes())
    assert receiver.unprotect(packet) is None
    assert receiver.auth_failures == 1


def test_srtcp_is_unprotected() -> None:
    rtcp = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)  # an empty receiver report
    protected = sender().protect_rtcp(rtcp)
    receiver = SrtpReceiver(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY))
    assert classify(protected) is Kind.RTCP
    assert receiver.unprotect_rtcp(protected) == rtcp
    assert receiver.unprotect_rtcp(protected[:-1] + b"\x00") is None


def test_srtp_stream_to_audio() -> None:
    src = sender()
    receiver = SrtpReceiver(CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", KEY))
    jb = buffer()
    for i, packet in enumerate(packets([marked(i) for i in range(50)], ticks=160)):
        wire = src.protect(packet.to_bytes())
        if i == 10:
            wire = wire[:-1] + bytes([wire[-1] ^ 0xFF])  # forged: must never reach the file
        plain = receiver.unprotect(wire)
        parsed = parse_rtp(plain) if plain is not None else None
        if parsed is not None:
            jb.push(parsed, i * 0.02)
    out = np.concatenate([jb.ready().samples, jb.flush().samples])
    np.testing.assert_array_equal(out, expected(50, {10}))
    assert (receiver.auth_failures, jb.stats.lost_packets) == (1, 1)
