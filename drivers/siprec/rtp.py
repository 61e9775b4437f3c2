"""RTP and RTCP packets (RFC 3550) as they come off a media socket; RFC 4733 events.

``classify`` tells RTP from RTCP on one port (RFC 5761 §4: the second octet of an RTCP packet
is its packet type, 192 to 223, which RTP cannot carry once the marker bit is folded in with
the audio payload types we accept). ``parse_rtp`` reads the fixed header, CSRCs, a header
extension and padding, and returns None for anything malformed: a media socket must never raise
on what a stranger sends it. RTCP is recognised so it can be ignored; telephone-events are
parsed only far enough to be counted (their digits are card numbers and PINs, never kept).
"""

from __future__ import annotations

import enum
import logging
import struct
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RTP_VERSION = 2
HEADER_BYTES = 12
_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_EVENT = struct.Struct("!BBH")
RTCP_TYPES = range(192, 224)  # RFC 5761 §4: 200-204 (SR, RR, SDES, BYE, APP) and their kin


class Kind(enum.Enum):
    RTP = "rtp"
    RTCP = "rtcp"
    OTHER = "other"  # STUN, DTLS, junk: not ours to read


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet; ``payload`` excludes header, CSRCs, extension and padding."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension: bytes = b""
    padding: int = 0  # padding octets that were stripped

    def to_bytes(self) -> bytes:
        """The packet on the wire (tests and tools build streams with it); no padding."""
        first = RTP_VERSION << 6 | (0x10 if self.extension_profile is not None else 0)
        first |= len(self.csrcs)
        head = _FIXED.pack(first, (0x80 if self.marker else 0) | self.payload_type,
                           self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF,
                           self.ssrc & 0xFFFFFFFF)
        csrcs = b"".join(struct.pack("!I", c) for c in self.csrcs)
        ext = b""
        if self.extension_profile is not None:
            if len(self.extension) % 4:
                raise ValueError("an RTP header extension is a whole number of 32-bit words")
            ext = _EXTENSION.pack(self.extension_profile, len(self.extension) // 4)
            ext += self.extension
        return head + csrcs + ext + self.payload


def classify(data: bytes) -> Kind:
    """RTP, RTCP or something else, from the first two octets (RFC 5761 §4, RFC 7983 §7)."""
    if len(data) < 2 or data[0] >> 6 != RTP_VERSION:
        return Kind.OTHER
    return Kind.RTCP if data[1] in RTCP_TYPES else Kind.RTP


def parse_rtp(data: bytes) -> RtpPacket | None:
    """The RTP packet in ``data``; None if it is not a well-formed RTP packet (or is RTCP)."""
    if len(data) < HEADER_BYTES or classify(data) is not Kind.RTP:
        return None
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(data)
    end = len(data)
    padding = 0
    if first & 0x20:
        # RFC 3550 §5.1: the last octet counts the padding, itself included.
        padding = data[-1]
        if padding == 0:
            return None
        end -= padding
    offset = HEADER_BYTES
    count = first & 0x0F
    if offset + 4 * count > end:
        return None
    csrcs = struct.unpack_from(f"!{count}I", data, offset) if count else ()
    offset += 4 * count
    profile: int | None = None
    extension = b""
    if first & 0x10:
        if offset + 4 > end:
            return None
        profile, words = _EXTENSION.unpack_from(data, offset)
        offset += 4
        if offset + 4 * words > end:
            return None
        extension = bytes(data[offset:offset + 4 * words])
        offset += 4 * words
    if offset > end:
        return None
    return RtpPacket(payload_type=second & 0x7F, sequence=sequence, timestamp=timestamp,
                     ssrc=ssrc, payload=bytes(data[offset:end]), marker=bool(second & 0x80),
                     csrcs=tuple(csrcs), extension_profile=profile, extension=extension,
                     padding=padding)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 §2.3 event payload; kept only long enough to count it."""

    event: int
    end: bool
    volume: int
    duration: int  # in RTP timestamp units, from the packet's timestamp


def parse_telephone_event(payload: bytes) -> TelephoneEvent | None:
    """The first event block of a telephone-event payload; None if it is too short."""
    if len(payload) < _EVENT.size:
        return None
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F,
                          duration=duration)
