"""The two child processes of ``benchmarks/siprec.py``: the SRC that sends the load, and the
bare baseline receiver it is compared with.

    siprec_load.py src --streams N --seconds T --warmup W (--sip HOST:PORT | --ports FILE)
    siprec_load.py bare --streams N --directory DIR

**src**: with ``--sip``, sets up N/2 recording sessions over SIP/UDP (INVITE with a plain SDP
offer of two ``m=audio`` PCMU streams, ACK; a few INVITEs in flight at once) and reads each
200 OK's two RTP ports; with ``--ports``, takes the ports from a JSON file (the bare
receiver's). Then it sends a 20 ms PCMU packet to every port every 20 ms for ``--seconds``,
paced on the monotonic clock: the streams are spread over ten 2 ms phases (as real calls are
not in step), every packet sent at its time from one socket; a late sender catches up at once
rather than skipping, and reports how late it ran. Then BYE for every session. It tells the
parent where it is with JSON lines on stdout: ``setup``, ``steady`` (``--warmup`` seconds into
the sending, where the parent starts measuring), ``end`` (the last packet sent), ``done``
(its figures).

**bare**: N UDP sockets on 127.0.0.1, one epoll selector, each ready socket drained with
``recvfrom`` until it would block, each packet's payload decoded by a numpy table lookup
(G.711 μ-law, codecs/g711's table) and appended to that stream's mono WAV file; after a wake-up
that read something it waits ``--gather-ms`` (2 ms, as recorderd's media thread does) so that
the next wake-up finds many packets. It prints its ports as a JSON line, runs until a line
arrives on stdin, then closes its files and prints what it received.

The audio is a tone whose μ-law codes never decode to zero (0xFF and 0x7F are replaced by
their neighbours), so a zero sample in a recording is silence the recorder put in.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import selectors
import socket
import sys
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from siprec_send import Streams

from recorder.codecs import g711
from recorder.drivers.siprec.sipheaders import NameAddr
from recorder.drivers.siprec.sipmessage import ParseError, SipResponse, parse_message

HOST = "127.0.0.1"
RATE = 8000
PACKET_MS = 20
FRAMES = RATE * PACKET_MS // 1000  # samples (and RTP ticks) per packet
PHASES = 10  # sub-ticks per packet period: streams are spread over them
TONE_PACKETS = 50  # one second of distinct payloads, replayed
SIP_WINDOW = 16  # INVITEs (or BYEs) in flight at once
SIP_RETRY = 1.0  # seconds before a request with no final answer is sent again
SIP_TRIES = 5
LATE_SECONDS = 0.010  # a packet sent this much after its time counts as late


def tone_payloads() -> list[bytes]:
    """One second of a 440 Hz tone as 20 ms μ-law payloads; no code decodes to zero."""
    t = np.arange(TONE_PACKETS * FRAMES) / RATE
    samples = np.round(np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    codes = g711.encode(samples, "ulaw")
    codes[codes == 0xFF] = 0xFE  # ±0 become ±8: the smallest step
    codes[codes == 0x7F] = 0x7E
    return [codes[i * FRAMES:(i + 1) * FRAMES].tobytes() for i in range(TONE_PACKETS)]


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def cpu_seconds() -> float:
    return time.process_time()


# --- SIP (the SRC side, just enough for this) -------------------------------------------------


@dataclass
class Session:
    """One recording session as the SRC sees it."""

    number: int
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(8)}@{HOST}")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_tag: str = ""
    ports: tuple[int, ...] = ()
    status: int = 0  # final answer to the INVITE
    bye_status: int = 0


class Signalling:
    """SIP over one UDP socket: INVITE/ACK and BYE for many sessions, a window at a time."""

    def __init__(self, server: tuple[str, int], rtp_port: int) -> None:
        self.server = server
        self.rtp_port = rtp_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = int(self.sock.getsockname()[1])

    def _request(self, method: str, session: Session, cseq: int, body: str = "",
                 to_tag: str = "") -> bytes:
        tag = f";tag={to_tag}" if to_tag else ""
        lines = [f"{method} sip:recorder@{self.server[0]}:{self.server[1]} SIP/2.0",
                 f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{secrets.token_hex(6)}"
                 ";rport",
                 "Max-Forwards: 70",
                 f"From: <sip:src@{HOST}>;tag={session.from_tag}",
                 f"To: <sip:{7000 + session.number}@{HOST}>{tag}",
                 f"Call-ID: {session.call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: <sip:src@{HOST}:{self.port}>;+sip.src"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def _offer(self, session: Session) -> str:
        lines = ["v=0", f"o=src {session.number} 1 IN IP4 {HOST}", "s=-",
                 f"c=IN IP4 {HOST}", "t=0 0"]
        for _ in range(2):
            lines += [f"m=audio {self.rtp_port} RTP/AVP 0", "a=rtpmap:0 PCMU/8000",
                      "a=sendonly"]
        return "\r\n".join(lines) + "\r\n"

    def invite_all(self, sessions: list[Session], deadline: float) -> None:
        def send(s: Session) -> None:
            self.sock.sendto(self._request("INVITE", s, 1, self._offer(s)), self.server)

        def answered(s: Session, response: SipResponse) -> None:
            s.status = response.status
            s.to_tag = NameAddr.parse(response.headers.get("to") or "").tag or ""
            if 200 <= response.status < 300:
                s.ports = tuple(int(line.split()[1]) for line in
                                response.body.decode(errors="replace").splitlines()
                                if line.startswith("m=audio "))
            # The ACK of a 2xx is a request of its own; of a refusal, the same answer.
            self.sock.sendto(self._request("ACK", s, 1, to_tag=s.to_tag), self.server)

        self._exchange(sessions, "INVITE", send, answered, deadline)

    def bye_all(self, sessions: list[Session], deadline: float) -> None:
        def send(s: Session) -> None:
            self.sock.sendto(self._request("BYE", s, 2, to_tag=s.to_tag), self.server)

        def answered(s: Session, response: SipResponse) -> None:
            s.bye_status = response.status

        self._exchange([s for s in sessions if s.ports], "BYE", send, answered, deadline)

    def _exchange(self, sessions: list[Session], method: str, send: Callable[[Session], None],
                  answered: Callable[[Session, SipResponse], None], deadline: float) -> None:
        """Send ``method`` for every session, ``SIP_WINDOW`` waiting at once, until each has
        its final answer (or ``deadline``); requests without one are sent again."""
        by_id = {s.call_id: s for s in sessions}
        todo = list(reversed(sessions))
        waiting: dict[str, tuple[float, int]] = {}  # call-id -> (sent at, tries)
        self.sock.settimeout(0.05)
        while (todo or waiting) and time.monotonic() < deadline:
            while todo and len(waiting) < SIP_WINDOW:
                session = todo.pop()
                send(session)
                waiting[session.call_id] = (time.monotonic(), 1)
            now = time.monotonic()
            for call_id, (sent, tries) in list(waiting.items()):
                if now - sent > SIP_RETRY and tries < SIP_TRIES:
                    send(by_id[call_id])
                    waiting[call_id] = (now, tries + 1)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            try:
                message = parse_message(data)
            except ParseError:
                continue
            if not isinstance(message, SipResponse) or message.status < 200:
                continue
            found = by_id.get(message.call_id)
            if (found is None or message.cseq.method != method
                    or message.call_id not in waiting):
                continue
            del waiting[message.call_id]
            answered(found, message)


# --- RTP ------------------------------------------------------------------------------------


def send_streams(ports: list[int], seconds: float, warmup: float) -> dict[str, Any]:
    """Every port gets a 20 ms packet every 20 ms for ``seconds``; the sender's own figures.
    Stream ``i`` is in phase ``i * PHASES // N``: each phase's streams are one batch."""
    payloads = tone_payloads()
    streams = Streams(HOST, ports, FRAMES)
    bounds = [len(ports) * phase // PHASES for phase in range(PHASES + 1)]
    count = round(seconds * 1000 / PACKET_MS)
    step = PACKET_MS / 1000 / PHASES
    late = refused = sent = 0
    worst = 0.0
    steady_at = round(warmup * 1000 / PACKET_MS) * PHASES
    cpu0 = cpu_seconds()
    origin = time.monotonic() + 0.05
    for tick in range(count * PHASES):
        due = origin + tick * step
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        if tick == steady_at:
            say(event="steady")
        n, phase = divmod(tick, PHASES)
        first, end = bounds[phase], bounds[phase + 1]
        streams.fill(first, end, n & 0xFFFF, (n * FRAMES) & 0xFFFFFFFF,
                     payloads[n % TONE_PACKETS])
        done, failed = streams.send(first, end)
        sent, refused = sent + done, refused + failed
        behind = time.monotonic() - due
        worst = max(worst, behind)
        if behind > LATE_SECONDS:
            late += end - first
    say(event="end")
    elapsed = time.monotonic() - origin
    return {"sent": sent, "per_stream": count, "send_errors": refused, "late_packets": late,
            "worst_late_ms": worst * 1000, "sender_cpu": (cpu_seconds() - cpu0) / elapsed,
            "sendmmsg": streams.batched}


def raise_priority(niceness: int) -> bool:
    """Run at ``niceness`` (below 0: ahead of ordinary processes) if allowed; whether it is.
    With autogroup scheduling a niceness counts only inside the process's session, so the
    parent starts this process in a session of its own and its group gets the niceness too."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError:
        return False
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(niceness))
    return True


def src_main(args: argparse.Namespace) -> int:
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    # The load must arrive on time whatever else the machine runs: the sender needs a small
    # part of a core, but it must have it when a packet is due.
    prioritised = raise_priority(args.nice)
    sessions: list[Session] = []
    signalling: Signalling | None = None
    began = time.monotonic()
    if args.sip:
        host, port = args.sip.rsplit(":", 1)
        signalling = Signalling((host, int(port)), 30000)
        sessions = [Session(i) for i in range(args.streams // 2)]
        signalling.invite_all(sessions, time.monotonic() + 120)
        ports = [p for s in sessions for p in s.ports]
    else:
        ports = json.loads(Path(args.ports).read_text())
    refused = sum(1 for s in sessions if not s.ports)
    say(event="setup", seconds=time.monotonic() - began, streams=len(ports), refused=refused,
        statuses=sorted({s.status for s in sessions}), prioritised=prioritised)
    # --settle: the recorder finishes starting its recordings (the scheduler and the files of
    # every session) before the streams begin, so the load is the streams alone.
    time.sleep(args.settle)
    figures = send_streams(ports, args.seconds, args.warmup)
    if signalling is not None:
        signalling.bye_all(sessions, time.monotonic() + 60)
        figures["bye_ok"] = sum(1 for s in sessions if s.bye_status == 200)
    say(event="done", **figures)
    return 0


# --- the bare baseline ----------------------------------------------------------------------


def bare_main(args: argparse.Namespace) -> int:
    """N sockets, recvfrom until EAGAIN, numpy G.711 decode, WAV append; see module doc."""
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        selector = stack.enter_context(selectors.DefaultSelector())
        socks: list[socket.socket] = []
        files: list[wave.Wave_write] = []
        for i in range(args.streams):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.bind((HOST, 0))
            sock.setblocking(False)
            socks.append(sock)
            out = stack.enter_context(wave.open(str(directory / f"stream-{i:05d}.wav"), "wb"))
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            files.append(out)
            selector.register(sock, selectors.EVENT_READ, i)
        selector.register(sys.stdin, selectors.EVENT_READ, -1)
        say(ports=[int(s.getsockname()[1]) for s in socks])
        received = receive_bare(selector, socks, files, time.monotonic() + args.max_seconds,
                                args.gather_ms / 1000)
    say(received=received)
    return 0


def receive_bare(selector: selectors.BaseSelector, socks: list[socket.socket],
                 files: list[wave.Wave_write], deadline: float, gather: float) -> list[int]:
    """The bare receiver's loop, until a line on stdin (or ``deadline``): packets per stream."""
    table = g711.decode_table("ulaw")  # the table the recorder's decoder uses
    received = [0] * len(socks)
    while time.monotonic() < deadline:
        ready = selector.select(1.0)
        for key, _ in ready:
            index: int = key.data
            if index < 0:
                return received
            recvfrom, out = socks[index].recvfrom, files[index]
            while True:
                try:
                    data, _source = recvfrom(2048)
                except BlockingIOError:
                    break
                samples = table[np.frombuffer(data, dtype=np.uint8, offset=12)]
                out.writeframesraw(samples.tobytes())
                received[index] += 1
        if gather and ready:
            time.sleep(gather)  # what recorderd's media thread does (media._gather)
    return received


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("src", "bare"))
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds between the last session set up and the first packet")
    parser.add_argument("--sip", help="HOST:PORT of the recorder's SIP (src)")
    parser.add_argument("--ports", help="a JSON file of the ports to send to (src)")
    parser.add_argument("--directory", help="where the bare receiver writes (bare)")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--core", type=int, help="the CPU to run on")
    parser.add_argument("--gather-ms", type=float, default=2.0,
                        help="after a wake-up that read something, wait this long (bare)")
    parser.add_argument("--nice", type=int, default=-10, help="the sender's niceness (src)")
    args = parser.parse_args(argv)
    return src_main(args) if args.mode == "src" else bare_main(args)


if __name__ == "__main__":
    sys.exit(main())
