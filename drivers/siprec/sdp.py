"""SDP offers (RFC 4566) read, and the recorder's answers built (RFC 3264, RFC 7866 §7.1).

``parse_sdp`` reads what an SRC offers: origin, connection (session or media level), each
m-line's port, proto and formats, rtpmap/fmtp/ptime, direction, ``a=label`` (RFC 4574) and
``a=crypto`` (RFC 4568). ``build_answer`` answers it as a recorder does: one m-line per
offered one, in order; for each audio stream in a codec we decode, our port, the first
offered codec we decode (plus the offer's telephone-event and CN, so they are recognised
rather than mistaken for audio) and ``a=recvonly``; port 0 for every stream we refuse; our own
SDES key where SRTP is offered. ``paused_streams`` says which streams the SRC has paused.

Choices where the RFCs leave room, and why:
- A stream the SRC offers recvonly or inactive (or on the old hold address 0.0.0.0) is
  answered ``a=inactive`` (RFC 3264 §6.1 allows no recvonly answer to it) and counts as paused.
- RTP/AVP with ``a=crypto`` lines is answered in plain RTP: RFC 4568 keys belong to SAVP.
- A crypto line with an MKI or session parameters is passed over (libsrtp as we drive it takes
  neither); a SAVP stream without a usable line is refused, never downgraded.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from recorder.drivers.siprec import payloads
from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.srtp import CryptoAttribute, local_crypto, parse_crypto

logger = logging.getLogger(__name__)

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: tuple[Direction, ...] = ("sendrecv", "sendonly", "recvonly", "inactive")
RTP_PROTOS = ("RTP/AVP", "RTP/AVPF", "RTP/SAVP", "RTP/SAVPF")
MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA = 32
_HOLD_ADDRESSES = ("0.0.0.0", "::")


class SdpError(ProtocolError):
    """An SDP body that cannot be read (answer 400) or answered (488)."""


@dataclass(frozen=True)
class Connection:
    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"


@dataclass(frozen=True)
class Origin:
    username: str
    session_id: str
    version: str
    address: str


@dataclass
class MediaDescription:
    """One m-line and what applies to it (media-level values over session-level ones)."""

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: Connection | None = None
    direction: Direction = "sendrecv"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        return next((v for n, v in self.attributes if n == name), None)

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.attributes)

    def attribute_values(self, name: str) -> list[str]:
        return [v for n, v in self.attributes if n == name and v is not None]

    @property
    def label(self) -> str | None:
        return self.attribute("label")

    @property
    def ptime(self) -> int | None:
        value = self.attribute("ptime")
        return int(value) if value and value.isdigit() else None

    @property
    def crypto(self) -> list[str]:
        return self.attribute_values("crypto")

    @property
    def is_rtp(self) -> bool:
        return self.proto.upper() in RTP_PROTOS

    @property
    def is_srtp(self) -> bool:
        return self.proto.upper() in ("RTP/SAVP", "RTP/SAVPF")

    def payload_formats(self) -> list[PayloadFormat]:
        """The offered payload types, in order, named by rtpmap or RFC 3551."""
        rtpmaps: dict[int, tuple[str, int, int]] = {}
        fmtps: dict[int, str] = {}
        for value in self.attribute_values("rtpmap"):
            number, _, spec = value.partition(" ")
            parts = spec.strip().split("/")
            if number.isdigit() and len(parts) >= 2 and parts[1].isdigit():
                channels = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
                rtpmaps[int(number)] = (parts[0], int(parts[1]), channels)
        for value in self.attribute_values("fmtp"):
            number, _, params = value.partition(" ")
            if number.isdigit():
                fmtps[int(number)] = params.strip()
        formats: list[PayloadFormat] = []
        for token in self.formats:
            if not token.isdigit() or int(token) > 127:
                continue
            pt = int(token)
            if pt in rtpmaps:
                name, clock, channels = rtpmaps[pt]
                formats.append(PayloadFormat(pt, name, clock, channels, fmtps.get(pt, "")))
            elif pt in payloads.STATIC:
                static = payloads.STATIC[pt]
                formats.append(PayloadFormat(pt, static.name, static.clock_rate,
                                             static.channels, fmtps.get(pt, "")))
        return formats


@dataclass
class SessionDescription:
    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    direction: Direction = "sendrecv"
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)


def _connection(value: str) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"not a c= line: {value[:60]!r}")
    # Multicast "/ttl[/count]" suffixes are dropped: a recorder only ever takes unicast.
    return Connection(parts[2].split("/")[0], parts[1].upper(), parts[0].upper())


def _origin(value: str) -> Origin:
    parts = value.split()
    if len(parts) != 6:
        raise SdpError(f"not an o= line: {value[:60]!r}")
    return Origin(parts[0], parts[1], parts[2], parts[5])


def _media(value: str) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"not an m= line: {value[:60]!r}")
    port = parts[1].split("/")[0]
    if not port.isdigit() or int(port) > 65535:
        raise SdpError(f"not a port: {parts[1][:20]!r}")
    return MediaDescription(parts[0].lower(), int(port), parts[2], parts[3:])


def parse_sdp(data: bytes | str) -> SessionDescription:
    """The session description in ``data``; raises SdpError (400) for what is not SDP."""
    if isinstance(data, bytes):
        if len(data) > MAX_SDP_BYTES:
            raise SdpError("the SDP is over the size limit")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("the SDP is not UTF-8") from None
    else:
        text = data
    lines = [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("an SDP must start with v=0")
    origin: Origin | None = None
    name = "-"
    connection: Connection | None = None
    session_attrs: list[tuple[str, str | None]] = []
    media: list[MediaDescription] = []
    for line in lines[1:]:
        kind, eq, value = line.partition("=")
        if not eq or len(kind) != 1:
            raise SdpError(f"not an SDP line: {line[:60]!r}")
        current = media[-1] if media else None
        if kind == "o":
            origin = _origin(value)
        elif kind == "s" and current is None:
            name = value
        elif kind == "m":
            media.append(_media(value))
            if len(media) > MAX_MEDIA:
                raise SdpError("too many m-lines")
        elif kind == "c":
            if current is None:
                connection = _connection(value)
            else:
                current.connection = _connection(value)
        elif kind == "a":
            attr, colon, attr_value = value.partition(":")
            entry = (attr.strip().lower(), attr_value.strip() if colon else None)
            (current.attributes if current is not None else session_attrs).append(entry)
    if origin is None:
        raise SdpError("an SDP without o=")
    session = SessionDescription(origin, name, connection, _direction(session_attrs, "sendrecv"),
                                 session_attrs, media)
    for m in media:
        m.connection = m.connection or connection
        m.direction = _direction(m.attributes, session.direction)
    return session


def _direction(attributes: list[tuple[str, str | None]], default: Direction) -> Direction:
    # A media-level direction overrides the session's; the last one given counts.
    found: list[Direction] = [name for name, _ in attributes if name in DIRECTIONS]
    return found[-1] if found else default


def is_paused(media: MediaDescription) -> bool:
    """True if the SRC says it will not send on this stream: recvonly or inactive (the
    recorder would answer sendonly/inactive), or the RFC 2543 hold address."""
    if media.direction in ("recvonly", "inactive"):
        return True
    return media.connection is not None and media.connection.address in _HOLD_ADDRESSES


def paused_streams(offer: SessionDescription) -> set[int]:
    """Indexes of the offered audio streams that are paused (a port-0 stream is not paused:
    it is gone)."""
    return {i for i, m in enumerate(offer.media)
            if m.media == "audio" and m.port != 0 and is_paused(m)}


@dataclass(frozen=True)
class Choice:
    """What the recorder takes from one offered stream (or why it refuses it)."""

    codec: PayloadFormat | None
    events: PayloadFormat | None = None
    comfort_noise: PayloadFormat | None = None
    crypto: CryptoAttribute | None = None  # the SRC's key, which decrypts what it sends
    refused: str = ""  # why, when codec is None


def choose(media: MediaDescription,
           decodable: Callable[[PayloadFormat], bool] = payloads.can_decode) -> Choice:
    """The codec (first offered that we decode), events, CN and key taken from ``media``."""
    if media.port == 0:
        return Choice(None, refused="the stream is disabled (port 0)")
    if media.media != "audio":
        return Choice(None, refused=f"{media.media} is not recorded")
    if not media.is_rtp:
        return Choice(None, refused=f"{media.proto} is not supported")
    crypto: CryptoAttribute | None = None
    if media.is_srtp:
        crypto = next((c for c in map(parse_crypto, media.crypto) if c is not None), None)
        if crypto is None:
            return Choice(None, refused="no usable a=crypto for SRTP")
    formats = media.payload_formats()
    codec = next((f for f in formats if decodable(f)), None)
    if codec is None:
        return Choice(None, refused="no offered codec can be decoded")
    events = next((f for f in formats if payloads.is_event(f)
                   and f.clock_rate == codec.clock_rate), None)
    noise = next((f for f in formats if payloads.is_comfort_noise(f)
                  and f.clock_rate == codec.clock_rate), None)
    return Choice(codec, events, noise, crypto)


@dataclass(frozen=True)
class StreamAnswer:
    """The answer for one m-line, with what the media side needs to receive it."""

    index: int
    label: str | None
    choice: Choice
    port: int  # ours; 0 when refused
    paused: bool
    remote: tuple[str, int] | None  # where the SRC says it sends from (c= and m= port)
    local_crypto: CryptoAttribute | None = None  # our key, as answered

    @property
    def accepted(self) -> bool:
        return self.port != 0


@dataclass(frozen=True)
class Answer:
    sdp: bytes
    streams: list[StreamAnswer]

    @property
    def accepted(self) -> list[StreamAnswer]:
        return [s for s in self.streams if s.accepted]


def _addrtype(address: str) -> str:
    try:
        return "IP6" if ipaddress.ip_address(address).version == 6 else "IP4"
    except ValueError:
        return "IP4"  # a host name: RFC 4566 lets c= carry one


def build_answer(offer: SessionDescription, *, address: str, ports: Sequence[int | None],
                 session_id: int, version: int,
                 decodable: Callable[[PayloadFormat], bool] = payloads.can_decode) -> Answer:
    """The SDP answer to ``offer``. ``ports[i]`` is our RTP port for m-line i (None or 0:
    refuse it); ``version`` must grow with each new answer in the dialog (RFC 3264 §8).
    Raises SdpError(488) when no stream can be accepted."""
    addrtype = _addrtype(address)
    lines = ["v=0", f"o=recorder {session_id} {version} IN {addrtype} {address}", "s=recorder",
             f"c=IN {addrtype} {address}", "t=0 0"]
    streams: list[StreamAnswer] = []
    for index, media in enumerate(offer.media):
        choice = choose(media, decodable)
        port = ports[index] if index < len(ports) else None
        if choice.codec is not None and not port:
            choice = Choice(None, refused="no port for the stream")
        remote = None
        if media.connection is not None and media.port:
            remote = (media.connection.address, media.port)
        if choice.codec is None:
            logger.info("refusing m-line %d (%s): %s", index, media.media, choice.refused)
            lines.append(f"m={media.media} 0 {media.proto} {' '.join(media.formats) or '0'}")
            streams.append(StreamAnswer(index, media.label, choice, 0, False, remote))
            continue
        assert port is not None
        taken = [f for f in (choice.codec, choice.events, choice.comfort_noise) if f]
        lines.append(f"m=audio {port} {media.proto} {' '.join(str(f.pt) for f in taken)}")
        for fmt in taken:
            lines.append(f"a=rtpmap:{fmt.rtpmap()}")
            if fmt.fmtp:
                lines.append(f"a=fmtp:{fmt.pt} {fmt.fmtp}")
        local = local_crypto(choice.crypto) if choice.crypto is not None else None
        if local is not None:
            lines.append(f"a=crypto:{local.to_string()}")
        if media.has("rtcp-mux"):
            lines.append("a=rtcp-mux")  # we take RTCP on the RTP port anyway (RFC 5761)
        if media.label is not None:
            lines.append(f"a=label:{media.label}")
        paused = is_paused(media)
        lines.append("a=inactive" if paused else "a=recvonly")
        streams.append(StreamAnswer(index, media.label, choice, port, paused, remote, local))
    if not any(s.accepted for s in streams):
        raise SdpError("no offered stream can be recorded", 488)
    return Answer(("\r\n".join(lines) + "\r\n").encode(), streams)
