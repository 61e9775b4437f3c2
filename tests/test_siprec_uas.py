"""The SIPREC recording server's signalling over real sockets on 127.0.0.1: a small SRC in
Python (tests/helpers/sipclient.py) sends INVITEs, re-INVITEs, UPDATEs, BYEs, CANCELs and
OPTIONS over UDP, TCP and TLS, and the test checks what comes back on the wire and what the
session listener heard: answers, refusals (481, 420, 415, 400, 488, 503, 422), session
timers, the allow-list, and hostile messages that must not disturb another dialog."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import EndReason, SessionChange
from recorder.drivers.siprec.sdp import parse_sdp
from recorder.drivers.siprec.sipheaders import NameAddr
from recorder.drivers.siprec.sipmessage import SipResponse
from recorder.drivers.siprec.timers import SipTimers
from recorder.drivers.siprec.transport import SipServer
from recorder.errors import StartupError
from tests.helpers.net import free_port, self_signed
from tests.helpers.sipclient import (
    Call,
    Listener,
    SipClient,
    metadata_body,
    multipart,
    rfc7866_body,
    sdp,
)
from tests.helpers.siprec import cube_invite

SESSION = "hVpd7YQgRW2nD22h7q60JQ=="  # the RFC 7866 example's communication session
FAST = SipTimers(t1=0.05, t2=0.4, t4=0.5)  # Timer H = 3.2 s


class Running:
    def __init__(self, server: SipServer, listener: Listener) -> None:
        self.server = server
        self.listener = listener

    @property
    def address(self) -> tuple[str, int]:
        return self.server.udp_address

    def client(self, transport: str = "UDP", **kwargs: Any) -> SipClient:
        return SipClient(transport, self.address, **kwargs)

    def call(self, transport: str = "UDP") -> Call:
        return Call(self.client(transport))


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    servers: list[SipServer] = []

    def run(*, timers: SipTimers = FAST, min_se: int = 1,
            options: dict[str, Any] | None = None, **keys: Any) -> Running:
        keys = {"sip_port": 0, "rtp_port_min": 40000, "rtp_port_max": 40099, **keys}
        listener = Listener()
        server = SipServer("boards[0]", SiprecBoardConfig(**keys), listener, sip_timers=timers,
                           min_se=min_se, **(options or {}))
        server.start()
        servers.append(server)
        return Running(server, listener)

    yield run
    for server in servers:
        server.stop()
        assert server.join(5)


@pytest.fixture
def running(start: Callable[..., Running]) -> Running:
    return start()


def answer_media(response: SipResponse) -> list[tuple[str, int, str | None, str]]:
    """(media, port, label, direction) of each m-line of the SDP in ``response``."""
    assert response.headers.get("content-type") == "application/sdp"
    return [(m.media, m.port, m.label, m.direction) for m in parse_sdp(response.body).media]


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_a_siprec_invite_is_answered_and_reported(running: Running, transport: str) -> None:
    call = running.call(transport)
    content_type, body = rfc7866_body()
    call.send("INVITE", body=body, content_type=content_type,
              headers=(("Require", "siprec"),))
    trying = call.client.next()
    assert isinstance(trying, SipResponse)
    assert trying.status == 100
    ok = call.client.response(method="INVITE")
    assert ok.status == 200
    call.to_tag = NameAddr.parse(ok.headers.get("to") or "").tag
    call.ack(ok)
    media = answer_media(ok)
    # Both audio streams recvonly on even ports of our range, PCMU; video refused (port 0).
    assert [(m, label, d) for m, _, label, d in media] == [
        ("audio", "96", "recvonly"), ("video", None, "sendrecv"), ("audio", "98", "recvonly"),
        ("video", None, "sendrecv")]
    ports = [port for _, port, _, _ in media]
    assert ports[1] == ports[3] == 0
    assert all(40000 <= p <= 40098 and p % 2 == 0 for p in (ports[0], ports[2]))
    assert "+sip.srs" in (ok.headers.get("contact") or "")
    assert "siprec" in ok.headers.values("supported")

    session, _ = running.listener.wait("started")
    assert session.call_id == call.call_id
    assert session.transport == transport
    assert session.global_call_id == SESSION
    assert [(s.label, s.port, s.codec.name, s.participant, s.paused)
            for s in session.streams] == [
        ("96", ports[0], "PCMU", "sip:alice@atlanta.com", False),
        ("98", ports[2], "PCMU", "sip:bob@biloxy.com", False)]
    assert running.listener.threads == {"siprec-sip-boards[0]"}
    assert running.server.ports.in_use == 2

    call.send("BYE")
    assert call.client.response(method="BYE").status == 200
    ended, reason = running.listener.wait("ended")
    assert reason is EndReason.BYE
    assert ended.call_id == call.call_id
    assert running.server.ports.in_use == 0
    call.send("BYE")
    assert call.client.response(method="BYE").status == 481


def test_a_plain_sdp_invite_takes_the_parties_from_vendor_headers(running: Running) -> None:
    call = running.call("TCP")
    text = cube_invite().decode()
    body = text.split("\r\n\r\n", 1)[1].encode()
    headers = tuple((line.split(":", 1)[0], line.split(":", 1)[1].strip())
                    for line in text.split("\r\n\r\n")[0].split("\r\n")
                    if line.startswith(("X-Cisco", "Cisco-Guid")))
    ok = call.invite("application/sdp", body, headers=headers)
    assert ok.status == 200
    session, _ = running.listener.wait("started")
    assert session.global_call_id == "1334370502-1348997600-2396699092-3395863316"
    assert [s.participant for s in session.streams] == ["sip:708090@10.42.30.5",
                                                        "sip:10000@10.42.30.32"]


def test_re_invite_pauses_and_resumes_keeping_the_ports(running: Running) -> None:
    call = running.call()
    content_type, body = multipart(sdp((5000, "a", "sendonly"), (5002, "b", "sendonly")),
                                   "<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>")
    first = call.invite(content_type, body)
    ports = [port for _, port, _, _ in answer_media(first)]
    paused = call.invite("application/sdp",
                         sdp((5000, "a", "inactive"), (5002, "b", "sendonly")).encode())
    assert answer_media(paused) == [("audio", ports[0], "a", "inactive"),
                                    ("audio", ports[1], "b", "recvonly")]
    session, change = running.listener.wait("updated")
    assert isinstance(change, SessionChange)
    assert (change.paused, change.resumed, change.streams) == ({0}, set(), False)
    assert [s.paused for s in session.streams] == [True, False]
    call.invite("application/sdp", sdp((5000, "a", "sendonly"), (5002, "b", "sendonly")).encode())
    _, change = running.listener.wait("updated", 2)
    assert (change.paused, change.resumed) == (set(), {0})


def test_re_invite_moves_adds_and_drops_streams(running: Running) -> None:
    call = running.call()
    first = call.invite("application/sdp",
                        sdp((5000, "a", "sendonly"), (5002, "b", "sendonly")).encode())
    a, b = (port for _, port, _, _ in answer_media(first))
    offer = sdp((5000, "a", "sendonly"), (0, "b", "sendonly"), (5004, "c", "sendonly"))
    second = call.invite("application/sdp", offer.encode())
    ports = [port for _, port, _, _ in answer_media(second)]
    assert ports[0] == a
    assert ports[1] == 0
    assert ports[2] not in (0, a, b)
    _, change = running.listener.wait("updated")
    assert change.streams
    assert running.server.ports.in_use == 2  # b's port is free again


def test_re_invite_without_sdp_gets_our_last_description(running: Running) -> None:
    call = running.call()
    first = call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode())
    again = call.invite("", b"")
    assert again.status == 200
    assert again.body == first.body
    assert "updated" not in running.listener.kinds()


def test_update_with_metadata_pauses_and_resumes_by_participant(running: Running) -> None:
    call = running.call("TCP")
    call.invite(*rfc7866_body())
    call.send("UPDATE", body=metadata_body("rfc7866_metadata_hold.xml")[1],
              content_type="application/rs-metadata+xml")
    ok = call.client.response(method="UPDATE")
    assert ok.status == 200
    assert ok.body == b""
    session, change = running.listener.wait("updated")
    # Alice only receives now: the stream labelled 96 (m-line 0) has no sender.
    assert change.metadata
    assert change.paused == {0}
    assert session.streams[0].paused
    assert not session.streams[1].paused
    call.send("UPDATE", body=metadata_body("rfc7866_metadata_resume.xml")[1],
              content_type="application/rs-metadata+xml")
    assert call.client.response(method="UPDATE").status == 200
    _, change = running.listener.wait("updated", 2)
    assert change.resumed == {0}


def test_options_info_and_prack(running: Running) -> None:
    call = running.call()
    call.send("OPTIONS", to_tag="")
    ok = call.client.response(method="OPTIONS")
    assert ok.status == 200
    assert "INVITE" in ok.headers.values("allow")
    assert "UPDATE" in ok.headers.values("allow")
    assert "application/rs-metadata+xml" in ok.headers.values("accept")
    assert {"siprec", "timer"} <= set(ok.headers.values("supported"))
    call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode(),
                headers=(("Require", "siprec, 100rel, timer"),))
    for method, status in (("OPTIONS", 200), ("INFO", 200), ("PRACK", 481)):
        call.send(method)
        assert call.client.response(method=method).status == status
    # Require: 100rel was answered 200 at once: no reliable provisional response was sent.
    assert all(m.status in (100, 200) for m in call.client.quiet(0.1)
               if isinstance(m, SipResponse))


@pytest.mark.parametrize(("method", "extra"), [
    ("BYE", {}), ("INVITE", {}), ("UPDATE", {}), ("INFO", {}), ("OPTIONS", {}),
    ("INFO", {"to_tag": ""})])
def test_requests_outside_any_dialog_get_481(running: Running, method: str,
                                             extra: dict[str, Any]) -> None:
    call = running.call()
    kwargs: dict[str, Any] = {"to_tag": "nosuchtag", **extra}
    if method == "INVITE":
        kwargs.update(body=sdp((5000, "a", "sendonly")).encode(),
                      content_type="application/sdp")
    call.send(method, **kwargs)
    assert call.client.response(method=method).status == 481


def test_unknown_extensions_and_methods(running: Running) -> None:
    call = running.call()
    call.send("INVITE", body=sdp((5000, "a", "sendonly")).encode(),
              content_type="application/sdp", headers=(("Require", "siprec, foo, bar"),))
    refused = call.client.response(method="INVITE")
    assert refused.status == 420
    assert refused.headers.values("unsupported") == ["foo", "bar"]
    call.send("ACK", cseq=refused.cseq.number, to_tag=NameAddr.parse(
        refused.headers.get("to") or "").tag)
    call.send("SUBSCRIBE")
    assert call.client.response(method="SUBSCRIBE").status == 405
    call.send("FROBNICATE")
    assert call.client.response(method="FROBNICATE").status == 501
    assert running.listener.kinds() == []


NO_BOUNDARY = ("multipart/mixed", b"--x\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--x--\r\n")
DOCTYPE = multipart(sdp((5000, "a", "sendonly")),
                    '<!DOCTYPE r [<!ENTITY e "x">]><recording/>')


@pytest.mark.parametrize(("content_type", "body", "headers", "status"), [
    ("text/plain", b"hello", (), 415),
    ("application/sdp", sdp((5000, "a", "sendonly")).encode(),
     (("Content-Encoding", "gzip"),), 415),
    (*NO_BOUNDARY, (), 400),
    ("application/sdp", b"v=0\r\nthis is not sdp\r\n", (), 400),
    (*DOCTYPE, (), 400),
    ("application/sdp", sdp((5000, "a", "sendonly"), formats="4").encode(), (), 488),
    ("", b"", (), 488),
    ("application/sdp", sdp((5000, "a", "sendonly")).encode(),
     (("Supported", "timer"), ("Session-Expires", "1")), 422),
])
def test_invites_we_cannot_take(start: Callable[..., Running], content_type: str,
                                body: bytes, headers: tuple[tuple[str, str], ...],
                                status: int) -> None:
    running = start(min_se=90)
    call = running.call()
    refused = call.invite(content_type, body, headers=headers)
    assert refused.status == status
    # ACKed, so not sent again (T1 is 50 ms here); the 100 Trying may still wait unread.
    assert [m for m in call.client.quiet(0.15) if isinstance(m, SipResponse)
            and m.status >= 200] == []
    if status == 415:
        assert "application/sdp" in refused.headers.values("accept")
    if status == 422:
        assert refused.headers.get("min-se") == "90"
    assert running.listener.kinds() == []
    assert running.server.ports.in_use == 0


def test_capacity_503_with_retry_after(start: Callable[..., Running]) -> None:
    running = start(max_sessions=1, rtp_port_min=40000, rtp_port_max=40003)
    offer = sdp((5000, "a", "sendonly")).encode()
    assert running.call().invite("application/sdp", offer).status == 200
    over = running.call().invite("application/sdp", offer)
    assert over.status == 503
    assert over.headers.get("retry-after") == "30"
    assert len(running.server.sessions()) == 1
    assert running.listener.kinds() == ["started"]


def test_rtp_ports_running_out_and_the_listener_refusing_give_503(
        start: Callable[..., Running]) -> None:
    running = start(rtp_port_min=40000, rtp_port_max=40003)  # two RTP/RTCP pairs
    two = sdp((5000, "a", "sendonly"), (5002, "b", "sendonly")).encode()
    assert running.call().invite("application/sdp", two).status == 200
    assert running.call().invite("application/sdp", two).status == 503
    other = start(rtp_port_min=40100, rtp_port_max=40199)
    other.listener.refuse = True
    refused = other.call().invite("application/sdp", two)
    assert refused.status == 503
    assert refused.headers.get("retry-after") == "7"
    assert other.server.ports.in_use == 0


def test_cancel_after_the_answer_and_of_nothing(running: Running) -> None:
    call = running.call()
    invite = call.build("INVITE", body=sdp((5000, "a", "sendonly")).encode(),
                        content_type="application/sdp")
    call.client.send(invite)
    ok = call.client.response(method="INVITE")
    branch = invite.split(b"branch=")[1].split(b";")[0].decode()
    call.send("CANCEL", cseq=ok.cseq.number, branch=branch)
    # §9.2: the INVITE was answered, so the CANCEL is answered 200 and changes nothing.
    assert call.client.response(method="CANCEL").status == 200
    call.to_tag = NameAddr.parse(ok.headers.get("to") or "").tag
    call.ack(ok)
    call.send("CANCEL", cseq=50, branch="z9hG4bKnothing")
    assert call.client.response(method="CANCEL").status == 481
    assert running.listener.kinds() == ["started"]
    call.send("BYE")
    assert call.client.response(method="BYE").status == 200


def test_out_of_order_cseq_gets_500(running: Running) -> None:
    call = running.call()
    call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode())
    call.send("INFO", cseq=5)
    assert call.client.response(method="INFO").status == 500


@pytest.mark.slow
def test_200_is_retransmitted_until_the_ack(running: Running) -> None:
    call = running.call()
    call.send("INVITE", body=sdp((5000, "a", "sendonly")).encode(),
              content_type="application/sdp")
    copies = [m for m in call.client.quiet(0.5)
              if isinstance(m, SipResponse) and m.status == 200]
    # T1 = 50 ms doubling to 400 ms: sent at 0, 50, 150, 350 ms (the next at 750 ms).
    assert 3 <= len(copies) <= 4
    call.to_tag = NameAddr.parse(copies[0].headers.get("to") or "").tag
    call.ack(copies[0])
    assert [m for m in call.client.quiet(0.6) if isinstance(m, SipResponse)] == []
    assert running.listener.kinds() == ["started"]


@pytest.mark.slow
def test_a_200_never_acked_ends_the_session_with_a_bye(start: Callable[..., Running]) -> None:
    running = start(timers=SipTimers(t1=0.02, t2=0.16, t4=0.2))
    call = running.call("TCP")
    call.send("INVITE", body=sdp((5000, "a", "sendonly")).encode(),
              content_type="application/sdp")
    assert call.client.response(method="INVITE").status == 200
    bye = call.client.request("BYE", timeout=5)  # Timer H = 64*T1 = 1.28 s
    _, reason = running.listener.wait("ended")
    assert reason is EndReason.NO_ACK
    assert bye.call_id == call.call_id
    assert bye.from_.tag != call.from_tag


@pytest.mark.slow
def test_a_session_not_refreshed_expires(running: Running) -> None:
    call = running.call()
    timer = (("Supported", "timer"), ("Session-Expires", "2"))
    ok = call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode(), headers=timer)
    assert ok.headers.get("session-expires") == "2;refresher=uac"
    assert "timer" in ok.headers.values("require")
    for method in ("UPDATE", "INVITE"):  # refreshed every second: alive past 2 s
        time.sleep(1.0)
        if method == "INVITE":
            call.invite("", b"", headers=timer)
        else:
            call.send(method, headers=timer)
            assert call.client.response(method=method).status == 200
    assert running.listener.kinds() == ["started"]
    # Unrefreshed, it ends at 2 s less a third (RFC 4028 §10) with our BYE.
    started = time.monotonic()
    bye = call.client.request("BYE", timeout=3)
    assert 1.0 < time.monotonic() - started < 2.5
    _, reason = running.listener.wait("ended")
    assert reason is EndReason.SESSION_EXPIRED
    call.client.send(_ok(bye))


def _ok(request: Any) -> bytes:
    lines = ["SIP/2.0 200 OK", *(f"{n}: {v}" for n, v in request.headers.items()
                                  if n in ("Via", "From", "To", "Call-ID", "CSeq"))]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


@pytest.mark.slow
def test_we_refresh_when_the_src_makes_us_the_refresher(running: Running) -> None:
    call = running.call("TCP")
    timer = (("Supported", "timer"), ("Session-Expires", "2;refresher=uas"))
    ok = call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode(), headers=timer)
    assert ok.headers.get("session-expires") == "2;refresher=uas"
    update = call.client.request("UPDATE", timeout=2)  # at half the interval
    assert update.headers.get("session-expires") == "2;refresher=uas"
    call.client.send(_ok(update))
    call.client.request("UPDATE", timeout=2)  # left unanswered this time
    assert running.listener.kinds() == ["started"]
    call.client.request("BYE", timeout=3)  # at 2 s after the last successful refresh
    assert running.listener.wait("ended")[1] is EndReason.SESSION_EXPIRED


def test_sources_outside_allow_are_ignored(start: Callable[..., Running]) -> None:
    running = start(allow=("10.0.0.0/8",))
    client = running.client()
    Call(client).send("OPTIONS")
    assert client.quiet(0.3) == []
    stream = socket.create_connection(running.address, timeout=2)
    try:
        assert closed(stream, 2)  # closed at once, unanswered
    finally:
        stream.close()
    assert running.server.stats["not_allowed"] >= 2


def closed(sock: socket.socket, within: float) -> bool:
    """The server closed ``sock`` (or reset it) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.slow
