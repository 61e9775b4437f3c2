"""One answered stream's media on the media thread: who may send on it, SRTP, its jitter buffer,
and where its audio lands on the board's timeline.

- **Who may send.** RTP must come from the address the SRC's SDP names for the stream (any
  port of it: many SBCs send from another port than they offer) and from a network in
  ``allow``; the first source that qualifies is latched, and from then on only that
  address and port are heard. When the SDP's address is unusable (a host name, or none), the
  first allowed source is latched. Everything else is dropped and counted: a recording is
  evidence.
- **SRTP**: with a negotiated ``a=crypto`` key every packet is authenticated and decrypted
  (``srtp``); what fails is dropped and counted.
- **RTCP** is read and counted, never used: on the port above the RTP port (bound with it, so
  the SRC's reports meet an open port rather than an ICMP port-unreachable, which some SBCs
  take for a dead recorder), or, with rtcp-mux, told apart on the RTP port itself.
- **The timeline.** The first packet anchors the stream: its audio is placed ``delay``
  frames after the board position it arrived at, and every later sample sits where its RTP
  timestamp puts it after that (the jitter buffer keeps the time exact; ``delay`` is the
  reordering and jitter the stream may have). ``take`` gives the stream's samples for one
  board block, asking the jitter buffer to play up to the block's end, and the board
  positions that are silence for lost audio.
- **Clock drift.** A sender whose clock runs slow or fast against ours would drift off its
  anchor; ``drift.DriftTracker`` watches how far ahead each packet lands and moves the anchor
  by a few milliseconds at a block seam when that has changed (silence inserted, or audio left
  out), counted in ``StreamCounts``.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recorder.drivers.siprec.drift import DriftTracker
from recorder.drivers.siprec.events import AnsweredStream
from recorder.drivers.siprec.jitter import JitterBuffer, Piece
from recorder.drivers.siprec.rtp import (
    HEADER_BYTES,
    RTCP_TYPES,
    Kind,
    classify,
    parse_rtp,
)
from recorder.drivers.siprec.rtpcodecs import create_decoder
from recorder.drivers.siprec.srtp import SrtpReceiver

logger = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]
_PLAIN_RTP = 0x80  # version 2, no padding, no extension, no CSRCs
MAX_RTCP_READS = 64  # datagrams read from an RTCP socket in one pass
RTCP_RECV_BYTES = 4096
_PLAIN_HEADER = struct.Struct("!xBHII")  # marker and payload type, sequence, timestamp, SSRC
_RTCP_FIRST, _RTCP_LAST = RTCP_TYPES[0], RTCP_TYPES[-1]
_SCRATCH = bytearray(RTCP_RECV_BYTES)  # what discard_waiting reads into (media thread only)


@dataclass
class StreamCounts:
    """What a stream's socket received, beyond what the jitter buffer counts."""

    packets: int = 0  # RTP packets taken
    wrong_source: int = 0  # from an address that may not send on it
    rtcp: int = 0  # on the RTCP port or muxed on the RTP port; read and dropped
    malformed: int = 0
    srtp_dropped: int = 0
    drift_moves: int = 0  # anchor moves for clock drift
    drift_inserted: int = 0  # frames of silence those moves put in (a slow sender)
    drift_dropped: int = 0  # frames of audio they left out (a fast sender)
    unread: int = 0  # datagrams dropped unread: the media thread fell too far behind


def bind_pair(family: socket.AddressFamily, address: str, port: int
              ) -> tuple[socket.socket, socket.socket]:
    """Non-blocking UDP sockets bound to ``port`` (RTP) and ``port + 1`` (RTCP); OSError if
    either cannot be bound (neither is left open then)."""
    bound: list[socket.socket] = []
    try:
        for number in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            bound.append(sock)
            sock.bind((address, number))
            sock.setblocking(False)
    except OSError:
        for sock in bound:
            sock.close()
        raise
    return bound[0], bound[1]


def usable_host(remote: tuple[str, int] | None) -> str | None:
    """The SDP's address for the stream, if it names one we can hold packets to."""
    if remote is None:
        return None
    try:
        address = ipaddress.ip_address(remote[0])
    except ValueError:
        return None  # a host name: we do not resolve names for a media check
    return None if address.is_unspecified else str(address)


