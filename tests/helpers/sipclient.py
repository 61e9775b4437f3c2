"""What the SIPREC signalling tests share: a clock moved by hand, a listener that keeps what it
heard, and a small SIP client (an SRC, as far as the server can tell) over UDP, TCP or TLS."""

from __future__ import annotations

import heapq
import itertools
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recorder.drivers.siprec.events import (
    CapacityExceeded,
    EndReason,
    RecordingSession,
    SessionChange,
)
from recorder.drivers.siprec.sipheaders import NameAddr
from recorder.drivers.siprec.sipmessage import (
    KeepAlive,
    ParseError,
    SipMessage,
    SipRequest,
    SipResponse,
    StreamFramer,
    parse_message,
)
from tests.helpers.siprec import fixture_text, rfc7866_invite

METADATA_TYPE = "application/rs-metadata+xml"


class FakeTimers:
    """``Timers`` on a clock that moves only when a test says so."""

    def __init__(self) -> None:
        self.time = 0.0
        self._queue: list[tuple[float, int, _Handle]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Handle:
        handle = _Handle(callback)
        heapq.heappush(self._queue, (self.time + max(0.0, delay), next(self._order), handle))
        return handle

    def advance(self, seconds: float) -> None:
        """Move the clock, running every callback that falls due, in time order."""
        end = self.time + seconds
        while self._queue and self._queue[0][0] <= end:
            due, _, handle = heapq.heappop(self._queue)
            self.time = due
            if not handle.cancelled:
                handle.callback()
        self.time = end

    @property
    def pending(self) -> int:
        return sum(1 for _, _, h in self._queue if not h.cancelled)


@dataclass
class _Handle:
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class Listener:
    """A SessionListener that keeps what it hears; ``refuse`` makes it raise CapacityExceeded."""

    def __init__(self) -> None:
        self.events: list[tuple[str, RecordingSession, Any]] = []
        self.refuse = False
        self.threads: set[str] = set()
        self._changed = threading.Condition()

    def _note(self, kind: str, session: RecordingSession, detail: Any) -> None:
        with self._changed:
            self.threads.add(threading.current_thread().name)
            self.events.append((kind, session, detail))
            self._changed.notify_all()

    def session_started(self, session: RecordingSession) -> None:
        if self.refuse:
            raise CapacityExceeded("the recorder is full", retry_after=7)
        self._note("started", session, None)

    def session_updated(self, session: RecordingSession, change: SessionChange) -> None:
        self._note("updated", session, change)

    def session_ended(self, session: RecordingSession, reason: EndReason) -> None:
        self._note("ended", session, reason)

    def kinds(self) -> list[str]:
        with self._changed:
            return [kind for kind, _, _ in self.events]

    def wait(self, kind: str, count: int = 1, timeout: float = 5.0
             ) -> tuple[RecordingSession, Any]:
        """The ``count``-th event of ``kind`` (waiting for it): its session and detail."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [(s, d) for k, s, d in self.events if k == kind]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind} event #{count}; heard {self.kinds()}")
                self._changed.wait(left)


def rfc7866_body() -> tuple[str, bytes]:
    """RFC 7866's example body (two audio and two video streams, complete metadata)."""
    message = parse_message(rfc7866_invite())
    assert isinstance(message, SipRequest)
    return message.content_type, message.body


def metadata_body(name: str) -> tuple[str, bytes]:
    return METADATA_TYPE, fixture_text(name).encode()


def sdp(*streams: tuple[int, str, str], formats: str = "0") -> str:
    """An offer from 127.0.0.1 with one audio m-line per (port, label, direction)."""
    lines = ["v=0", "o=src 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for port, label, direction in streams:
        lines += [f"m=audio {port} RTP/AVP {formats}", "a=rtpmap:0 PCMU/8000",
                  "a=rtpmap:8 PCMA/8000", f"a=label:{label}", f"a={direction}"]
    return "\r\n".join(lines) + "\r\n"


def multipart(sdp_text: str, metadata: str, boundary: str = "b0undary") -> tuple[str, bytes]:
    body = (f"--{boundary}\r\nContent-Type: application/sdp\r\n\r\n{sdp_text}"
            f"--{boundary}\r\nContent-Type: {METADATA_TYPE}\r\n"
            f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{boundary}--\r\n")
    return f"multipart/mixed;boundary={boundary}", body.encode()


class SipClient:
    """One SRC socket: send raw bytes, read what the server sends back (``inbox``)."""

    def __init__(self, transport: str, server: tuple[str, int], *,
                 context: ssl.SSLContext | None = None) -> None:
        self.transport = transport
        self.server = server
        self.framer = StreamFramer()
        self.inbox: list[SipMessage] = []
        if transport == "UDP":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
        else:
            raw = socket.create_connection(server, timeout=5)
            self.sock = (context.wrap_socket(raw, server_hostname="127.0.0.1")
                         if context is not None else raw)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        if self.transport == "UDP":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def _read(self, timeout: float) -> list[SipMessage | ParseError | KeepAlive] | None:
        self.sock.settimeout(timeout)
        try:
            if self.transport == "UDP":
                data, _ = self.sock.recvfrom(70000)
                try:
                    return [parse_message(data)]
                except ParseError as exc:
                    return [exc]
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return None
        if not data:
            raise ConnectionError("the server closed the connection")
        return self.framer.feed(data)

    def next(self, timeout: float = 3.0, *,
             match: Callable[[SipMessage], bool] = lambda m: True) -> SipMessage:
        """The next message that ``match``es (others stay in ``inbox``)."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.inbox:
                if match(message):
                    self.inbox.remove(message)
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing matching within {timeout} s; inbox {self.inbox}")
            for item in self._read(left) or []:
                if isinstance(item, SipRequest | SipResponse):
                    self.inbox.append(item)

    def response(self, status: int | None = None, method: str | None = None,
                 timeout: float = 3.0) -> SipResponse:
        """The next final (or ``status``) response, to ``method`` if given; 100s are skipped."""
        def wanted(m: SipMessage) -> bool:
            return (isinstance(m, SipResponse) and (m.status == status if status else
                                                    m.status >= 200)
                    and (method is None or m.cseq.method == method))
        found = self.next(timeout, match=wanted)
        assert isinstance(found, SipResponse)
        return found

    def request(self, method: str, timeout: float = 3.0) -> SipRequest:
        found = self.next(timeout, match=lambda m: isinstance(m, SipRequest)
                          and m.method == method)
        assert isinstance(found, SipRequest)
        return found

    def quiet(self, seconds: float) -> list[SipMessage]:
        """Everything that arrives within ``seconds`` (and what waited in the inbox)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for item in self._read(left) or []:
                if isinstance(item, SipRequest | SipResponse):
                    self.inbox.append(item)
        got, self.inbox = self.inbox, []
        return got


@dataclass
class Call:
    """One dialog as the SRC builds it: headers filled in, CSeq counted, tags kept."""

    client: SipClient
    call_id: str = field(default_factory=lambda: f"{secrets.token_hex(8)}@127.0.0.1")
    from_tag: str = field(default_factory=lambda: secrets.token_hex(4))
    to_tag: str | None = None
    cseq: int = 100
    uri: str = "sip:recorder@127.0.0.1"

    def build(self, method: str, *, body: bytes = b"", content_type: str | None = None,
              headers: tuple[tuple[str, str], ...] = (), cseq: int | None = None,
              branch: str | None = None, to_tag: str | None = None) -> bytes:
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        tag = to_tag if to_tag is not None else self.to_tag
        t = self.client.transport
        lines = [
            f"{method} {self.uri} SIP/2.0",
            f"Via: SIP/2.0/{t} 127.0.0.1:{self.client.port};branch="
            f"{branch or 'z9hG4bK' + secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:src@127.0.0.1>;tag={self.from_tag}",
            f"To: <sip:recorder@127.0.0.1>{f';tag={tag}' if tag else ''}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:src@127.0.0.1:{self.client.port};transport={t.lower()}>;+sip.src",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, method: str, **kwargs: Any) -> bytes:
        data = self.build(method, **kwargs)
        self.client.send(data)
        return data

    def invite(self, content_type: str, body: bytes,
               headers: tuple[tuple[str, str], ...] = (("Require", "siprec"),)) -> SipResponse:
        """INVITE, its final response and its ACK; a 2xx's To tag is kept for the dialog."""
        branch = "z9hG4bK" + secrets.token_hex(6)
        self.send("INVITE", body=body, content_type=content_type, headers=headers,
                  branch=branch)
        response = self.client.response(method="INVITE")
        if 200 <= response.status < 300:
            self.to_tag = _to_tag(response)
            self.ack(response)
        else:  # the ACK of a refusal belongs to the INVITE's transaction: its branch
            self.send("ACK", cseq=response.cseq.number, branch=branch,
                      to_tag=_to_tag(response))
        return response

    def ack(self, response: SipResponse) -> None:
        self.send("ACK", cseq=response.cseq.number, to_tag=_to_tag(response))


def _to_tag(response: SipResponse) -> str:
    tag = NameAddr.parse(response.headers.get("to") or "").tag
    assert tag, response
    return tag
