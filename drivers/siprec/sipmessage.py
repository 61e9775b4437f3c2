"""SIP messages (RFC 3261 §7, §18.3, §20): parse, frame, answer, serialise.

``parse_message`` reads one UDP datagram; ``StreamFramer`` cuts a TCP/TLS byte stream into
messages by Content-Length and passes CRLF keep-alives (RFC 5626 §4.4.1) on. Anything that
cannot be taken raises ``ParseError`` with the status to answer: 400 for a malformed request,
413 for a body over the limit, 505 for another SIP version, 513 for a header section over the
limits; None when nothing may be answered (a response, an ACK, bytes without the five headers
a response copies). Such a ParseError carries the partial request, enough for
``make_response`` to build the answer (RFC 3261 §8.2.6).

Header names are case-insensitive and compact forms are expanded; ``Headers.values`` splits
comma lists outside quotes and angle brackets; the typed readers (``NameAddr``, ``Via``,
``CSeq``) live in ``sipheaders``.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass, field
from typing import Final

from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.sipheaders import CSeq, Headers, NameAddr, Via

logger = logging.getLogger(__name__)

SIP_VERSION: Final = "SIP/2.0"
ESSENTIAL = ("via", "from", "to", "call-id", "cseq")  # what a response copies (§8.2.6.2)
_TOKEN = r"[A-Za-z0-9.!%*_+`'~-]+"
_REQUEST_LINE = re.compile(rf"^({_TOKEN}) (\S+) (SIP/\d+\.\d+)$", re.IGNORECASE)
_STATUS_LINE = re.compile(r"^(SIP/\d+\.\d+) ([1-6]\d\d) ?(.*)$", re.IGNORECASE)
_HEADER_NAME = re.compile(rf"^{_TOKEN}$")
_HEAD_END = re.compile(rb"\r?\n\r?\n")

REASONS: dict[int, str] = {
    100: "Trying", 180: "Ringing", 183: "Session Progress", 200: "OK", 202: "Accepted",
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 408: "Request Timeout", 413: "Request Entity Too Large",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 481:
    "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here", 491:
    "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 603: "Decline",
}


@dataclass(frozen=True)
class Limits:
    """What one message may hold; beyond it the message is refused (413/513) or dropped."""

    max_message_bytes: int = 96 * 1024
    max_header_bytes: int = 32 * 1024
    max_headers: int = 200
    max_line_bytes: int = 8 * 1024
    max_body_bytes: int = 64 * 1024


DEFAULT_LIMITS: Final = Limits()


class _Transaction:
    """What requests and responses both carry to match them to a dialog and transaction."""

    headers: Headers

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.headers.get("cseq") or "")


@dataclass
class SipRequest(_Transaction):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("from") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("to") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.values("via")]

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type") or ""

    def to_bytes(self) -> bytes:
        return _serialise(f"{self.method} {self.uri} {self.version}", self.headers, self.body)


@dataclass
class SipResponse(_Transaction):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    version: str = SIP_VERSION

    def to_bytes(self) -> bytes:
        return _serialise(f"{self.version} {self.status} {self.reason}", self.headers,
                          self.body)


SipMessage = SipRequest | SipResponse


class ParseError(ProtocolError):
    """A message that cannot be taken. ``status`` is set only when ``request`` holds the five
    headers a response copies (and the message is a request other than ACK)."""

    def __init__(self, reason: str, status: int | None = None,
                 request: SipRequest | None = None) -> None:
        answerable = request is not None and request.method.upper() != "ACK"
        super().__init__(reason, status if answerable else None)
        self.request = request if answerable else None


def _serialise(first_line: str, headers: Headers, body: bytes) -> bytes:
    lines = [first_line]
    lines += [f"{name}: {value}" for name, value in headers.items()
              if name.lower() != "content-length"]
    # Content-Length is always written, last, and always true (§20.14: mandatory on streams).
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _split_lines(head: str) -> list[str]:
    # CRLF is the rule; bare LF is read too (RFC 3261 §7 robustness, and sipp's own files).
    return head.replace("\r\n", "\n").split("\n")


def _salvage(head: bytes, limits: Limits, reason: str, status: int) -> ParseError:
    """The error for a message we refuse, with the essentials found for answering it."""
    text = head[: limits.max_header_bytes].decode("utf-8", errors="replace")
    lines = _split_lines(text)
    match = _REQUEST_LINE.match(lines[0]) if lines else None
    if match is None:
        return ParseError(reason)
    request = SipRequest(match.group(1).upper(), match.group(2))
    for line in lines[1 : limits.max_headers + 1]:
        name, colon, value = line.partition(":")
        if (colon and len(line) <= limits.max_line_bytes and _HEADER_NAME.match(name.strip())
                and Headers.key(name.strip()) in ESSENTIAL):
            request.headers.add(name.strip(), value.strip())
    if not all(request.headers.get(k) for k in ESSENTIAL):
        return ParseError(reason)
    return ParseError(reason, status, request)


def _header_lines(lines: list[str], head: bytes, limits: Limits) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if len(line) > limits.max_line_bytes:
            raise _salvage(head, limits, "a header line is over the limit", 513)
        if line[:1] in (" ", "\t"):
            # Folded continuation (§7.3.1): the line break and indent become one space.
            if not headers:
                raise _salvage(head, limits, "a continuation line before any header", 400)
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            if len(headers[-1][1]) > limits.max_line_bytes:
                raise _salvage(head, limits, "a header is over the limit", 513)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _HEADER_NAME.match(name.rstrip(" \t")):
            raise _salvage(head, limits, f"not a header line: {line[:40]!r}", 400)
        headers.append((name.rstrip(" \t"), value.strip()))
        if len(headers) > limits.max_headers:
            raise _salvage(head, limits, "too many header lines", 513)
    return headers


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SipMessage:
    """The SIP message in one datagram (or one framed stream message); raises ParseError."""
    if len(data) > limits.max_message_bytes:
        raise _salvage(data, limits, "the message is over the size limit", 513)
    data = data.lstrip(b"\r\n")  # CRLFs before a start line are ignored (§7.5)
    if not data:
        raise ParseError("an empty message (a keep-alive)")
    found = _HEAD_END.search(data)
    # A message cut before its blank line is read as headers alone; Content-Length then tells.
    head, rest = (data[: found.start()], data[found.end():]) if found else (data, b"")
    if len(head) > limits.max_header_bytes:
        raise _salvage(head, limits, "the header section is over the limit", 513)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise _salvage(head, limits, "the header section is not UTF-8", 400) from None
    lines = _split_lines(text)
    start = lines[0]
    status_match = _STATUS_LINE.match(start)
    request_match = None if status_match else _REQUEST_LINE.match(start)
    if status_match is None and request_match is None:
        raise _salvage(head, limits, f"not a SIP start line: {start[:40]!r}", 400)
    headers = Headers(_header_lines(lines[1:], head, limits))
    message: SipMessage
    if status_match is not None:
        message = SipResponse(int(status_match.group(2)), status_match.group(3), headers,
                              version=status_match.group(1).upper())
    else:
        assert request_match is not None
        message = SipRequest(request_match.group(1).upper(), request_match.group(2), headers,
                             version=request_match.group(3).upper())
    message.body = _body(message, rest, limits)
    _check(message)
    return message


def _refuse(message: SipMessage, reason: str, status: int = 400) -> ParseError:
    return ParseError(reason, status, message if isinstance(message, SipRequest) else None)


def _body(message: SipMessage, rest: bytes, limits: Limits) -> bytes:
    raw_length = message.headers.get("content-length")
    if raw_length is None:
        length = len(rest)  # a datagram may leave it out (§18.3): the body is the rest
    elif not raw_length.isdigit() or len(raw_length) > 10:
        raise _refuse(message, f"Content-Length is not a number: {raw_length[:20]!r}")
    else:
        length = int(raw_length)
        if length > len(rest):
            raise _refuse(message, f"Content-Length {length} but {len(rest)} bytes follow")
    if length > limits.max_body_bytes:
        raise _refuse(message, f"a body of {length} bytes is over the limit", 413)
    # Bytes after the body in a datagram are discarded (§18.3).
    return rest[:length]


def _check(message: SipMessage) -> None:
    """Refuse a message whose essential headers are missing or malformed."""
    if message.version != SIP_VERSION:
        raise _refuse(message, f"{message.version} is not {SIP_VERSION}", 505)
    missing = [k for k in ESSENTIAL if not message.headers.get(k)]
    if missing:
        # Without them no response can be built (§8.1.1, §8.2.6.2): nothing is answered.
        raise ParseError(f"missing {', '.join(missing)}")
    try:
        cseq = message.cseq
        vias = message.headers.values("via")
        Via.parse(vias[0])
        NameAddr.parse(message.headers.get("from") or "")
        NameAddr.parse(message.headers.get("to") or "")
    except ValueError as exc:
        raise _refuse(message, str(exc)) from None
    if isinstance(message, SipRequest) and cseq.method != message.method:
        raise _refuse(message, f"CSeq method {cseq.method} is not {message.method}")


class KeepAlive:
    """A double CRLF on a stream (RFC 5626 §4.4.1); answer it with one CRLF."""

    def __repr__(self) -> str:
        return "KEEPALIVE"


KEEPALIVE: Final = KeepAlive()
Framed = SipRequest | SipResponse | ParseError | KeepAlive


class StreamFramer:
    """Cuts a SIP byte stream into messages by Content-Length (§18.3).

    ``feed`` returns what the new bytes completed, in order: messages, ParseErrors for
    messages that framed but did not parse (answer them; the stream goes on) and KEEPALIVEs.
    A framing error (headers over the limit, no or a bad Content-Length) is returned as a
    ParseError and ``broken`` is set: answer it if it has a status, then close the connection,
    since where the next message starts is unknown.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.broken = False
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Framed]:
        if self.broken:
            return []
        self._buffer += data
        out: list[Framed] = []
        while self._buffer and not self.broken:
            item = self._next()
            if item is None:
                break
            out.append(item)
        return out

    def _next(self) -> Framed | None:
        buffer = self._buffer
        while buffer and buffer[0] in b"\r\n":
            if buffer.startswith(b"\r\n\r\n"):
                del buffer[:4]
                return KEEPALIVE
            if len(buffer) < 4 and b"\r\n\r\n".startswith(buffer):
                return None  # perhaps the start of a keep-alive
            del buffer[: 2 if buffer.startswith(b"\r\n") else 1]  # a lone CRLF is ignored
        if not buffer:
            return None
        found = _HEAD_END.search(buffer, 0, self.limits.max_header_bytes + 4)
        if found is None:
            if len(buffer) > self.limits.max_header_bytes:
                return self._break(_salvage(bytes(buffer), self.limits,
                                            "the header section is over the limit", 513))
            return None
        head = bytes(buffer[: found.start()])
        length = self._content_length(head)
        if isinstance(length, ParseError):
            return self._break(length)
        end = found.end() + length
        if len(buffer) < end:
            return None
        message = bytes(buffer[:end])
        del buffer[:end]
        try:
            return parse_message(message, self.limits)
        except ParseError as exc:
            return exc

    def _content_length(self, head: bytes) -> int | ParseError:
        values = [line.partition(b":")[2].strip() for line in head.splitlines()
                  if line.partition(b":")[0].strip().lower() in (b"content-length", b"l")]
        if not values:
            return _salvage(head, self.limits, "no Content-Length on a stream", 400)
        if len(set(values)) != 1 or not values[0].isdigit() or len(values[0]) > 10:
            return _salvage(head, self.limits, "a bad Content-Length on a stream", 400)
        length = int(values[0])
        if length > self.limits.max_body_bytes:
            return _salvage(head, self.limits, f"a body of {length} bytes is over the limit",
                            413)
        return length

    def _break(self, error: ParseError) -> ParseError:
        self.broken = True
        self._buffer.clear()
        return error


