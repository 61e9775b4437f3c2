"""The siprec board's driver over real sockets on 127.0.0.1: the SIP server and the media thread
with a sink that keeps every block, line event and channel loss. A small SRC in Python
(tests/helpers/sipclient.py) sets sessions up; its RTP comes from the ports its SDP names,
paced in real time by a thread. What must hold: each party's audio lands on its channel
sample-exact (loss is silence of exactly its length, counted on that channel; reordering and
duplicates leave no trace; an SSRC change and a two-second gap keep the timeline), strangers'
RTP never reaches a channel, a session that stops sending is ended with a BYE, SRTP is
decrypted, and the session's line events carry what the calls layer needs."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pylibsrtp
import pytest

from recorder.codecs import g711
from recorder.drivers.base import ChannelLoss, DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.driver import SiprecDriver
from recorder.drivers.siprec.rtp import RtpPacket
from recorder.drivers.siprec.sdp import parse_sdp
from recorder.drivers.siprec.sipmessage import SipResponse
from recorder.drivers.siprec.timers import SipTimers
from tests.helpers.net import rtp_test_range
from tests.helpers.sipclient import Call, SipClient, multipart

pytestmark = pytest.mark.slow

Samples = npt.NDArray[np.int16]
FRAME = 160  # 20 ms at 8 kHz
FAST = SipTimers(t1=0.05, t2=0.4, t4=0.5)
DEVICE, OTHER = "1001", "2002"


def rtp_range() -> tuple[int, int]:
    """A 40-port RTP range of this xdist worker's own (tests.helpers.net)."""
    return rtp_test_range(40)


class Sink:
    """A DriverSink (with channel_lost) that keeps everything, positions included."""

    def __init__(self) -> None:
        self.blocks: list[Samples] = []
        self.frames = 0
        self.events: list[tuple[int, LineEvent]] = []
        self.losses: list[ChannelLoss] = []
        self.states: list[DriverState] = []
        self.changed = threading.Condition()

    def audio(self, block: Samples, lost_frames: int = 0) -> None:
        with self.changed:
            if lost_frames:
                self.blocks.append(np.zeros((lost_frames, block.shape[1]), np.int16))
            self.blocks.append(block.copy())
            self.frames += lost_frames + len(block)
            self.changed.notify_all()

    def line(self, event: LineEvent) -> None:
        with self.changed:
            self.events.append((self.frames, event))
            self.changed.notify_all()

    def state(self, state: DriverState, detail: str = "") -> None:
        with self.changed:
            self.states.append(state)
            self.changed.notify_all()

    def channel_lost(self, losses: list[ChannelLoss]) -> None:
        with self.changed:
            self.losses += losses

    def channel(self, index: int) -> Samples:
        with self.changed:
            return np.concatenate([b[:, index] for b in self.blocks])

    def wait(self, kind: LineEventKind, count: int = 1, timeout: float = 10.0
             ) -> tuple[int, LineEvent]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                found = [(p, e) for p, e in self.events if e.kind is kind]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                assert left > 0, f"no {kind} #{count}; heard {[e.kind for _, e in self.events]}"
                self.changed.wait(left)

    def kinds(self) -> list[LineEventKind]:
        with self.changed:
            return [e.kind for _, e in self.events]


class Board:
    def __init__(self, driver: SiprecDriver, sink: Sink) -> None:
        self.driver = driver
        self.sink = sink

    def call(self) -> Call:
        return Call(SipClient("UDP", self.driver.sip.udp_address))


@pytest.fixture
def start() -> Iterator[Callable[..., Board]]:
    drivers: list[SiprecDriver] = []

    def run(delay: float = 0.1, **keys: Any) -> Board:
        low, high = rtp_range()
        config = SiprecBoardConfig(**{"sip_port": 0, "rtp_port_min": low, "rtp_port_max": high,
                                      "max_sessions": 4, **keys})
        driver = SiprecDriver("boards[0]", config, delay_seconds=delay,
                              sip_options={"sip_timers": FAST, "min_se": 1})
        sink = Sink()
        driver.start(sink)
        drivers.append(driver)
        return Board(driver, sink)

    yield run
    for driver in drivers:
        driver.stop()
        assert driver.join(5)