def test_connections_are_bounded_and_idle_ones_closed(start: Callable[..., Running]) -> None:
    running = start(options={"max_connections": 2, "idle_seconds": 0.3})
    call = running.call("TCP")  # a connection with a session stays open, however quiet
    call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode())
    idle = socket.create_connection(running.address, timeout=2)
    over = socket.create_connection(running.address, timeout=2)
    try:
        assert closed(over, 1.0)  # the third: refused at once
        assert running.server.stats["connections_refused"] == 1
        assert closed(idle, 1.5)  # silent and carrying no session
    finally:
        idle.close()
        over.close()
    call.send("OPTIONS")
    assert call.client.response(method="OPTIONS").status == 200


def test_hostile_messages_never_disturb_another_dialog(running: Running) -> None:
    call = running.call()
    call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode())
    attacker = running.call()
    good = attacker.build("INVITE", body=sdp((5000, "a", "sendonly")).encode(),
                          content_type="application/sdp")
    attacker.client.send(good[:120])  # truncated inside the headers: nothing to answer with
    attacker.client.send(good.replace(b"Content-Length: ", b"Content-Length: 9"))
    attacker.client.send(attacker.build("OPTIONS").replace(b"Content-Length: ",
                                                           b"Content-Length: x"))
    attacker.client.send(attacker.build("OPTIONS", headers=(("X-Big", "a" * 40000),)))
    attacker.client.send(attacker.build("INVITE", body=NO_BOUNDARY[1],
                                        content_type=NO_BOUNDARY[0]))
    attacker.client.send(b"\x00\xff garbage \r\n\r\n")
    # Each answerable one has its final answer (the last INVITE's 400 comes again until an
    # ACK, as a non-2xx does over UDP); the others are dropped.
    finals = {(m.cseq.number, m.status) for m in attacker.client.quiet(0.4)
              if isinstance(m, SipResponse) and m.status >= 200}
    assert sorted(status for _, status in finals) == [400, 400, 400, 513]
    stream = running.client("TCP")
    stream.send(good.replace(b"Content-Length: ", b"Content-Length: -"))
    assert stream.response().status == 400
    with pytest.raises((ConnectionError, OSError)):  # the stream's framing is lost: closed
        stream.next(2)
    call.send("OPTIONS")
    assert call.client.response(method="OPTIONS").status == 200
    call.send("BYE")
    assert call.client.response(method="BYE").status == 200
    assert running.listener.kinds() == ["started", "ended"]