def new_tag() -> str:
    """A To/From tag with the 32 random bits RFC 3261 §19.3 asks for, and more."""
    return secrets.token_hex(8)


def make_response(request: SipRequest, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", content_type: str | None = None) -> SipResponse:
    """The response to ``request`` per RFC 3261 §8.2.6.

    Via (every value, in order), From, Call-ID and CSeq are copied; To is copied and, when the
    request's To had no tag, given ``to_tag`` (a new one if None) on every response but 100.
    A 100 copies Timestamp (§8.2.6.1); a 101-299 to an INVITE copies Record-Route (§12.1.1).
    """
    out = Headers()
    for value in request.headers.get_all("via"):
        out.add("Via", value)
    out.add("From", request.headers.get("from") or "")
    to = request.headers.get("to") or ""
    if status != 100 and "tag" not in _to_params(to):
        to = f"{to};tag={to_tag or new_tag()}"
    out.add("To", to)
    out.add("Call-ID", request.call_id)
    out.add("CSeq", request.headers.get("cseq") or "")
    if status == 100 and request.headers.get("timestamp"):
        out.add("Timestamp", request.headers.get("timestamp") or "")
    if request.method == "INVITE" and 100 < status < 300:
        for value in request.headers.get_all("record-route"):
            out.add("Record-Route", value)
    for name, value in headers or []:
        out.add(name, value)
    if body and content_type:
        out.set("Content-Type", content_type)
    return SipResponse(status, reason or REASONS.get(status, "Unknown"), out, body)


def _to_params(to: str) -> dict[str, str | None]:
    try:
        return NameAddr.parse(to).params
    except ValueError:
        return {}