def metadata(parties: list[tuple[str, str]]) -> str:
    """RFC 7865 metadata: each (user, label) is a participant sending the stream labelled so."""
    lines = ["<?xml version='1.0' encoding='UTF-8'?>",
             "<recording xmlns='urn:ietf:params:xml:ns:recording:1'>",
             "<datamode>complete</datamode>", "<session session_id='sess-1'/>"]
    for user, label in parties:
        lines += [f"<participant participant_id='p{user}'><nameID aor='sip:{user}@pbx.example'/>"
                  "</participant>",
                  f"<stream stream_id='s{label}' session_id='sess-1'><label>{label}</label>"
                  "</stream>",
                  f"<participantstreamassoc participant_id='p{user}'><send>s{label}</send>"
                  "</participantstreamassoc>"]
    return "\n".join([*lines, "</recording>"])


def offer(ports: list[int], *, direction: str = "sendonly", crypto: str | None = None) -> str:
    proto = "RTP/SAVP" if crypto else "RTP/AVP"
    lines = ["v=0", "o=src 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for n, port in enumerate(ports, 1):
        lines += [f"m=audio {port} {proto} 0 101", "a=rtpmap:0 PCMU/8000",
                  "a=rtpmap:101 telephone-event/8000", f"a=label:{n}", f"a={direction}"]
        if crypto:
            lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{crypto}")
    return "\r\n".join(lines) + "\r\n"


class Src:
    """One SRC session: its SIP dialog and a UDP socket per stream, bound where its SDP says."""

    def __init__(self, board: Board, streams: int = 2, *, crypto: str | None = None,
                 parties: list[tuple[str, str]] | None = None) -> None:
        self.sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(streams)]
        for sock in self.sockets:
            sock.bind(("127.0.0.1", 0))
        self.ports = [s.getsockname()[1] for s in self.sockets]
        self.call = board.call()
        parties = parties or [(DEVICE, "1"), (OTHER, "2")][:streams]
        content_type, body = multipart(offer(self.ports, crypto=crypto), metadata(parties))
        self.answer = self.call.invite(content_type, body)
        assert self.answer.status == 200, self.answer
        self.targets = [("127.0.0.1", m.port) for m in parse_sdp(self.answer.body).media]

    def reinvite(self, direction: str) -> SipResponse:
        content_type, body = multipart(offer(self.ports, direction=direction),
                                       metadata([(DEVICE, "1"), (OTHER, "2")]))
        self.call.send("INVITE", body=body, content_type=content_type)
        response = self.call.client.response(method="INVITE")
        self.call.ack(response)
        return response

    def bye(self) -> None:
        self.call.send("BYE")
        assert self.call.client.response(method="BYE").status == 200

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.call.client.close()


def send_paced(sock: socket.socket, target: tuple[str, int],
               schedule: list[tuple[float, bytes]]) -> threading.Thread:
    """Send each (seconds from now, datagram) at its time, from a thread."""
    def run() -> None:
        origin = time.monotonic()
        for at, data in schedule:
            delay = origin + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sock.sendto(data, target)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def speech(packets: int, seed: int) -> Samples:
    """Noise that G.711 never turns into 0 (so silence and audio are told apart exactly)."""
    rng = np.random.default_rng(seed)
    magnitude = rng.integers(2000, 20000, packets * FRAME)
    sign = rng.choice([-1, 1], packets * FRAME)
    return (magnitude * sign).astype(np.int16)


def ulaw(samples: Samples) -> tuple[list[bytes], Samples]:
    """20 ms μ-law payloads of ``samples`` and what they decode to."""
    codes = g711.encode(samples, "ulaw")
    return ([codes[i:i + FRAME].tobytes() for i in range(0, len(codes), FRAME)],
            g711.decode(codes, "ulaw"))