class StreamMedia:
    """One stream: its socket (owned by the media thread), its buffer and its place on the
    board. ``channel`` is the board channel it is written to; None: read and discarded."""

    def __init__(self, stream: AnsweredStream, sock: socket.socket | None, channel: int | None,
                 rate: int, *, allowed: Callable[[str], bool], now: float,
                 rtcp: socket.socket | None = None) -> None:
        self.stream = stream
        self.sock = sock
        self.rtcp = rtcp
        self.channel = channel
        self._allowed = allowed
        self._expected = usable_host(stream.remote)
        self.source: tuple[str, int] | None = None
        self.srtp = SrtpReceiver(stream.crypto) if stream.crypto is not None else None
        decoder = create_decoder(stream.codec, rate)
        if decoder is None:  # the answer only takes codecs we decode
            raise ValueError(f"no decoder for {stream.codec.name}")
        self.jitter = JitterBuffer(
            decoder, events_pt=stream.telephone_event.pt if stream.telephone_event else None,
            cn_pt=stream.comfort_noise.pt if stream.comfort_noise else None)
        self.counts = StreamCounts()
        self.drift = DriftTracker(rate)
        self._segments = 0
        self.last_packet = now  # monotonic: the media timeout counts from here
        self.anchor: int | None = None  # board position of the jitter buffer's sample 0
        self.finished = False  # flushed: what is left is in the queue
        self._queue: Piece = b""  # played, not yet taken: output positions from _taken
        self._taken = 0
        # The express lane (``lanes``): its index while the lane holds this stream's in-order
        # packets (-1: not in it); ``solo``: the only stream of its channel (the engine says).
        self.lane = -1
        self.solo = False
        self.express = (self.srtp is None and self.jitter.codes is not None
                        and self.jitter.plain_audio)

    @property
    def paused(self) -> bool:
        return self.stream.paused

    @property
    def port(self) -> int:
        return self.stream.port

    # --- packets in ---------------------------------------------------------------------

    def accepts(self, source: tuple[str, int]) -> bool:
        """Whether a packet from ``source`` may reach the recording (latching the first)."""
        if self.source is not None:
            return source[:2] == self.source
        host = source[0]
        if self._expected is not None and host != self._expected:
            return False
        if not self._allowed(host):
            return False
        self.source = (host, source[1])
        return True

    def drain_rtcp(self) -> None:
        """Read what has come on the RTCP port (a bounded number of datagrams, so no socket
        starves the others): RTCP is only counted, never used."""
        sock = self.rtcp
        if sock is None:
            return
        for _ in range(MAX_RTCP_READS):
            try:
                _, source = sock.recvfrom(RTCP_RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue  # an ICMP error for a datagram of ours: nothing to read
                return
            self.receive_rtcp(source)

    def discard_waiting(self) -> None:
        """Drop, unread, every datagram waiting on the RTP socket (counted in ``unread``): the
        media thread fell so far behind that their time was written as silence, and reading
        them one by one would only keep it behind (``MediaEngine.run``). The jitter buffer
        counts the packets among them as lost when the next one comes."""
        sock = self.sock
        if sock is None:
            return
        while True:
            try:
                sock.recv_into(_SCRATCH)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                    continue  # an ICMP error for a datagram of ours: nothing to read
                return
            self.counts.unread += 1

    def receive_rtcp(self, source: tuple[str, int]) -> None:
        """A datagram on the RTCP port: counted (from the stream's sender's address) and
        dropped; it never latches the RTP source."""
        host = source[0]
        sender = self.source[0] if self.source is not None else self._expected
        if (sender is None or host == sender) and self._allowed(host):
            self.counts.rtcp += 1
        else:
            self.counts.wrong_source += 1

    def receive(self, data: bytes, source: tuple[str, int], arrival: float,
                position: int, delay: int) -> None:
        """A datagram from ``source`` at monotonic ``arrival``, the board being at
        ``position``; a first packet anchors the stream ``delay`` frames later."""
        if self.finished:
            return
        if source != self.source and not self.accepts(source):
            self.counts.wrong_source += 1
            return
        if self.channel is None:
            self.counts.packets += 1  # a session not recorded here: heard, never kept
            self.last_packet = arrival
            return
        if (self.srtp is None and len(data) >= HEADER_BYTES and data[0] == _PLAIN_RTP
                and not _RTCP_FIRST <= data[1] <= _RTCP_LAST):
            # Nearly every packet: plain RTP with no padding, CSRCs or extension. What
            # classify and parse_rtp would find, read here without making an RtpPacket.
            self.counts.packets += 1
            self.last_packet = arrival
            if self.anchor is None:
                self.anchor = position + delay
            header = _PLAIN_HEADER.unpack_from(data)
            self.jitter.push_fields(header, data[HEADER_BYTES:], arrival)
            self._follow_clock(header[3], header[2], position)
            return
        kind = classify(data)
        if kind is Kind.RTCP:
            self.counts.rtcp += 1
            return
        if self.srtp is not None:
            clear = self.srtp.unprotect(data)
            if clear is None:
                self.counts.srtp_dropped += 1
                return
            data = clear
        packet = parse_rtp(data)
        if packet is None:
            self.counts.malformed += 1
            return
        self.counts.packets += 1
        self.last_packet = arrival
        if self.anchor is None:
            self.anchor = position + delay
        self.jitter.push(packet, arrival)
        self._follow_clock(packet.ssrc, packet.timestamp, position)

    def _follow_clock(self, ssrc: int, timestamp: int, position: int) -> None:
        """Move the anchor when the sender's clock drifts from ours (module docstring)."""
        assert self.anchor is not None
        if self.jitter.stats.segments != self._segments:
            self._segments = self.jitter.stats.segments
            self.drift.reset()  # a new segment is placed afresh by the jitter buffer
        placed = self.jitter.placed(ssrc, timestamp)
        if placed is not None:
            self.observe_lead(self.anchor + placed - position, position)

    def observe_lead(self, lead: int, position: int) -> None:
        """A packet placed ``lead`` frames ahead of the board ``position`` it arrived at: the
        drift tracker's, and the anchor's move if it says so."""
        assert self.anchor is not None
        shift = self.drift.observe(lead, position)
        if shift:
            # ``take`` does the rest: a later anchor leaves the next block's first ``shift``
            # frames silent; an earlier one drops that much of what was played.
            self.anchor += shift
            self.counts.drift_moves += 1
            if shift > 0:
                self.counts.drift_inserted += shift
            else:
                self.counts.drift_dropped -= shift

    # --- audio out ----------------------------------------------------------------------

    def take(self, start: int, frames: int) -> tuple[Piece | None, list[tuple[int, int]]]:
        """The stream's samples for board positions [start, start + frames) (None: it has
        nothing there; bytes: a whole block of G.711 codes, ``codes`` decodes them), and the
        board stretches (start, frames) found to be lost audio."""
        anchor = self.anchor
        if anchor is None or anchor >= start + frames:
            return None, []
        losses: list[tuple[int, int]] = []
        if not self.finished:
            pieces, lost = self.jitter.play_until(start + frames - anchor)
            if pieces:
                self._push_pieces(pieces)
            if lost:
                losses = [(anchor + a, b - a) for a, b in lost]
        first = start - anchor  # output position of the block's first frame
        if first > self._taken:
            self._drop(first - self._taken)  # a block the board skipped (it fell behind)
        queue = self._queue
        offset = max(0, self._taken - first)  # the stream begins inside the block
        count = min(frames - offset, len(queue))
        if count <= 0:
            return None, losses
        out: Piece
        if count == frames:
            # The whole block: a view of the queue (or its codes), which the caller copies at
            # once (nothing writes into the queue's arrays: they are only ever replaced).
            out = queue[:frames]
        else:
            out = np.zeros(frames, dtype=np.int16)
            out[offset:offset + count] = self.jitter.decode_piece(queue[:count])
        self._queue = queue[count:]
        self._taken += count
        return out, losses

    def finish(self) -> int | None:
        """The stream is over: everything held is played; the board position its audio ends
        at (None if it never sent)."""
        if not self.finished:
            self.finished = True
            self._push(self.jitter.flush().samples)
        return None if self.anchor is None else self.anchor + self._taken + len(self._queue)

    @property
    def drained(self) -> bool:
        """Finished and every sample taken."""
        return self.finished and not len(self._queue)

    def close(self) -> None:
        for sock in (self.sock, self.rtcp):
            if sock is not None:
                sock.close()
        self.sock = self.rtcp = None

    @property
    def codes(self) -> Samples | None:
        """The table ``take``'s bytes decode through (one ``take`` of their codes)."""
        return self.jitter.codes

    def _push(self, samples: Samples) -> None:
        self._push_pieces([samples])

    def _push_pieces(self, pieces: list[Piece]) -> None:
        """Queue what the jitter buffer played. The queue stays G.711 codes while nothing but
        codes comes (so the media thread decodes many streams' blocks at once), and is audio
        from the first piece that is not until it runs empty."""
        queue = self._queue
        codes = [p for p in pieces if isinstance(p, bytes)]
        if len(codes) == len(pieces) and (isinstance(queue, bytes) or not len(queue)):
            self._queue = bytes(queue) + b"".join(codes)
            return
        decode = self.jitter.decode_piece
        parts = [decode(p) for p in (queue, *pieces) if len(p)]
        if parts:
            self._queue = parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _drop(self, count: int) -> None:
        dropped = min(count, len(self._queue))
        self._queue = self._queue[dropped:]
        self._taken += count


@dataclass(frozen=True, eq=False)
class RtcpPort:
    """What the media thread's selector holds for a stream's RTCP socket."""

    stream: StreamMedia
