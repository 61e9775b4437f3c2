"""The SIPREC media thread alone: its CPU per packet, and a digest of what it delivered.

    .venv/bin/python benchmarks/siprec_media.py [--streams 1000] [--blocks 150]

A ``MediaEngine`` (drivers/siprec/media.py) driven by hand, as the tests drive it: N/2
two-stream PCMU sessions on real sockets of 127.0.0.1 (ports 61000 and up), a clock moved 20 ms
per block, and for each block one packet per stream sent from this process, then the engine's
``_drain`` (the reads before a block) and ``tick`` (the block). Every 97th block loses a
seventh of the streams' packets, so the loss path runs too. Only the engine's calls are timed
(``process_time``), after 20 blocks of warm-up: what ``benchmarks/siprec.py`` measures without
the SIP server, the writer, the sender or the scheduler, so a change to the media path is
measured in seconds and its figure moves less with the machine's load.

The digest (SHA-256 of every block delivered, the channel losses reported) must not change
with an optimisation: the same packets, the same audio at the same places. ``--ordinary``
runs without the express lane (drivers/siprec/lanes.py): the same digest, the cost of the
ordinary path.
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import struct
import sys
import time
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from recorder.drivers.base import ChannelLoss, DriverState
from recorder.drivers.lineevents import LineEvent
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import AnsweredStream, DialogId, RecordingSession
from recorder.drivers.siprec.media import MediaEngine
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.sipheaders import Headers, NameAddr

HOST = "127.0.0.1"
RTP_BASE = 61000
SOURCE_PORT = 30000
WARM_UP = 20


class DigestSink:
    """A DriverSink that keeps a digest of every block and every channel loss."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.losses: list[ChannelLoss] = []
        self.events = 0

    def audio(self, block: npt.NDArray[np.int16], lost_frames: int = 0) -> None:
        self.digest.update(block.tobytes())

    def line(self, event: LineEvent) -> None:
        self.events += 1

    def state(self, state: DriverState, detail: str = "") -> None:
        pass

    def channel_lost(self, losses: list[ChannelLoss]) -> None:
        self.losses += losses


def session(number: int, pcmu: PayloadFormat) -> RecordingSession:
    streams = tuple(AnsweredStream(i, None, RTP_BASE + 4 * number + 2 * i,
                                   (HOST, SOURCE_PORT), pcmu, None, None, None, None, False,
                                   None) for i in range(2))
    return RecordingSession(DialogId(f"bench-{number}", "a", "b"),
                            NameAddr.parse(f"<sip:src@{HOST}>"),
                            NameAddr.parse(f"<sip:{7000 + number}@{HOST}>"), (HOST, 5060), "UDP",
                            Headers(), None, (), None, streams, datetime.now(UTC))


def run(streams: int, blocks: int, *, express: bool = True) -> tuple[float, str, int, int]:
    """(CPU µs per packet, digest, losses reported, frames they cover)."""
    sessions = streams // 2
    config = SiprecBoardConfig(sip_port=0, rtp_port_min=RTP_BASE,
                               rtp_port_max=RTP_BASE + 4 * sessions + 63, max_sessions=sessions)
    now = [1000.0]
    engine = MediaEngine("bench", config, clock=lambda: now[0], express=express)
    sink = DigestSink()
    engine.attach(sink)
    pcmu = PayloadFormat(0, "PCMU", 8000)
    ports: list[int] = []
    for number in range(sessions):
        started = session(number, pcmu)
        engine.start_session(started)
        ports += [s.port for s in started.streams]
    rng = np.random.default_rng(1)
    payloads = [bytes(rng.integers(0, 254, 160, dtype=np.uint8)) for _ in range(50)]
    cpu = 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.bind((HOST, SOURCE_PORT))
        for n in range(blocks):
            for i, port in enumerate(ports):
                if n % 97 == 5 and i % 7 == 3:
                    continue
                header = struct.pack("!BBHII", 0x80, 0, n & 0xFFFF, (n * 160) & 0xFFFFFFFF,
                                     0x1000 + i)
                tx.sendto(header + payloads[(n + i) % 50], (HOST, port))
            began = time.process_time()
            engine._drain()
            now[0] += 0.02
            engine.tick(sink)
            if n >= WARM_UP:
                cpu += time.process_time() - began
    engine._shutdown()
    per_packet = cpu / max(1, (blocks - WARM_UP) * len(ports)) * 1e6
    return (per_packet, sink.digest.hexdigest()[:16], len(sink.losses),
            sum(frames for _, _, frames in sink.losses))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=150)
    parser.add_argument("--ordinary", action="store_true",
                        help="without the express lane (drivers/siprec/lanes.py): every packet "
                        "the ordinary way; the digest must be the same")
    args = parser.parse_args(argv)
    per_packet, digest, losses, frames = run(args.streams, args.blocks,
                                             express=not args.ordinary)
    print(f"{args.streams} streams, {args.blocks} blocks{', ordinary' if args.ordinary else ''}"
          f": {per_packet:.1f} µs CPU per packet; digest {digest}, {losses} losses over "
          f"{frames} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