def rtp(payload: bytes, seq: int, ts: int, ssrc: int, pt: int = 0) -> bytes:
    return RtpPacket(pt, seq % 65536, ts % 2**32, ssrc, payload).to_bytes()


def start_of(channel: Samples) -> int:
    nonzero = np.flatnonzero(channel)
    assert len(nonzero), "no audio on the channel"
    return int(nonzero[0])


def test_each_party_lands_on_its_channel_sample_exact(start: Callable[..., Board]) -> None:
    board = start()
    src = Src(board)
    payloads, decoded = ulaw(speech(50, seed=1))
    other_payloads, other_decoded = ulaw(speech(50, seed=2))
    # Stream 1: packet 10 lost, 20 and 21 swapped, 30 sent twice, a DTMF event between.
    order = [i for i in range(50) if i != 10]
    order[19], order[20] = order[20], order[19]
    order.insert(order.index(30), 30)
    schedule = [(n * 0.02, rtp(payloads[i], 1000 + i, 5000 + i * FRAME, 0xAAAA))
                for n, i in enumerate(order)]
    schedule.append((0.5, rtp(b"\x05\x0a\x00\xa0", 1050, 5000 + 50 * FRAME, 0xAAAA, pt=101)))
    other = [(i * 0.02, rtp(p, 7 + i, 1 + i * FRAME, 0xBBBB))
             for i, p in enumerate(other_payloads)]
    threads = [send_paced(src.sockets[0], src.targets[0], schedule),
               send_paced(src.sockets[1], src.targets[1], other)]
    for thread in threads:
        thread.join()
    time.sleep(0.3)
    src.bye()
    end_at, end = board.sink.wait(LineEventKind.SESSION_END)
    start_at, started = board.sink.wait(LineEventKind.SESSION_START)
    assert started.channel == end.channel == 0
    assert {k: started.data[k] for k in ("DEVICEID", "ANI", "DNIS", "CALLDIRECTION",
                                         "CHANNEL2", "GLOBALCALLID")} == {
        "DEVICEID": DEVICE, "ANI": DEVICE, "DNIS": OTHER, "CALLDIRECTION": "?",
        "CHANNEL2": "1", "GLOBALCALLID": "sess-1"}
    assert started.data["CALLID"] == src.call.call_id
    left, right = board.sink.channel(0), board.sink.channel(1)
    first = start_of(left)
    expected = decoded.copy()
    expected[10 * FRAME:11 * FRAME] = 0
    np.testing.assert_array_equal(left[first:first + 50 * FRAME], expected)
    assert not left[first + 50 * FRAME:].any()  # the event left no trace
    second = start_of(right)
    np.testing.assert_array_equal(right[second:second + 50 * FRAME], other_decoded)
    # Both were placed where they arrived plus the delay; the session spans their audio.
    assert start_at <= min(first, second)
    assert end_at >= first + 50 * FRAME
    assert abs(first - second) < 4 * FRAME
    # Lost as found, in one piece or two (some of it may have gone out before the packet
    # after it came), on its own channel only.
    assert {c for c, _, _ in board.sink.losses} == {0}
    assert sum(n for _, _, n in board.sink.losses) == FRAME
    assert min(a for _, a, _ in board.sink.losses) == first + 10 * FRAME
    src.close()


