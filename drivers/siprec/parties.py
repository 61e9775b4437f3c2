"""Who a recording session records: the device (DEVICEID), the call's parties, and which of the
session's streams go to which of its two channels. Pure: a ``RecordingSession`` in, plain
values out.

- The parties are the metadata's participants in document order (RFC 7865), else the
  vendor's (``X-Cisco-Recording-Participant``, in header order). RFC 7865 does not say who
  called whom: the first party is taken as the caller (ANI), the second as the called party
  (DNIS), as the SRCs we know list them. Without either, ANI and DNIS are the users of the
  SRC's From and To.
- The DEVICEID is the user part of the first party's AOR that is in ``devices``; with
  ``devices`` empty, the first party that sends a stream. A session none of whose parties is
  in ``devices`` is not for this board (``device`` None): answered, never recorded.
- CALLDIRECTION follows from the device's place: the caller's side is an outbound call
  (``O``), the called party's inbound (``I``); ``?`` when the device was not chosen from
  ``devices``.
- The device's streams go to the first channel (the left of a stereo file), every other
  party's to the second. A stream several participants send (a mix, in a three-stream offer)
  is left out while the parties' own streams are there; without any sender known, the
  streams go by m-line order: the first to the first channel, the second to the second.
"""

from __future__ import annotations

from dataclasses import dataclass

from recorder.drivers.siprec.events import AnsweredStream, RecordingSession
from recorder.drivers.siprec.sipheaders import NameAddr, SipUri

MAX_FIELD = 64  # ANI, DNIS and DEVICEID are kept to this many characters


@dataclass(frozen=True)
class CallParties:
    """What the recorder needs of a session's parties."""

    device: str | None  # DEVICEID; None: no party of the session is this board's to record
    device_aor: str | None  # the device's party (None when it is not a party we know)
    ani: str
    dnis: str
    direction: str  # "I", "O" or "?"
    first: tuple[int, ...]  # m-line indexes recorded on the device's channel
    second: tuple[int, ...]  # m-line indexes of the other parties' channel


def aor_user(aor: str | None) -> str:
    """The user part of a sip:, sips: or tel: AOR ("" when it has none or cannot be read)."""
    if not aor:
        return ""
    try:
        uri = SipUri.parse(aor)
    except ValueError:
        return ""
    return uri.user[:MAX_FIELD]


def _user_of(header: NameAddr) -> str:
    try:
        return header.sip_uri.user[:MAX_FIELD]
    except ValueError:
        return ""


def party_aors(session: RecordingSession) -> list[str]:
    """The parties' AORs in the SRC's order: metadata participants, else vendor headers."""
    aors: list[str] = []
    if session.metadata is not None:
        aors = [p.aor for p in session.metadata.participants.values() if p.aor]
    if not aors:
        aors = [p.aor for p in session.vendor_parties]
    return aors


def _is_mix(session: RecordingSession, stream: AnsweredStream) -> bool:
    metadata = session.metadata
    if metadata is None or stream.label is None:
        return False
    found = metadata.stream_for_label(stream.label)
    return found is not None and len(metadata.senders(found.stream_id)) > 1


def call_parties(session: RecordingSession, devices: tuple[str, ...]) -> CallParties:
    """The device, parties and channel plan of ``session`` (module docstring)."""
    aors = party_aors(session)
    users = [aor_user(a) for a in aors]
    streams = session.streams
    sending = {s.participant for s in streams if s.participant}
    device_aor: str | None = None
    device: str | None = None
    direction = "?"
    if devices:
        wanted = set(devices)
        index = next((i for i, u in enumerate(users) if u and u in wanted), None)
        if index is None:
            return CallParties(None, None, *_numbers(session, users), "?", (), ())
        device_aor, device = aors[index], users[index]
        direction = "O" if index == 0 else "I" if index == 1 else "?"
    else:
        index = next((i for i, a in enumerate(aors) if a in sending and users[i]), None)
        if index is not None:
            device_aor, device = aors[index], users[index]
        else:
            device = (users[0] if users and users[0] else _user_of(session.to)
                      or session.to.uri[:MAX_FIELD])
    ani, dnis = _numbers(session, users)
    first, second = channel_plan(session, device_aor)
    return CallParties(device, device_aor, ani, dnis, direction, first, second)


def _numbers(session: RecordingSession, users: list[str]) -> tuple[str, str]:
    if users:
        return users[0], users[1] if len(users) > 1 else ""
    return _user_of(session.from_), _user_of(session.to)


def channel_plan(session: RecordingSession,
                 device_aor: str | None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The m-line indexes of the device's channel and of the other parties' (module doc)."""
    streams = session.streams
    known = [s for s in streams if s.participant and not _is_mix(session, s)]
    if not known:
        ordered = [s.index for s in streams]
        return tuple(ordered[:1]), tuple(ordered[1:2])
    first = [s.index for s in known if s.participant == device_aor]
    second = [s.index for s in known if s.participant != device_aor]
    if device_aor is None and not first:
        first, second = second[:1], second[1:]
    leftover = [s.index for s in streams if s not in known]
    # A mix or an unattributed stream fills a side no party's own stream does.
    if not first and leftover:
        first = [leftover.pop(0)]
    if not second and leftover:
        second = [leftover.pop(0)]
    return tuple(first), tuple(second)
