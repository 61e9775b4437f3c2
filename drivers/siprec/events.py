"""What the SIP layer tells the rest of the recorder: recording sessions and their changes.

The UAS calls a ``SessionListener`` from the SIP thread (``siprec-sip-<key>``):
``session_started`` before it answers an INVITE, ``session_updated`` after a re-INVITE or an
UPDATE changed the streams, their pause or the metadata, ``session_ended`` once the session is
over, for any reason. Each call gets a ``RecordingSession`` snapshot: frozen, replaced (never
changed) by the next update, so a listener may hand it to another thread as it is. A listener
must return quickly (every SIP message waits for it) and may refuse a new session only for
capacity, by raising ``CapacityExceeded`` (the SRC gets 503 with Retry-After and can fail
over). Whether the call is then recorded (schedules, filters) is not the SRC's business: it
gets 200 either way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from recorder.drivers.siprec.metadata import RecordingMetadata
from recorder.drivers.siprec.payloads import PayloadFormat
from recorder.drivers.siprec.sipheaders import Headers, NameAddr
from recorder.drivers.siprec.srtp import CryptoAttribute
from recorder.drivers.siprec.vendor import VendorParty
from recorder.errors import RecorderError


class CapacityExceeded(RecorderError):
    """Raised by ``session_started`` to refuse a session for lack of room (503)."""

    def __init__(self, reason: str, retry_after: int = 30) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class EndReason(enum.StrEnum):
    BYE = "bye"  # the SRC sent BYE
    SESSION_EXPIRED = "session-expired"  # RFC 4028: not refreshed in time
    NO_ACK = "no-ack"  # our 200 was never ACKed (RFC 3261 §13.3.1.4)
    LOCAL = "local"  # the recorder ended it (media timeout, an operator); we sent BYE
    SHUTDOWN = "shutdown"  # the SIP server stopped; we sent BYE


@dataclass(frozen=True)
class DialogId:
    """A dialog (RFC 3261 §12): Call-ID and the two tags, ours (the To tag) and the SRC's."""

    call_id: str
    local_tag: str
    remote_tag: str


@dataclass(frozen=True)
class AnsweredStream:
    """One m-line of the SRC's offer that we answered with a port: what the media side needs to
    receive it."""

    index: int  # the m-line's position in the offer (and in our answer)
    label: str | None  # a=label (RFC 4574), which the metadata's <stream> names
    port: int  # our RTP port; RTCP is port + 1
    remote: tuple[str, int] | None  # where the SRC says it sends from (c= and m= port)
    codec: PayloadFormat  # the first offered codec we decode
    telephone_event: PayloadFormat | None  # RFC 4733: counted, never stored
    comfort_noise: PayloadFormat | None  # RFC 3389: becomes silence
    crypto: CryptoAttribute | None  # the SRC's SDES key (decrypts what it sends), or None
    local_crypto: CryptoAttribute | None  # ours, as answered
    paused: bool  # the SDP or the metadata says nobody sends on it now
    participant: str | None  # the AOR of who sends it (metadata label or vendor index)


@dataclass(frozen=True)
class RecordingSession:
    """One SIPREC recording session (one dialog with an SRC), as of its last change."""

    dialog: DialogId
    from_: NameAddr  # the SRC's From (an SRC, not a party of the call)
    to: NameAddr  # who the SRC called: the recorder
    source: tuple[str, int]  # where the SIP came from
    transport: str  # UDP, TCP or TLS
    headers: Headers  # the initial INVITE's (vendor X- headers, Session-ID, ...)
    metadata: RecordingMetadata | None  # RFC 7865, complete (partial updates merged)
    vendor_parties: tuple[VendorParty, ...]  # a plain-SDP SRC's parties (CUBE)
    global_call_id: str | None  # the metadata's session id, or the vendor's call id
    streams: tuple[AnsweredStream, ...]
    started_at: datetime  # wall-clock time the INVITE was accepted (UTC)

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    @property
    def paused(self) -> bool:
        """Every answered stream is paused (the SRC's pause, or all parties on hold)."""
        return bool(self.streams) and all(s.paused for s in self.streams)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(s.port for s in self.streams)


@dataclass(frozen=True)
class SessionChange:
    """What a re-INVITE or UPDATE changed; ``previous`` is the session before it."""

    previous: RecordingSession
    streams: bool = False  # a stream added, removed, moved to another port/source or codec
    paused: frozenset[int] = frozenset()  # m-line indexes paused by this change
    resumed: frozenset[int] = frozenset()  # m-line indexes resumed by it
    metadata: bool = False  # the metadata changed

    def __bool__(self) -> bool:
        return self.streams or bool(self.paused) or bool(self.resumed) or self.metadata


class SessionListener(Protocol):
    """The recorder's side of the SIP layer; called from the SIP thread (module docstring)."""

    def session_started(self, session: RecordingSession) -> None:
        """A new session is about to be answered 200; raise CapacityExceeded to refuse it."""

    def session_updated(self, session: RecordingSession, change: SessionChange) -> None:
        """A re-INVITE or UPDATE changed the session (``change`` says what)."""

    def session_ended(self, session: RecordingSession, reason: EndReason) -> None:
        """The session is over; its ports are free again once this returns."""


def compare(previous: RecordingSession, current: RecordingSession) -> SessionChange:
    """What changed from ``previous`` to ``current``."""
    before = {s.index: s for s in previous.streams}
    after = {s.index: s for s in current.streams}
    moved = before.keys() != after.keys() or any(
        (b.port, b.remote, b.codec, b.crypto) != (a.port, a.remote, a.codec, a.crypto)
        for i, a in after.items() if (b := before.get(i)) is not None)
    paused = frozenset(i for i, a in after.items()
                       if a.paused and not (i in before and before[i].paused))
    resumed = frozenset(i for i, a in after.items()
                        if not a.paused and i in before and before[i].paused)
    return SessionChange(previous, moved, paused, resumed,
                         previous.metadata != current.metadata)