def test_ssrc_change_and_gaps_keep_the_timeline(start: Callable[..., Board]) -> None:
    board = start()
    src = Src(board, streams=1)
    payloads, decoded = ulaw(speech(40, seed=3))
    schedule = [(i * 0.02, rtp(payloads[i], 100 + i, 1000 + i * FRAME, 1)) for i in range(10)]
    # A new SSRC (a new encoder: unrelated numbers) right after: it goes on where 1 ended.
    schedule += [(0.2 + i * 0.02, rtp(payloads[10 + i], 9000 + i, 777_000 + i * FRAME, 2))
                 for i in range(10)]
    # Two seconds of nothing, numbers going on (silence suppression): exactly 2 s of silence.
    schedule += [(2.4 + i * 0.02, rtp(payloads[20 + i], 9010 + i, 777_000 + (10 + i) * FRAME
                                      + 16000, 2)) for i in range(10)]
    # Half a second lost (25 packets never came): silence, counted as lost on its channel.
    schedule += [(3.1 + i * 0.02, rtp(payloads[30 + i], 9045 + i, 777_000 + (45 + i) * FRAME
                                      + 16000, 2)) for i in range(10)]
    send_paced(src.sockets[0], src.targets[0], schedule).join()
    time.sleep(0.3)
    src.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    left = board.sink.channel(0)
    first = start_of(left)
    np.testing.assert_array_equal(left[first:first + 10 * FRAME], decoded[:10 * FRAME])
    after = first + 10 * FRAME
    second = after + start_of(left[after:])
    assert second - after <= FRAME  # placed by its arrival: at most a packet's jitter apart
    np.testing.assert_array_equal(left[second:second + 10 * FRAME], decoded[10 * FRAME:20 * FRAME])
    third = second + 10 * FRAME + 16000
    assert not left[second + 10 * FRAME:third].any()
    np.testing.assert_array_equal(left[third:third + 10 * FRAME], decoded[20 * FRAME:30 * FRAME])
    fourth = third + 35 * FRAME
    assert not left[third + 10 * FRAME:fourth].any()
    np.testing.assert_array_equal(left[fourth:fourth + 10 * FRAME], decoded[30 * FRAME:])
    assert sum(n for c, _, n in board.sink.losses if c == 0) == 25 * FRAME
    assert min(a for _, a, _ in board.sink.losses) == third + 10 * FRAME
    src.close()


def test_rtp_from_anyone_but_the_src_never_reaches_a_channel(start: Callable[..., Board]
                                                              ) -> None:
    board = start(allow=("127.0.0.0/8",))
    src = Src(board, streams=1)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))  # not the SDP's address
    same_host = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    same_host.bind(("127.0.0.1", 0))  # the SDP's address, after the SRC's port was latched
    loud = g711.encode(np.full(FRAME, 30000, np.int16), "ulaw").tobytes()
    payloads, decoded = ulaw(speech(20, seed=4))
    stranger.sendto(rtp(loud, 1, 0, 9), src.targets[0])
    time.sleep(0.05)
    sender = send_paced(src.sockets[0], src.targets[0], [
        (i * 0.02, rtp(p, 50 + i, i * FRAME, 5)) for i, p in enumerate(payloads)])
    time.sleep(0.1)
    for i in range(10):
        same_host.sendto(rtp(loud, 60 + i, (10 + i) * FRAME, 5), src.targets[0])
        stranger.sendto(rtp(loud, 60 + i, (10 + i) * FRAME, 5), src.targets[0])
    sender.join()
    time.sleep(0.3)
    src.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    left = board.sink.channel(0)
    first = start_of(left)
    np.testing.assert_array_equal(left[first:first + 20 * FRAME], decoded)
    assert not (np.abs(left) >= 30000).any()
    stranger.close()
    same_host.close()
    src.close()


def test_a_session_that_stops_sending_is_ended_with_a_bye(start: Callable[..., Board]) -> None:
    board = start(media_timeout_seconds=1.0)
    src = Src(board, streams=2)
    payloads, _ = ulaw(speech(5, seed=5))
    send_paced(src.sockets[0], src.targets[0],
               [(i * 0.02, rtp(p, i, i * FRAME, 3)) for i, p in enumerate(payloads)]).join()
    bye = src.call.client.request("BYE", timeout=4.0)
    src.call.client.send(_ok(bye))
    board.sink.wait(LineEventKind.SESSION_END)
    assert board.sink.kinds() == [LineEventKind.SESSION_START, LineEventKind.SESSION_END]
    src.close()


def _ok(request: Any) -> bytes:
    head = ["SIP/2.0 200 OK"]
    for name in ("via", "from", "to", "call-id", "cseq"):
        head += [f"{name}: {v}" for v in request.headers.values(name)]
    return ("\r\n".join([*head, "Content-Length: 0"]) + "\r\n\r\n").encode()


