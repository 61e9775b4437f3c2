"""A recording session as the media thread keeps it: its slot of two board channels, its
streams, the line events it still has to give, and what those events carry.

Slot ``n`` of a board is its channels ``2n`` (the recorded device's party) and ``2n + 1``
(the other parties). A session none of whose parties is the board's has no slot: its streams
are read and discarded.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass, field

from recorder.drivers.lineevents import LineEvent
from recorder.drivers.siprec.events import AnsweredStream, RecordingSession
from recorder.drivers.siprec.mediastream import StreamMedia
from recorder.drivers.siprec.parties import CallParties

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class SessionMedia:
    """One session on the media thread: its slot, its streams, its line events to come."""

    key: str
    call_id: str
    slot: int | None  # None: not recorded here (no party is the board's)
    parties: CallParties
    data: dict[str, str]  # the SESSION_FIELDS of its line events
    streams: dict[int, StreamMedia] = field(default_factory=dict)  # by m-line index
    retired: list[StreamMedia] = field(default_factory=list)  # removed: draining their audio
    paused: bool = False
    events: list[tuple[int, LineEvent]] = field(default_factory=list)  # (due position, event)
    end: int | None = None  # ended: the position its last audio ends at
    timing_out: bool = False

    def all_streams(self) -> list[StreamMedia]:
        return [*self.streams.values(), *self.retired]


def event_data(key: str, slot: int | None, session: RecordingSession,
               parties: CallParties) -> dict[str, str]:
    """The SESSION_FIELDS (drivers/lineevents.py) of a session's line events."""
    return {"SESSION": key, "CHANNEL2": str(2 * slot + 1) if slot is not None else "",
            "DEVICEID": parties.device or "", "ANI": parties.ani, "DNIS": parties.dnis,
            "CALLDIRECTION": parties.direction, "CALLID": session.call_id[:128],
            "GLOBALCALLID": (session.global_call_id or "")[:64]}


def log_counts(key: str, media: SessionMedia, stream: StreamMedia) -> None:
    """One line per stream at a session's end: what came, what was lost and dropped."""
    counts, jitter = stream.counts, stream.jitter.stats
    source = f"{stream.source[0]}:{stream.source[1]}" if stream.source else "nobody"
    # Samples lost as well as packets: a packet that comes after part of its time was
    # written loses that part, which no packet count shows.
    logger.info("%s: session %s, stream %s on port %d from %s: %d packets, %d lost, %d late, "
                "%d samples of audio lost, %d duplicates, %d from elsewhere dropped, "
                "%d SRTP refused, %d malformed, %d of another payload type, "
                "%d telephone-events, %d RTCP, %d clock drift moves (+%d/-%d frames), "
                "%d dropped unread (the media thread behind)",
                key, media.call_id, stream.stream.label or stream.stream.index, stream.port,
                source, counts.packets, jitter.lost_packets, jitter.late, jitter.lost_samples,
                jitter.duplicates, counts.wrong_source, counts.srtp_dropped, counts.malformed,
                jitter.unknown_pt, jitter.events, counts.rtcp, counts.drift_moves,
                counts.drift_inserted, counts.drift_dropped, counts.unread)


def same_media(old: AnsweredStream, new: AnsweredStream) -> bool:
    """A re-offer that leaves a stream's socket and buffer as they are."""
    return (old.port, old.remote, old.codec, old.crypto) == (new.port, new.remote, new.codec,
                                                             new.crypto)


def ip_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``host`` as an address (an IPv4-mapped IPv6 one as IPv4); ValueError if it is none."""
    address = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
