"""The media thread's express lane: the usual packet of the usual stream handled in bulk.

Nearly every packet a recorder receives is the next one of a G.711 stream (its sequence number
and timestamp follow the last, from the latched source, 20 ms long) and nearly every block
takes a whole 20 ms of such a stream. Handled one at a time that costs tens of Python calls a
packet (the jitter buffer's insert and play, the stream's queue, the block's assembly): the
limit of a board's capacity (BENCHMARKS.md, SIPREC). A stream in its *lane* instead has its
state in arrays, one row per lane, and the media thread handles the packets of a wake-up
together: it reads each datagram into a row of a preallocated buffer (``batch``), and
``flush`` checks all of them with a few numpy operations and copies the payloads of those that
follow their stream into the lane's ring of G.711 codes; ``take`` then gives every lane's block
with one gather and one table lookup per law.

What a lane does is exactly what ``JitterBuffer`` and ``StreamMedia`` would do with the same
packets (``benchmarks/siprec_media.py``'s digest does not move): a stream enters its lane only
when its buffer holds nothing but such packets, in order and without a hole (they are played
at once: nothing can come between them any more, as a later packet for their time would be a
duplicate); a packet that is not the next one, a block the lane cannot fill (a packet late or
lost), an anchor moved, a session changed or ended: the stream leaves its lane first (``leave``
writes the lane's state back into its buffer, as if it had played those packets one by one),
and the packet or the block takes the ordinary way. The next block that finds the stream's
buffer in order again puts it back.

The clock-drift watch (``drift``) runs for lane packets too: the longest lead of a window is
kept per lane, and the window's close (every 2 s a stream) is the tracker's own code.

The coupling is deliberate and narrow: ``enter`` and ``leave`` read and write the jitter
buffer's segment (its cursor, sequence and arrival marks, the played set) and the stream's
queue, nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from recorder.drivers.siprec.jitter import MAX_MISORDER
from recorder.drivers.siprec.mediastream import StreamMedia

logger = logging.getLogger(__name__)

RATE = 8000  # a lane's stream is G.711 stored at its own rate
PACKET = 160  # codes (and RTP ticks) of a lane packet: 20 ms
HEADER = 12  # plain RTP: version 2, no padding, extension or CSRCs
ROW = 4096  # bytes read per datagram (media.RECV_BYTES)
BATCH = 512  # datagrams read before they are handled together
NO_LEAD = -(1 << 62)  # a drift window with no lead yet
_FIELDS = np.dtype({"names": ["b0", "b1", "seq", "ts", "ssrc"],
                    "formats": ["u1", "u1", ">u2", ">u4", ">u4"],
                    "offsets": [0, 1, 2, 4, 8], "itemsize": ROW})

Ints = npt.NDArray[np.int64]


class Lanes:
    """Up to ``count`` streams in their lanes; ``delay``: the board's playout delay (frames),
    ``frames``: its block."""

    def __init__(self, count: int, delay: int, frames: int) -> None:
        self.count = count
        self.frames = frames
        # The ring holds a lane's played, untaken audio: the playout delay, a block, and what
        # comes while the thread is held up for as long as it catches up after
        # (MAX_CATCH_UP_SECONDS); beyond that the stream takes the ordinary way.
        self.slots = -(-(delay + 2 * frames + round(MAX_CATCH_UP_SECONDS * RATE)) // PACKET)
        self.span = self.slots * PACKET
        # Twice over, so that any block from the first copy reads on into the second.
        self.ring = np.zeros((count, 2 * self.slots, PACKET), dtype=np.uint8)
        flat = self.ring.reshape(count, 2 * self.span)
        self._flat = flat
        self._windows = np.lib.stride_tricks.sliding_window_view(flat, frames, axis=1)
        self.streams: list[StreamMedia | None] = [None] * count
        self._free = list(range(count - 1, -1, -1))
        self.active = np.zeros(count, dtype=bool)
        z = np.zeros
        self.pt, self.ssrc, self.seq, self.ts = z(count, np.int64), z(count, np.int64), \
            z(count, np.int64), z(count, np.int64)
        self.base, self.written, self.taken, self.anchor = z(count, np.int64), \
            z(count, np.int64), z(count, np.int64), z(count, np.int64)
        self.channel, self.law, self.packets = z(count, np.int64), z(count, np.int64), \
            z(count, np.int64)
        self.first_seq = z(count, np.int64)
        self.last = z(count, np.float64)
        self.window_end, self.best, self.observed = z(count, np.int64), z(count, np.int64), \
            z(count, np.int64)
        self._tables: list[npt.NDArray[np.int16]] = []
        # Lanes whose first positions are decoded audio: (its first position, the audio).
        self.heads: dict[int, tuple[int, npt.NDArray[np.int16]]] = {}
        # The datagrams of a wake-up: read into rows of ``buffer`` (``rows[i]``), their lanes
        # and lengths in ``batch_lanes`` and ``batch_lengths``.
        self.buffer = np.zeros((BATCH, ROW), dtype=np.uint8)
        self.rows = [row.data for row in self.buffer]
        self._fields = self.buffer.reshape(-1).view(_FIELDS)
        self.batch_lanes: list[int] = []
        self.batch_lengths: list[int] = []
        self.stats = {"entered": 0, "left": 0, "packets": 0, "blocks": 0, "heads": 0}

    # --- joining and leaving ------------------------------------------------------------

    def enter(self, stream: StreamMedia) -> bool:
        """Put ``stream`` in a lane if its buffer holds only in-order packets; whether it is
        now. Called between blocks (the stream's block taken), never with a batch pending."""
        if not self._free or stream.lane >= 0 or not stream.solo or not stream.express:
            return False
        jitter = stream.jitter
        segment = jitter._segment
        if (stream.finished or stream.channel is None or stream.anchor is None
                or stream.source is None or segment is None or segment.cursor is None
                or jitter._candidate is not None or segment.forced is not None
                or len(jitter._fitter.held) or jitter._out or jitter._lost):
            return False
        queue = stream._queue
        if jitter.position != jitter._out_pos(segment, segment.cursor):
            return False
        seq, ts = segment.last_seq + 1, segment.cursor
        for number in sorted(segment.pending):
            item = segment.pending[number]
            if (number != seq or item.ts != ts or not item.audio
                    or len(item.payload) != PACKET):
                return False
            seq, ts = seq + 1, ts + PACKET
        if len(queue) + len(segment.pending) * PACKET > self.span - self.frames:
            return False
        # Play what is held now: in order and without a hole, nothing can come between.
        jitter._play(segment, None)
        pieces, lost = jitter.play_until(0)
        played = [p for p in pieces if isinstance(p, bytes)]
        if lost or len(played) != len(pieces):
            # Not what the checks above let through: no lane, and the next take has it all.
            stream._push_pieces(pieces)
            jitter._lost[:0] = lost
            return False
        # The lane's ring holds codes; audio already decoded in the queue (silence put in
        # for a late packet makes the queue audio until it runs empty, which a queue ending
        # inside a packet never does) is the lane's head, taken the ordinary way.
        head: npt.NDArray[np.int16] | None = None
        if isinstance(queue, bytes):
            prefix = queue + b"".join(played)
        else:
            prefix = b"".join(played)
            head = queue if len(queue) else None
        stream._queue = b""
        lane = self._free.pop()
        if head is not None:
            self.heads[lane] = (stream._taken, head)
            self.stats["heads"] += 1
        self.streams[lane] = stream
        stream.lane = lane
        table = jitter.codes
        assert table is not None
        law = next((i for i, t in enumerate(self._tables) if t is table), None)
        if law is None:
            law = len(self._tables)
            self._tables.append(table)
        self.active[lane] = True
        self.pt[lane] = jitter.decoder.fmt.pt
        self.ssrc[lane] = segment.ssrc
        self.seq[lane] = self.first_seq[lane] = segment.last_seq + 1
        self.ts[lane] = segment.cursor
        self.written[lane] = self.base[lane] = jitter.position
        self.taken[lane] = stream._taken
        self.anchor[lane] = stream.anchor
        self.channel[lane] = stream.channel
        self.law[lane] = law
        self.packets[lane] = 0
        self.last[lane] = stream.last_packet
        drift = stream.drift
        self.window_end[lane] = -1 if drift.window_end is None else drift.window_end
        self.best[lane] = NO_LEAD if drift.best is None else drift.best
        self.observed[lane] = drift.count
        if prefix:
            # The audio still queued sits just before the lane's base.
            codes = np.frombuffer(prefix, dtype=np.uint8)
            flat = self._flat[lane]
            flat[self.span - len(codes):self.span] = codes
            flat[2 * self.span - len(codes):] = codes
        self.stats["entered"] += 1
        return True

    def leave(self, stream: StreamMedia) -> None:
        """Take ``stream`` out of its lane: its buffer and queue as if every lane packet had
        been played the ordinary way."""
        lane = stream.lane
        if lane < 0:
            return
        jitter = stream.jitter
        segment = jitter._segment
        assert segment is not None
        packets = int(self.packets[lane])
        written, taken = int(self.written[lane]), int(self.taken[lane])
        if packets:
            seq, arrival = int(self.seq[lane]), float(self.last[lane])
            segment.last_seq = segment.max_seq = seq - 1
            segment.max_ts = int(self.ts[lane]) - PACKET
            segment.max_arrival = segment.audio_arrival = arrival
            segment.audio_ticks = PACKET
            segment.audio_end = written
            # Enough for a duplicate to be told from a late packet: an older one fits no
            # segment (MAX_MISORDER).
            segment.played.update(range(max(int(self.first_seq[lane]),
                                             seq - 2 * MAX_MISORDER), seq))
            jitter.stats.packets += packets
            stream.counts.packets += packets
            stream.last_packet = max(stream.last_packet, arrival)
        segment.cursor = int(self.ts[lane])
        jitter.position = written
        head = self.heads.pop(lane, None)
        start = taken
        audio: npt.NDArray[np.int16] | None = None
        if head is not None and taken < head[0] + len(head[1]):
            audio = head[1][taken - head[0]:]
            start = head[0] + len(head[1])
        offset = (start - int(self.base[lane])) % self.span
        codes = self._flat[lane, offset:offset + written - start]
        stream._queue = (codes.tobytes() if audio is None else np.concatenate(
            (audio, self._tables[int(self.law[lane])].take(codes))))
        stream._taken = taken
        drift = stream.drift
        end, best = int(self.window_end[lane]), int(self.best[lane])
        drift.window_end = None if end < 0 else end
        drift.best = None if best == NO_LEAD else best
        drift.count = int(self.observed[lane])
        self.active[lane] = False
        self.streams[lane] = None
        self._free.append(lane)
        stream.lane = -1
        self.stats["left"] += 1

    def leave_all(self, streams: Sequence[StreamMedia]) -> None:
        for stream in streams:
            self.leave(stream)

    def sync_arrivals(self) -> None:
        """Bring the lane streams' ``last_packet`` (the media timeout's) up to date."""
        for lane in np.flatnonzero(self.active).tolist():
            stream = self.streams[lane]
            assert stream is not None
            stream.last_packet = max(stream.last_packet, float(self.last[lane]))

    # --- packets in -----------------------------------------------------------------------

    def flush(self, arrival: float, position: int, delay: int) -> None:
        """Handle the datagrams read since the last flush (all at monotonic ``arrival``, the
        board at ``position``): the next packets of their lanes into the rings, the others
        (and all after them of the same stream) the ordinary way."""
        count = len(self.batch_lanes)
        if not count:
            return
        lanes = np.array(self.batch_lanes, dtype=np.int64)
        lengths = np.array(self.batch_lengths, dtype=np.int64)
        self.batch_lanes.clear()  # in place: the media thread's read loop holds these lists
        self.batch_lengths.clear()
        fields = self._fields[:count]
        order = np.argsort(lanes, kind="stable")  # by lane, in arrival order within one
        by_lane = lanes[order]
        starts_mask = np.ones(count, dtype=bool)
        starts_mask[1:] = by_lane[1:] != by_lane[:-1]
        starts = np.flatnonzero(starts_mask)
        group = np.cumsum(starts_mask) - 1
        nth = np.arange(count) - starts[group]  # the how-many-th of its lane in this batch
        ok = ((lengths[order] == HEADER + PACKET) & (fields["b0"][order] == 0x80)
              & (fields["b1"][order] == self.pt[by_lane])
              & (fields["ssrc"][order] == self.ssrc[by_lane])
              & (fields["seq"][order] == (self.seq[by_lane] + nth) & 0xFFFF)
              & (fields["ts"][order] == (self.ts[by_lane] + nth * PACKET) & 0xFFFFFFFF)
              & (self.written[by_lane] + (nth + 1) * PACKET - self.taken[by_lane]
                 <= self.span - self.frames)
              & self.active[by_lane])
        sizes = np.diff(np.append(starts, count))
        if ok.all():
            good = ok
            advance = sizes
        else:
            # A lane's packets count only up to its first that does not follow.
            first_bad = np.minimum.reduceat(np.where(ok, count, nth), starts)
            good = nth < first_bad[group]
            advance = np.minimum(first_bad, sizes)
        lane_of = by_lane[starts]
        if good.any():
            self._store(by_lane[good], nth[good], order[good])
            self._advance(lane_of, advance, arrival, position)
        if not good.all():
            for row in np.sort(order[~good]).tolist():
                stream = self.streams[int(lanes[row])]
                assert stream is not None
                source = stream.source
                assert source is not None
                self.leave(stream)
                stream.receive(self.buffer[row, :int(lengths[row])].tobytes(), source,
                               arrival, position, delay)

    def _store(self, lanes: Ints, nth: Ints, rows: Ints) -> None:
        slot = ((self.written[lanes] + nth * PACKET - self.base[lanes]) // PACKET) % self.slots
        payloads = self.buffer[rows, HEADER:HEADER + PACKET]
        self.ring[lanes, slot] = payloads
        self.ring[lanes, slot + self.slots] = payloads
        self.stats["packets"] += len(lanes)

    def _advance(self, lanes: Ints, advance: Ints, arrival: float, position: int) -> None:
        moved = advance > 0
        lanes, advance = lanes[moved], advance[moved]
        before = self.written[lanes]
        self.written[lanes] = before + advance * PACKET
        self.seq[lanes] += advance
        self.ts[lanes] += advance * PACKET
        self.packets[lanes] += advance
        self.last[lanes] = arrival
        # The clock-drift watch: the last packet's lead is the longest of this wake-up.
        unset = self.window_end[lanes] < 0
        if unset.any():
            self.window_end[lanes[unset]] = position + self._window(lanes[unset])
        closing = self.window_end[lanes] <= position
        lead = self.anchor[lanes] + before + (advance - 1) * PACKET - position
        keep = ~closing
        kept = lanes[keep]
        self.best[kept] = np.maximum(self.best[kept], lead[keep])
        self.observed[kept] += advance[keep]
        if closing.any():
            for lane, first, n in zip(lanes[closing].tolist(), before[closing].tolist(),
                                      advance[closing].tolist(), strict=True):
                self._close_window(lane, first, n, position)

    def _window(self, lanes: Ints) -> Ints:
        windows = [s.drift.window if (s := self.streams[i]) is not None else 0
                   for i in lanes.tolist()]
        return np.array(windows, dtype=np.int64)

    def _close_window(self, lane: int, first: int, packets: int, position: int) -> None:
        """A lane's drift window closes: the tracker's own code, packet by packet."""
        stream = self.streams[lane]
        assert stream is not None
        assert stream.anchor is not None
        drift = stream.drift
        best = int(self.best[lane])
        drift.window_end = int(self.window_end[lane])
        drift.best = None if best == NO_LEAD else best
        drift.count = int(self.observed[lane])
        for n in range(packets):
            stream.observe_lead(stream.anchor + first + n * PACKET - position, position)
        self.anchor[lane] = stream.anchor  # a move makes the next ``take`` leave the lane
        self.window_end[lane] = -1 if drift.window_end is None else drift.window_end
        self.best[lane] = NO_LEAD if drift.best is None else drift.best
        self.observed[lane] = drift.count

    # --- audio out ------------------------------------------------------------------------

    def take(self, block: npt.NDArray[np.int16], start: int) -> list[StreamMedia]:
        """Write the block from board position ``start`` of every lane that holds all of it
        into ``block``; the streams of the lanes that do not (they must leave and take the
        ordinary way)."""
        lanes = np.flatnonzero(self.active)
        if not len(lanes):
            return []
        frames = self.frames
        first = start - self.anchor[lanes]
        # A block the board skipped (it fell behind) is dropped, as ``StreamMedia.take`` does.
        ok = (first >= self.taken[lanes]) & (self.written[lanes] >= first + frames)
        missing = lanes[~ok].tolist()
        if self.heads:
            heads = np.isin(lanes, list(self.heads)) & ok
            for lane, at in zip(lanes[heads].tolist(), first[heads].tolist(), strict=True):
                self._take_head(block, lane, at)
            ok &= ~heads
        lanes = lanes[ok]
        if len(lanes):
            first = first[ok]
            offsets = (first - self.base[lanes]) % self.span
            codes = self._windows[lanes, offsets]
            self.taken[lanes] = first + frames
            channels = self.channel[lanes]
            if len(self._tables) == 1:
                block[:, channels] = self._tables[0].take(codes).T
            else:
                laws = self.law[lanes]
                for law, table in enumerate(self._tables):
                    mine = laws == law
                    if mine.any():
                        block[:, channels[mine]] = table.take(codes[mine]).T
            self.stats["blocks"] += len(lanes)
        return [s for lane in missing if (s := self.streams[lane]) is not None]

    def _take_head(self, block: npt.NDArray[np.int16], lane: int, first: int) -> None:
        """``take`` for a lane with a head: its part of the block, then the ring's."""
        begun, head = self.heads[lane]
        frames = self.frames
        ends = begun + len(head)
        samples = np.empty(frames, dtype=np.int16)
        split = max(0, min(frames, ends - first))
        samples[:split] = head[first - begun:first - begun + split]
        if split < frames:
            offset = (first + split - int(self.base[lane])) % self.span
            codes = self._flat[lane, offset:offset + frames - split]
            samples[split:] = self._tables[int(self.law[lane])].take(codes)
        block[:, int(self.channel[lane])] = samples
        self.taken[lane] = first + frames
        if first + frames >= ends:
            del self.heads[lane]
        self.stats["blocks"] += 1