def test_pause_and_resume_by_re_invite(start: Callable[..., Board]) -> None:
    board = start()
    src = Src(board)
    assert src.reinvite("inactive").status == 200
    paused_at, paused = board.sink.wait(LineEventKind.SESSION_PAUSE)
    assert src.reinvite("sendonly").status == 200
    resumed_at, _ = board.sink.wait(LineEventKind.SESSION_RESUME)
    src.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    assert paused.channel == 0
    assert paused.data["DEVICEID"] == DEVICE
    assert resumed_at > paused_at
    assert board.sink.kinds() == [LineEventKind.SESSION_START, LineEventKind.SESSION_PAUSE,
                                  LineEventKind.SESSION_RESUME, LineEventKind.SESSION_END]
    src.close()


def test_a_session_of_none_of_the_boards_devices_is_answered_not_recorded(
        start: Callable[..., Board]) -> None:
    board = start(devices=("3003",))
    src = Src(board)  # parties 1001 and 2002
    payloads, _ = ulaw(speech(5, seed=6))
    send_paced(src.sockets[0], src.targets[0],
               [(i * 0.02, rtp(p, i, i * FRAME, 3)) for i, p in enumerate(payloads)]).join()
    src.bye()
    time.sleep(0.3)
    assert board.sink.kinds() == []
    assert not any(b.any() for b in board.sink.blocks)
    # The device listed is found as the called party: an inbound call on the second channel
    # side is still the device's channel (its stream goes left).
    other = Src(board, parties=[(OTHER, "1"), ("3003", "2")])
    _, started = board.sink.wait(LineEventKind.SESSION_START)
    assert (started.data["DEVICEID"], started.data["CALLDIRECTION"]) == ("3003", "I")
    other.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    src.close()
    other.close()


def test_srtp_is_decrypted_and_a_forged_packet_dropped(start: Callable[..., Board]) -> None:
    key = bytes(range(1, 31))
    board = start()
    src = Src(board, streams=1, crypto=base64.b64encode(key).decode())
    answered = parse_sdp(src.answer.body).media[0]
    assert answered.proto == "RTP/SAVP"
    assert answered.crypto
    protect = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
    payloads, decoded = ulaw(speech(20, seed=7))
    datagrams = [protect.protect(rtp(p, 300 + i, i * FRAME, 0x5151))
                 for i, p in enumerate(payloads)]
    forged = bytearray(datagrams[5])
    forged[-1] ^= 0xFF  # its authentication tag no longer matches
    schedule = [(i * 0.02, d) for i, d in enumerate(datagrams)]
    schedule.insert(5, (0.1, bytes(forged)))
    send_paced(src.sockets[0], src.targets[0], schedule).join()
    time.sleep(0.3)
    src.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    left = board.sink.channel(0)
    first = start_of(left)
    np.testing.assert_array_equal(left[first:first + 20 * FRAME], decoded)
    src.close()


def test_junk_on_a_media_port_disturbs_nothing(start: Callable[..., Board]) -> None:
    board = start()
    src = Src(board, streams=1)
    other = Src(board, streams=1)
    payloads, decoded = ulaw(speech(20, seed=8))
    junk = [b"", b"\x00", b"\xff" * 11, b"\x80\x00\x00", rtp(b"", 1, 0, 9)[:11],
            bytes([0x80 | 0x0F]) + b"\x00" * 11,  # fifteen CSRCs promised, none there
            bytes([0xA0, 0]) + b"\x00" * 10 + b"\x00",  # padding of 0
            bytes([0x80, 200]) + b"\x00" * 30,  # RTCP
            rtp(b"\x55" * 3000, 7, 0, 9, pt=96)]  # a payload type nobody offered
    schedule = [(i * 0.02, rtp(p, 40 + i, i * FRAME, 0x77)) for i, p in enumerate(payloads)]
    schedule += [(0.1 + i * 0.001, j) for i, j in enumerate(junk)]
    schedule.sort(key=lambda item: item[0])
    threads = [send_paced(src.sockets[0], src.targets[0], schedule),
               send_paced(other.sockets[0], other.targets[0],
                          [(i * 0.02, rtp(p, i, i * FRAME, 5)) for i, p in enumerate(payloads)])]
    for thread in threads:
        thread.join()
    time.sleep(0.3)
    src.bye()
    other.bye()
    board.sink.wait(LineEventKind.SESSION_END, 2)
    for channel in (0, 2):
        samples = board.sink.channel(channel)
        first = start_of(samples)
        np.testing.assert_array_equal(samples[first:first + 20 * FRAME], decoded)
    assert board.sink.losses == []
    src.close()
    other.close()


