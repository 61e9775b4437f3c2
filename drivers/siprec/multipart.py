"""SIP message bodies: multipart/mixed split into parts (RFC 5621, RFC 2046), SIPREC's two found.

A SIPREC INVITE carries ``multipart/mixed`` with an ``application/sdp`` part and an
``application/rs-metadata+xml`` part (RFC 7866 §9.1; the RFCs' own examples and several SRCs
say ``application/rs-metadata``, so both are read). Older SRCs send plain SDP. The MIME work is
the standard library's ``email`` parser, which never raises on what it cannot read but notes
defects; a multipart body without a boundary, or whose boundary never appears, is refused with
400 (``BodyError``), and a body type we cannot read with 415 (answer it with an Accept header).
"""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass, field
from email.message import Message

from recorder.drivers.siprec.errors import ProtocolError

logger = logging.getLogger(__name__)

SDP = "application/sdp"
METADATA_TYPES = ("application/rs-metadata+xml", "application/rs-metadata")
ACCEPT = "application/sdp, application/rs-metadata+xml, multipart/mixed"  # for a 415
MAX_PARTS = 16


class BodyError(ProtocolError):
    """A body that cannot be read (400) or is of a type we do not read (415)."""


@dataclass(frozen=True)
class BodyPart:
    content_type: str  # type/subtype, lower case
    body: bytes
    disposition: str | None = None  # e.g. "recording-session", "session"
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SiprecBody:
    """What a recording INVITE (or re-INVITE, UPDATE) carries: an offer and/or metadata."""

    sdp: bytes | None
    metadata: bytes | None


def _disposition(part: Message) -> str | None:
    value = part.get("Content-Disposition")
    if value is None:
        return None
    return str(value).split(";", 1)[0].strip().lower() or None


def split_body(content_type: str, body: bytes) -> list[BodyPart]:
    """The leaf parts of ``body`` (itself, when it is not multipart); raises BodyError."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode(
        "utf-8", errors="replace")
    try:
        message = email.message_from_bytes(head + body, policy=email.policy.compat32)
    except Exception as exc:  # the parser is meant never to raise; be sure of it
        raise BodyError(f"unreadable body: {exc}") from None
    if message.get_content_maintype() != "multipart":
        return [BodyPart(message.get_content_type(), body, None, _params(message))]
    if message.get_boundary() is None:
        raise BodyError("a multipart body without a boundary parameter")
    if not message.is_multipart():
        raise BodyError("the multipart boundary never appears in the body")
    parts: list[BodyPart] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if len(parts) == MAX_PARTS:
            raise BodyError(f"more than {MAX_PARTS} body parts")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        parts.append(BodyPart(part.get_content_type(), data, _disposition(part),
                              _params(part)))
    return parts


def _params(part: Message) -> dict[str, str]:
    found = part.get_params() or []
    return {str(k).lower(): str(v) for k, v in found[1:]}


def siprec_body(content_type: str, body: bytes) -> SiprecBody:
    """The SDP offer and the recording metadata in a request's body (either may be None).

    An empty body is neither; a body that is neither SDP, metadata nor a multipart holding
    them raises BodyError(415).
    """
    if not body:
        return SiprecBody(None, None)
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in (SDP, *METADATA_TYPES) and not kind.startswith("multipart/"):
        raise BodyError(f"cannot read a body of type {kind or '(none)'}", 415)
    parts = split_body(content_type, body)
    sdp = next((p.body for p in parts if p.content_type == SDP), None)
    metadata = next((p.body for p in parts if p.content_type in METADATA_TYPES), None)
    if sdp is None and metadata is None:
        raise BodyError("the body holds neither SDP nor recording metadata", 415)
    return SiprecBody(sdp, metadata)
