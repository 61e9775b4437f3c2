"""A per-stream playout buffer: RTP packets in, a sample-exact int16 timeline out.

Packets are held in sequence-number order (16-bit sequence numbers and 32-bit timestamps are
extended across their wraps) and played once ``depth`` of newer audio has arrived
(``ready``), up to an RTP time the caller names (``drain_until``), up to an output position
(``play_to``: a timeline that must advance in real time, as the media thread's does), or all
at the end (``flush``). Output is at the stored rate and every sample sits where its RTP
timestamp puts it: output position = segment origin + (timestamp - segment's first
timestamp) x rate / RTP clock, computed from the absolute timestamp each time, so nothing
drifts (G.722: 8 kHz clock for 16 kHz audio; Opus: 48 kHz clock).

- A lost packet becomes silence of exactly the RTP time that is missing; so do gaps the SRC
  leaves on purpose (silence suppression, comfort noise, the time a telephone-event covers).
  Both are counted, apart (``lost_samples``, ``gap_samples``).
- Duplicates are dropped; a packet that arrives after its time has been played is dropped
  and counted as late. A packet that overlaps audio already played keeps only its new part.
- ``play_to`` plays silence for a time nothing has come for yet: a gap, unless the next packet
  shows it was not (a jump in sequence numbers: packets were lost; or the packet itself is
  for that time: it came too late). That silence is then lost audio after all, and
  ``Playout.lost`` says where, even though it was handed out before.
- Comfort noise (PT 13, or the CN the answer took) is silence; telephone-events are counted
  and their payload dropped at once; both still count in the sequence, so they are not loss.

Segments (the rule that keeps time neither squashed nor stretched): a stream starts a new
segment when its SSRC changes, when its sequence number jumps outside RFC 3550's window
(-100..+3000) or when its timestamp jumps by more than ``jump_seconds`` either way while the
arrival clock does not agree (within ``jump_seconds``). Timestamps of two segments have no
relation, so the new one is placed by arrival time: it starts where the old one's last packet
ended plus the arrival time that passed beyond that packet's length, never earlier than what
has been played. Only the silence between segments is estimated; audio is never overlapped
or resampled. As in RFC 3550 §A.1, a packet that fits no segment starts one only when the next
packet follows it; a lone stray is dropped and counted.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from recorder.drivers.siprec.playout import Counts, Fitter, Playout
from recorder.drivers.siprec.rtp import RtpPacket
from recorder.drivers.siprec.rtpcodecs import Decoder, G711Decoder

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
# What play_until hands out: audio, or G.711 codes at 8 kHz whose decoding is left to the
# caller (``JitterBuffer.codes``: one table lookup for many streams at once).
Piece = Samples | bytes
MAX_DROPOUT = 3000  # RFC 3550 §A.1
MAX_MISORDER = 100
MAX_PENDING = 1000  # packets held at most; beyond, the oldest are played at once
CN_PT = 13


class _Item(NamedTuple):
    # A tuple: one is made for every packet, and a tuple is the cheapest object to make.
    seq: int  # extended
    ts: int  # extended
    audio: bool
    payload: bytes
    arrival: float


_new_item = tuple.__new__


@dataclass
class _Segment:
    ssrc: int
    max_seq: int
    max_ts: int
    max_arrival: float
    pending: dict[int, _Item] = field(default_factory=dict)
    heap: list[int] = field(default_factory=list)
    cursor: int | None = None  # RTP time played up to; set when the first item plays
    ts_origin: int = 0
    out_origin: int = 0
    last_seq: int = 0
    played: set[int] = field(default_factory=set)
    audio_end: int = 0  # output position where the last played audio ended
    audio_arrival: float = 0.0
    audio_ticks: int = 0
    # RTP times [from, to) ``play_to`` filled with silence because nothing had come for them
    # (since the last packet played): a gap, unless a later packet says otherwise.
    forced: tuple[int, int] | None = None


def _unwrap(value: int, reference: int, bits: int) -> int:
    modulus = 1 << bits
    delta = (value - reference) % modulus
    return reference + (delta - modulus if delta >= modulus >> 1 else delta)


class JitterBuffer:
    """One stream's playout buffer; ``push`` packets, take audio from ``ready``,
    ``drain_until`` or ``flush``. Not thread-safe: one driver thread (or loop) owns it."""

    def __init__(self, decoder: Decoder, *, depth_ms: int = 60, events_pt: int | None = None,
                 cn_pt: int | None = None, jump_seconds: float = 1.0) -> None:
        self.decoder = decoder
        self.rate = decoder.rate
        self.clock = decoder.fmt.clock_rate
        self.depth_ticks = depth_ms * self.clock // 1000
        self.events_pt = events_pt
        self.cn_pts = {CN_PT} | ({cn_pt} if cn_pt is not None else set())
        self.jump_ticks = round(jump_seconds * self.clock)
        self.jump_seconds = jump_seconds
        self.position = 0  # output samples produced so far
        self.stats = Counts()
        self._reported = Counts()
        self._segment: _Segment | None = None
        self._candidate: tuple[RtpPacket, float] | None = None
        self._out: list[Piece] = []
        self._lost: list[tuple[int, int]] = []
        self._fitter = Fitter(max(1, self.rate // 500))
        self._audio_pt = decoder.fmt.pt
        # The table a payload's codes decode through, when that is all its decoding is.
        self.codes = decoder.table if isinstance(decoder, G711Decoder) else None
        # An audio payload type that is not also the events' or CN's (push's fast path).
        self.plain_audio = self._audio_pt != events_pt and self._audio_pt not in self.cn_pts
        # Bound once: called for every packet.
        self._ticks = decoder.ticks
        self._decode = decoder.decode

    # --- packets in -----------------------------------------------------------------------

    def push(self, packet: RtpPacket, arrival: float) -> None:
        """Take one packet of this stream; ``arrival`` is when it came (monotonic seconds)."""
        self.push_fields((packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc),
                         packet.payload, arrival, packet)

    def push_fields(self, header: tuple[int, int, int, int], payload: bytes, arrival: float,
                    packet: RtpPacket | None = None) -> None:
        """``push`` of a packet given by its header's (payload type, the marker bit allowed
        above it; sequence; timestamp; SSRC) and its payload (``packet``: the same, if already
        made). The usual packet, audio that fits the current segment, is taken here without
        an ``RtpPacket``: this runs for every packet of every stream."""
        marked_pt, sequence, timestamp, ssrc = header
        pt = marked_pt & 0x7F
        segment = self._segment
        if (pt == self._audio_pt and self.plain_audio and segment is not None
                and ssrc == segment.ssrc and self._candidate is None):
            # _fits, computed in place (same arithmetic as _unwrap).
            d_seq = (sequence - segment.max_seq) & 0xFFFF
            if d_seq >= 0x8000:
                d_seq -= 0x10000
            d_ts = (timestamp - segment.max_ts) & 0xFFFFFFFF
            if d_ts >= 0x80000000:
                d_ts -= 0x100000000
            if (-MAX_MISORDER <= d_seq <= MAX_DROPOUT and (
                    abs(d_ts) <= self.jump_ticks or abs(d_ts / self.clock - (
                        arrival - segment.max_arrival)) <= self.jump_seconds)):
                self._insert_at(segment, segment.max_seq + d_seq, segment.max_ts + d_ts,
                                payload, arrival)
                return
        if packet is None:
            packet = RtpPacket(pt, sequence, timestamp, ssrc, payload)
        self._push_packet(packet, arrival)

    def _push_packet(self, packet: RtpPacket, arrival: float) -> None:
        if packet.payload_type == self.events_pt:
            self.stats.events += 1  # the digits are never kept: only the fact of an event
            packet = dataclasses.replace(packet, payload=b"")
        elif packet.payload_type in self.cn_pts:
            self.stats.comfort_noise += 1
        elif packet.payload_type != self.decoder.fmt.pt:
            self.stats.unknown_pt += 1
        segment = self._segment
        if segment is None:
            self._begin(packet, arrival)
        elif self._fits(segment, packet, arrival):
            if self._candidate is not None:
                self.stats.strays += 1
                self._candidate = None
            self._insert(segment, packet, arrival)
        elif self._candidate is not None and self._follows(self._candidate[0], packet):
            first, first_arrival = self._candidate
            self._candidate = None
            self._begin(first, first_arrival)
            assert self._segment is not None
            self._insert(self._segment, packet, arrival)
        else:
            if self._candidate is not None:
                self.stats.strays += 1
            self._candidate = (packet, arrival)

    def _fits(self, segment: _Segment, packet: RtpPacket, arrival: float) -> bool:
        if packet.ssrc != segment.ssrc:
            return False
        d_seq = _unwrap(packet.sequence, segment.max_seq, 16) - segment.max_seq
        if not -MAX_MISORDER <= d_seq <= MAX_DROPOUT:
            return False
        d_ts = _unwrap(packet.timestamp, segment.max_ts, 32) - segment.max_ts
        if abs(d_ts) <= self.jump_ticks:
            return True
        # A long jump is real time passing only if the arrival clock says so too.
        return abs(d_ts / self.clock - (arrival - segment.max_arrival)) <= self.jump_seconds

    def _follows(self, first: RtpPacket, packet: RtpPacket) -> bool:
        d_ts = (packet.timestamp - first.timestamp) % (1 << 32)
        return (packet.ssrc == first.ssrc and packet.sequence == (first.sequence + 1) % 65536
                and d_ts <= self.jump_ticks)

    def _begin(self, packet: RtpPacket, arrival: float) -> None:
        old = self._segment
        if old is not None:
            self._play(old, None)
            if old.cursor is not None:
                # Where the new segment starts: after the old one's last audio, plus the
                # arrival time that passed beyond that packet's own length.
                passed = arrival - old.audio_arrival - old.audio_ticks / self.clock
                start = max(self.position, old.audio_end + max(0, round(passed * self.rate)))
                silence = start - self.position
                self._emit(np.zeros(silence, dtype=np.int16))
                self.stats.segment_samples += silence
            self.stats.segments += 1
            self.decoder.reset()
            logger.debug("new RTP segment: SSRC %08x seq %d ts %d", packet.ssrc,
                         packet.sequence, packet.timestamp)
        # Extended values start one wrap up, so a packet reordered before the first one
        # still unwraps to a positive number.
        seq = packet.sequence + (1 << 16)
        ts = packet.timestamp + (1 << 32)
        self._segment = _Segment(packet.ssrc, seq, ts, arrival)
        self._insert(self._segment, packet, arrival)

    def _insert(self, segment: _Segment, packet: RtpPacket, arrival: float) -> None:
        seq = _unwrap(packet.sequence, segment.max_seq, 16)
        ts = _unwrap(packet.timestamp, segment.max_ts, 32)
        audio = packet.payload_type == self._audio_pt
        self._insert_at(segment, seq, ts, packet.payload if audio else None, arrival)

    def _insert_at(self, segment: _Segment, seq: int, ts: int, payload: bytes | None,
                   arrival: float) -> None:
        """Hold the packet ``seq`` (extended) of ``segment``; ``payload`` None: not audio."""
        pending = segment.pending
        if (segment.cursor is not None and seq <= segment.last_seq) or seq in pending:
            if seq in segment.played or seq in pending:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return
        # tuple.__new__: the named tuple made in C, not through its Python-level __new__.
        pending[seq] = _new_item(_Item, (seq, ts, True, payload, arrival) if payload is not None
                                 else (seq, ts, False, b"", arrival))
        heapq.heappush(segment.heap, seq)
        segment.max_seq = max(segment.max_seq, seq)
        if ts >= segment.max_ts:
            segment.max_ts, segment.max_arrival = ts, arrival
        while len(pending) > MAX_PENDING:
            self._play_next(segment)

    def placed(self, ssrc: int, timestamp: int) -> int | None:
        """The output position where the audio of the packet with ``ssrc`` and ``timestamp``
        starts in the current segment; None when it belongs to none or the segment has played
        nothing yet (no origin)."""
        segment = self._segment
        if segment is None or segment.cursor is None or ssrc != segment.ssrc:
            return None
        ts = _unwrap(timestamp, segment.max_ts, 32)
        if abs(ts - segment.max_ts) > self.jump_ticks:
            return None
        return self._out_pos(segment, ts)

    # --- audio out ------------------------------------------------------------------------

    def ready(self) -> Playout:
        """Audio for every packet with at least ``depth`` of newer audio behind it."""
        segment = self._segment
        if segment is not None:
            self._play(segment, segment.max_ts - self.depth_ticks)
        return self._collect()

    def drain_until(self, rtp_time: int) -> Playout:
        """Audio up to RTP time ``rtp_time`` (of the current segment), silence where nothing
        came; packets for that time arriving later are late. Needs one packet played."""
        segment = self._segment
        if segment is not None:
            reference = segment.cursor if segment.cursor is not None else segment.max_ts
            target = _unwrap(rtp_time, reference, 32)
            self._play(segment, target)
            if segment.cursor is not None and target > segment.cursor:
                self._silence(segment, target, lost=False)
        return self._collect()

    def play_to(self, position: int) -> Playout:
        """Audio until output ``position`` at least: the packets for that time are played,
        silence stands in for those that have not come (module docstring). Nothing before the
        first packet: the caller knows where the stream begins."""
        self._advance(position)
        return self._collect()

    def play_until(self, position: int) -> tuple[list[Piece], list[tuple[int, int]]]:
        """``play_to`` for the media thread: the samples as the pieces they were made in (a
        packet's G.711 codes as they came, when ``codes`` is its table), and ``Playout.lost``,
        without the counts (``stats`` has them). Counts a ``Playout`` gives later still cover
        what was played here."""
        self._advance(position)
        out, self._out = self._out, []
        lost, self._lost = self._lost, []
        return out, lost

    def _advance(self, position: int) -> None:
        segment = self._segment
        if segment is not None and position > self.position:
            if segment.cursor is None and segment.heap:
                self._play_next(segment)  # the first packet sets the segment's origin
            if segment.cursor is not None and position > self.position:
                ahead = position - segment.out_origin
                target = segment.ts_origin + -(-ahead * self.clock // self.rate)
                self._play(segment, target)
                if self.position < position and target > segment.cursor:
                    # A packet already here after a jump in sequence numbers: the ones
                    # between are lost, not late. Otherwise it is a gap until a packet says.
                    waiting = segment.pending[segment.heap[0]] if segment.heap else None
                    if waiting is not None and waiting.seq > segment.last_seq + 1:
                        self._silence(segment, target, lost=True)
                    else:
                        begun = segment.cursor
                        self._silence(segment, target, lost=False)
                        forced = segment.forced
                        segment.forced = (forced[0] if forced else begun, target)

    def flush(self) -> Playout:
        """Everything held, played out (the stream has ended)."""
        if self._candidate is not None:
            packet, arrival = self._candidate
            self._candidate = None
            self._begin(packet, arrival)
        if self._segment is not None:
            self._play(self._segment, None)
        return self._collect()

    def _collect(self) -> Playout:
        pieces = [self.decode_piece(p) for p in self._out]
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
        self._out = []
        counts = self.stats.minus(self._reported)
        self._reported = self.stats.copy()
        lost, self._lost = self._lost, []
        return Playout(samples, counts, lost)

    def decode_piece(self, piece: Piece) -> Samples:
        """A piece of ``play_until`` as audio."""
        if isinstance(piece, bytes):
            assert self.codes is not None
            return self.codes.take(np.frombuffer(piece, dtype=np.uint8))
        return piece

    def _emit(self, samples: Samples) -> None:
        if len(samples):
            self._out.append(samples)
            self.position += len(samples)

    def _out_pos(self, segment: _Segment, ts: int) -> int:
        return segment.out_origin + (ts - segment.ts_origin) * self.rate // self.clock

    def _play(self, segment: _Segment, target: int | None) -> None:
        while segment.heap and (target is None or segment.pending[segment.heap[0]].ts < target):
            self._play_next(segment)

    def _play_next(self, segment: _Segment) -> None:
        item = segment.pending.pop(heapq.heappop(segment.heap))
        seq = item.seq
        if segment.cursor is None:
            segment.cursor = segment.ts_origin = item.ts
            segment.out_origin = self.position
            segment.last_seq = seq - 1
        lost = seq - segment.last_seq - 1
        segment.last_seq = seq
        played = segment.played
        played.add(seq)
        if len(played) > 4 * MAX_PENDING:
            floor = seq - 2 * MAX_PENDING
            segment.played = {s for s in played if s > floor}
        if lost:
            self.stats.lost_packets += lost
        if segment.forced is not None:
            self._judge_forced(segment, item, lost)
        if item.ts > segment.cursor:
            self._silence(segment, item.ts, lost=lost > 0)
        if item.audio:
            self._play_audio(segment, item)

    def _play_audio(self, segment: _Segment, item: _Item) -> None:
        cursor = segment.cursor
        assert cursor is not None
        ts = item.ts
        duration = self._ticks(item.payload)
        if duration == 0:
            return  # an empty or unreadable payload holds no time
        end = ts + duration
        if end <= cursor:
            self.stats.late += 1  # its time is already played (a drain passed it)
            return
        if segment.heap:
            following = segment.pending[segment.heap[0]].ts
            if ts < following < end:
                end = following  # the next packet starts earlier: it wins the overlap
        fitter = self._fitter
        start = max(ts, cursor)
        if self.rate == self.clock:  # output positions are RTP ticks: no rounding to do
            skip, count = start - ts, end - start
        else:
            skip = self._out_pos(segment, start) - self._out_pos(segment, ts)
            count = self._out_pos(segment, end) - self._out_pos(segment, start)
        if self.codes is not None and not skip and duration == count and not len(fitter.held):
            # The usual G.711 packet: its audio would exactly fill its slot with nothing held
            # from before; its codes are handed out undecoded (see ``codes``).
            self._out.append(item.payload)
            self.position += count
            ticks = duration
        else:
            samples, ticks = self._decode(item.payload)
            if not skip and len(samples) == count and not len(fitter.held):
                # Audio that exactly fills its slot: what the fitter would hand out.
                if count:
                    self._out.append(samples)
                    self.position += count
            else:
                fitter.push(samples)
                if skip:
                    fitter.drop(skip)
                self._emit(fitter.take(count, pad_front=True))
        segment.cursor = end
        segment.audio_end = self.position
        segment.audio_arrival = item.arrival
        segment.audio_ticks = ticks
        self.stats.packets += 1

    def _judge_forced(self, segment: _Segment, item: _Item, lost: int) -> None:
        """What the silence ``play_to`` put in before ``item`` was: lost audio where packets
        were missing (``lost`` of them) or where ``item`` itself came too late; else a gap."""
        assert segment.forced is not None
        begun, until = segment.forced
        end = item.ts + (self.decoder.ticks(item.payload) if item.audio else 0)
        first = begun if lost else max(item.ts, begun)
        last = min(until, end)
        if last > first:
            a, b = self._out_pos(segment, first), self._out_pos(segment, last)
            self._lost.append((a, b))
            self.stats.lost_samples += b - a
            self.stats.gap_samples -= b - a
        segment.forced = None if item.ts >= until or last >= until else (max(begun, last), until)

    def _silence(self, segment: _Segment, until: int, lost: bool) -> None:
        assert segment.cursor is not None
        count = self._out_pos(segment, until) - self._out_pos(segment, segment.cursor)
        # The decoder's resampler rings out its last packet over the first few milliseconds.
        self._fitter.push(self.decoder.silence(min(until - segment.cursor, self.clock // 50)))
        begun = self.position
        self._emit(self._fitter.take(count, pad_front=False))
        if lost:
            self._lost.append((begun, self.position))
            self.stats.lost_samples += count
        else:
            self.stats.gap_samples += count
        segment.cursor = until