def rtcp_receiver_report(ssrc: int) -> bytes:
    """An empty RTCP receiver report (RFC 3550 §6.4.2)."""
    return bytes([0x80, 201, 0, 1]) + ssrc.to_bytes(4, "big")


def test_rtcp_on_the_port_above_is_read_and_no_icmp_error_goes_back(
        start: Callable[..., Board], caplog: pytest.LogCaptureFixture) -> None:
    board = start()
    src = Src(board, streams=1)
    host, port = src.targets[0]
    # A connected UDP socket hears an ICMP port-unreachable as ConnectionRefusedError on its
    # next call: what a closed RTCP port would give the SRC.
    reports = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    reports.connect((host, port + 1))
    reports.settimeout(0.3)
    payloads, _ = ulaw(speech(5, seed=9))
    for i, payload in enumerate(payloads):
        src.sockets[0].sendto(rtp(payload, i, i * FRAME, 0x99), src.targets[0])
        reports.send(rtcp_receiver_report(0x42))
        time.sleep(0.05)
    with pytest.raises(TimeoutError):  # nothing comes back, neither data nor an ICMP error
        reports.recv(100)
    with caplog.at_level(logging.INFO, logger="recorder.drivers.siprec.slots"):
        src.bye()
        board.sink.wait(LineEventKind.SESSION_END)
    counts = [r.getMessage() for r in caplog.records if f"on port {port} " in r.getMessage()]
    assert len(counts) == 1, counts
    assert "5 packets" in counts[0]
    assert ", 5 RTCP," in counts[0]
    reports.close()
    src.close()


def test_a_port_another_process_holds_is_skipped_with_one_warning(
        start: Callable[..., Board], caplog: pytest.LogCaptureFixture) -> None:
    low, _ = rtp_range()
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", low))
    board = start(rtp_port_min=low, rtp_port_max=low + 5, max_sessions=1)  # 3 pairs
    with caplog.at_level(logging.WARNING, logger="recorder.drivers.siprec.ports"):
        for _ in range(2):  # the held port is passed over again, warned about once
            src = Src(board)
            assert [port for _, port in src.targets] == [low + 2, low + 4]
            src.bye()
            board.sink.wait(LineEventKind.SESSION_END, board.sink.kinds().count(
                LineEventKind.SESSION_END) + 1)
            src.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert str(low) in warnings[0]
    squatter.close()


def test_a_range_other_processes_hold_entirely_gets_503_and_frees_the_slot(
        start: Callable[..., Board]) -> None:
    low, _ = rtp_range()
    # One squatter on the first pair's RTP port, one on the second pair's RTCP port.
    squatters = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    squatters[0].bind(("127.0.0.1", low))
    squatters[1].bind(("127.0.0.1", low + 3))
    board = start(rtp_port_min=low, rtp_port_max=low + 3, max_sessions=1)
    call = board.call()
    content_type, body = multipart(offer([4000, 4002]), metadata([(DEVICE, "1"), (OTHER, "2")]))
    refused = call.invite(content_type, body)
    assert refused.status == 503
    assert refused.headers.get("retry-after")
    for squatter in squatters:
        squatter.close()
    src = Src(board)  # the slot and both ports are free again
    src.bye()
    board.sink.wait(LineEventKind.SESSION_END)
    src.close()
    call.client.close()
