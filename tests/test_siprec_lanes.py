"""The media thread's express lane (drivers/siprec/lanes.py) records exactly what the ordinary
path records: the same board blocks, the same losses reported, the same line events and the
same per-stream counts in the log, on a rough mix of traffic (loss, reordering, packets too
late, duplicates, an SSRC change, silence suppression, telephone-events, RTCP on the RTP port,
a stranger, arrivals between blocks, a board that fell behind and dropped what waited).

The engine is driven by hand on a simulated clock (as benchmarks/siprec_media.py does), once
with its lanes and once without, with the same datagrams on real sockets of 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import struct
from datetime import UTC, datetime

import numpy as np
import pytest

from recorder.drivers.base import ChannelLoss, DriverState
from recorder.drivers.lineevents import LineEvent
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import AnsweredStream, DialogId, RecordingSession
from recorder.drivers.siprec.media import MediaEngine
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.sipheaders import Headers, NameAddr
from tests.helpers.net import rtp_test_range

HOST = "127.0.0.1"
SESSIONS = 12
BLOCKS = 420
COUNTS = re.compile(r"stream (\S+) on port \d+ from \S+: (.*)$")


class DigestSink:
    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.losses: list[ChannelLoss] = []
        self.events: list[tuple[int, str, str]] = []
        self.blocks = 0
        self.sound = 0

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        self.digest.update(block.tobytes())
        self.digest.update(str(lost_frames).encode())
        self.blocks += 1
        self.sound += int(np.count_nonzero(block))

    def line(self, event: LineEvent) -> None:
        self.events.append((self.blocks, event.kind.name, event.data.get("SESSION", "")))

    def state(self, state: DriverState, detail: str = "") -> None:
        pass

    def channel_lost(self, losses: list[ChannelLoss]) -> None:
        self.losses += losses


def session(number: int, base: int) -> RecordingSession:
    law = PayloadFormat(0, "PCMU", 8000) if number % 2 else PayloadFormat(8, "PCMA", 8000)
    events = PayloadFormat(101, "telephone-event", 8000) if number % 3 == 0 else None
    streams = tuple(AnsweredStream(i, None, base + 4 * number + 2 * i, (HOST, 0), law, events,
                                   None, None, None, False, None) for i in range(2))
    return RecordingSession(DialogId(f"lanes-{number}", "a", "b"),
                            NameAddr.parse(f"<sip:src@{HOST}>"),
                            NameAddr.parse(f"<sip:{7000 + number}@{HOST}>"), (HOST, 5060), "UDP",
                            Headers(), None, (), None, streams, datetime.now(UTC))


def packet(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, *,
           marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF,
                       ts & 0xFFFFFFFF, ssrc) + payload


def plan(streams: int) -> list[list[tuple[int, bytes, bool]]]:
    """For each block, the datagrams to send: (stream, datagram, from the stranger)."""
    rng = np.random.default_rng(7)
    payloads = [bytes(rng.integers(0, 256, 160, dtype=np.uint8)) for _ in range(64)]
    blocks: list[list[tuple[int, bytes, bool]]] = [[] for _ in range(BLOCKS + 12)]
    for i in range(streams):
        start = int(rng.integers(0, 6))  # streams begin apart
        ssrc, seq0, ts0 = 0x1000 + i, int(rng.integers(0, 65536)), int(rng.integers(0, 2**32))
        pt = 0 if (i // 2) % 2 else 8
        for n in range(start, BLOCKS - 20):
            if i % 5 == 0 and n == 200:  # a new SSRC, sequence and clock
                ssrc, seq0, ts0 = ssrc + 0x100, seq0 + 30000, ts0 + 123456789
            if i % 7 == 1 and 240 <= n < 265:
                continue  # silence suppression: nothing sent, time goes on
            k = n - start
            data = packet(pt, seq0 + k, ts0 + 160 * k, ssrc, payloads[(k + i) % 64],
                          marker=(i % 7 == 1 and n == 265))
            roll = rng.random()
            if roll < 0.006:
                continue  # lost
            if roll < 0.009:
                blocks[n + 8].append((i, data, False))  # 160 ms late: after its time
            elif roll < 0.014:
                blocks[n + 2].append((i, data, False))  # reordered, within the delay
            else:
                blocks[n].append((i, data, False))
            if roll > 0.99:
                blocks[n + 3].append((i, data, False))  # a duplicate
            if (i // 2) % 3 == 0 and roll > 0.985:  # a telephone-event
                blocks[n].append((i, packet(101, seq0 + k, ts0 + 160 * k, ssrc, bytes(4)),
                                  False))
            if roll > 0.995:
                blocks[n].append((i, bytes([0x80, 200]) + bytes(26), False))  # RTCP, muxed
            if 0.5 < roll < 0.504:
                blocks[n].append((i, data, True))  # the same packet from a stranger
    return blocks


Recorded = tuple[str, list[ChannelLoss], list[tuple[int, str, str]], list[str], dict[str, int]]


def record(express: bool, base: int, caplog: pytest.LogCaptureFixture) -> Recorded:
    config = SiprecBoardConfig(sip_port=0, rtp_port_min=base,
                               rtp_port_max=base + 4 * SESSIONS + 3, max_sessions=SESSIONS)
    now = [1000.0]
    engine = MediaEngine("lanes", config, clock=lambda: now[0], express=express)
    sink = DigestSink()
    engine.attach(sink)
    sessions = [session(n, base) for n in range(SESSIONS)]
    ports = []
    for started in sessions:
        engine.start_session(started)
        ports += [s.port for s in started.streams]
    caplog.clear()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
        tx.bind((HOST, 0))
        stranger.bind((HOST, 0))
        for n, sends in enumerate(plan(len(ports))):
            if n == BLOCKS:
                break
            half = len(sends) // 2
            for stream, data, odd in sends[:half]:
                (stranger if odd else tx).sendto(data, (HOST, ports[stream]))
            now[0] += 0.007  # arrivals between blocks: anchors off the block grid
            engine._poll(0)
            for stream, data, odd in sends[half:]:
                (stranger if odd else tx).sendto(data, (HOST, ports[stream]))
            now[0] += 0.013
            if n == 330:
                # The board fell behind: what waits is dropped, the skipped time is lost.
                engine._discard_waiting()
                engine.tick(sink, 1200)
                continue
            engine._drain()
            engine.tick(sink)
        for started in sessions:
            engine.end_session(started)
        for _ in range(40):
            now[0] += 0.02
            engine.tick(sink)
    lines = sorted(m.group(1) + " " + m.group(2) for r in caplog.records
                   if (m := COUNTS.search(r.getMessage())))
    stats = dict(engine._lanes.stats)
    engine._shutdown()
    return sink.digest.hexdigest(), sink.losses, sink.events, lines, stats


def test_the_express_lane_records_what_the_ordinary_path_records(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recorder.drivers.siprec")
    base, _ = rtp_test_range(4 * SESSIONS + 4)
    ordinary = record(False, base, caplog)
    express = record(True, base, caplog)
    assert ordinary[4]["packets"] == 0
    # The lanes did most of the work, and the traffic was rough enough to leave them often.
    assert express[4]["packets"] > 0.5 * 2 * SESSIONS * BLOCKS, express[4]
    assert express[4]["left"] > 50
    assert express[4]["heads"] > 0  # entered with decoded audio queued (after a late packet)
    lines = "\n".join(ordinary[3])
    for what in (r"[1-9]\d* late", r"[1-9]\d* duplicates", r"[1-9]\d* from elsewhere",
                 r"[1-9]\d* telephone-events", r"[1-9]\d* RTCP", r"[1-9]\d* dropped unread"):
        assert re.search(what, lines), what
    assert len(ordinary[3]) == 2 * SESSIONS
    assert express[3] == ordinary[3]  # every stream's counts
    assert express[2] == ordinary[2]  # line events, at the same blocks
    assert express[1] == ordinary[1]  # losses reported to the board
    assert express[0] == ordinary[0]  # every block, sample for sample