def test_sip_over_tls(start: Callable[..., Running], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    running = start(tls_port=free_port(), tls_cert=str(cert), tls_key=str(key))
    assert running.server.tls_address is not None
    context = ssl.create_default_context(cafile=str(cert))
    client = SipClient("TLS", running.server.tls_address, context=context)
    call = Call(client)
    ok = call.invite(*rfc7866_body())
    assert ok.status == 200
    assert "transport=tls" in (ok.headers.get("contact") or "")
    assert running.listener.wait("started")[0].transport == "TLS"
    call.send("BYE")
    assert client.response(method="BYE").status == 200


def test_the_recorder_ends_a_session_and_stop_ends_the_rest(running: Running) -> None:
    first, second = running.call(), running.call("TCP")
    for call in (first, second):
        call.invite("application/sdp", sdp((5000, "a", "sendonly")).encode())
    assert running.server.end_session(first.call_id)
    first.client.request("BYE")
    assert running.listener.wait("ended")[1] is EndReason.LOCAL
    assert not running.server.end_session("no-such-call")
    running.server.stop()
    assert running.server.join(5)
    second.client.request("BYE")
    assert running.listener.wait("ended", 2)[1] is EndReason.SHUTDOWN


def test_startup_errors_name_their_key(tmp_path: Path) -> None:
    missing = SiprecBoardConfig(sip_port=0, tls_port=free_port(),
                                tls_cert=str(tmp_path / "none.crt"),
                                tls_key=str(tmp_path / "none.key"))
    with pytest.raises(StartupError, match=r"boards\[0\]\.tls_cert: cannot use"):
        SipServer("boards[0]", missing, Listener()).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = SiprecBoardConfig(sip_port=taken.getsockname()[1])
        server = SipServer("boards[0]", busy, Listener())
        with pytest.raises(StartupError,
                           match=r"boards\[0\]\.sip_port: cannot listen") as failed:
            server.start()
        assert failed.value.port_busy  # so recorderd retries it (core.bind_retry_seconds)
        assert server.join(2)
