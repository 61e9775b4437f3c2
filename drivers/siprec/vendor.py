"""Parties and call ids of recording INVITEs that carry no RFC 7865 metadata (vendor headers).

Cisco CUBE's network-based recording (and CUCM's built-in bridge) sends plain SDP with one
m-line per party and names the parties in ``X-Cisco-Recording-Participant`` headers, one per
party: ``sip:708090@10.42.30.5;media-index="0"`` (video calls list two indexes,
``media-index="0 2"``); the index is the m-line the party sends. The call's correlation id
comes from the PBX: ``Cisco-Guid`` (four decimal or one hex GUID) from Cisco, the UCID from
Avaya (in ``User-to-User`` as hex after ``00FA08``, 20 decimal digits: node, sequence,
seconds; or ``X-UCID``), ``X-Genesys-CallUUID`` from Genesys. ``global_call_id`` prefers them in
that order.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from recorder.drivers.siprec.sipheaders import Headers, NameAddr, SipUri

logger = logging.getLogger(__name__)

CISCO_PARTICIPANT = "X-Cisco-Recording-Participant"
_UCID_UUI = re.compile(r"^(?:04)?00FA08([0-9A-F]{16})", re.IGNORECASE)


@dataclass(frozen=True)
class VendorParty:
    """A party of a plain-SDP recording session, and the m-lines (by index) it sends."""

    aor: str
    user: str | None
    display: str
    media_indexes: tuple[int, ...]


def cisco_participants(headers: Headers) -> list[VendorParty]:
    """The parties CUBE names, in header order; a value that cannot be read is skipped."""
    parties: list[VendorParty] = []
    for value in headers.values(CISCO_PARTICIPANT):
        try:
            address = NameAddr.parse(value)
            user = SipUri.parse(address.uri).user or None
        except ValueError:
            logger.debug("unreadable %s value %r", CISCO_PARTICIPANT, value[:80])
            continue
        raw = address.params.get("media-index") or ""
        indexes = tuple(int(i) for i in raw.split() if i.isdigit() and len(i) < 4)
        parties.append(VendorParty(address.uri, user, address.display, indexes))
    return parties


def party_for_media(parties: list[VendorParty], index: int) -> VendorParty | None:
    """The party sending m-line ``index``; by position when no party gives indexes."""
    found = next((p for p in parties if index in p.media_indexes), None)
    if found is None and not any(p.media_indexes for p in parties) and index < len(parties):
        return parties[index]
    return found


@dataclass(frozen=True)
class VendorCallId:
    kind: str  # "cisco-guid", "avaya-ucid", "genesys"
    value: str


def avaya_ucid(user_to_user: str) -> str | None:
    """The 20-digit UCID in an Avaya ``User-to-User`` value, or None."""
    data = user_to_user.split(";", 1)[0].strip()
    match = _UCID_UUI.match(data)
    if match is None:
        return None
    raw = bytes.fromhex(match.group(1))
    node = int.from_bytes(raw[0:2], "big")
    sequence = int.from_bytes(raw[2:4], "big")
    seconds = int.from_bytes(raw[4:8], "big")
    return f"{node:05d}{sequence:05d}{seconds:010d}"


def global_call_id(headers: Headers) -> VendorCallId | None:
    """The PBX's correlation id for the call, from the first vendor header that has one."""
    guid = (headers.get("cisco-guid") or "").strip()
    if re.fullmatch(r"\d{1,10}(-\d{1,10}){3}|[0-9A-Fa-f-]{16,40}", guid):
        return VendorCallId("cisco-guid", guid)
    for value in headers.get_all("user-to-user"):
        ucid = avaya_ucid(value)
        if ucid is not None:
            return VendorCallId("avaya-ucid", ucid)
    for name in ("x-ucid", "x-avaya-ucid"):
        value = (headers.get(name) or "").strip()
        if re.fullmatch(r"\d{20}", value):
            return VendorCallId("avaya-ucid", value)
    value = (headers.get("x-genesys-calluuid") or "").strip()
    if re.fullmatch(r"[A-Za-z0-9-]{8,64}", value):
        return VendorCallId("genesys", value)
    return None
