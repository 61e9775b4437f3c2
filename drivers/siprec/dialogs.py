"""Dialogs (RFC 3261 §12) as the UAS holds them: state from the INVITE, CSeq order, and the
requests we send inside one (BYE, and UPDATE when the SRC made us the session refresher).

A dialog is found by Call-ID, our tag (the To tag of the SRC's requests) and the SRC's tag
(their From tag). What we send in it goes the way the SRC's last request came (``flow``):
back over its TCP/TLS connection, or over UDP to the address it sent from. An SRC behind NAT
or a firewall is reachable there when its Contact may not be (RFC 5626's flow reuse, in
spirit); the Request-URI is still its Contact, the remote target, as §12.2.1.1 asks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from recorder.drivers.siprec.events import DialogId
from recorder.drivers.siprec.flows import Flow
from recorder.drivers.siprec.sipheaders import Headers, NameAddr, SipUri
from recorder.drivers.siprec.sipmessage import SipRequest, new_tag
from recorder.drivers.siprec.transactions import MAGIC_COOKIE

logger = logging.getLogger(__name__)

MAX_FORWARDS = "70"


def dialog_key(request: SipRequest) -> DialogId:
    """The dialog a request inside one names: Call-ID, To tag (ours), From tag (the SRC's)."""
    return DialogId(request.call_id, request.to.tag or "", request.from_.tag or "")


def contact_uri(request: SipRequest) -> str | None:
    """The URI of the request's first Contact, or None (absent, ``*`` or unreadable)."""
    values = request.headers.values("contact")
    if not values:
        return None
    try:
        uri = NameAddr.parse(values[0]).uri
    except ValueError:
        return None
    return None if uri == "*" else uri


@dataclass
class Dialog:
    """One dialog with an SRC, as the UAS that answered its INVITE."""

    id: DialogId
    local: str  # our From in requests we send: the INVITE's To, with our tag
    remote: str  # their To in requests we send: the INVITE's From (with their tag)
    remote_target: str  # the SRC's Contact URI (refreshed by re-INVITE and UPDATE)
    route_set: list[str] = field(default_factory=list)  # Record-Route, in order (§12.1.1)
    remote_cseq: int = 0
    local_cseq: int = 1
    flow: Flow = Flow("UDP", ("", 0))

    @classmethod
    def from_invite(cls, request: SipRequest, local_tag: str, flow: Flow) -> Dialog:
        to = request.to
        local = NameAddr(to.display, to.uri, {**to.params, "tag": local_tag}).to_string()
        target = contact_uri(request) or request.from_.uri
        return cls(
            id=DialogId(request.call_id, local_tag, request.from_.tag or ""),
            local=local, remote=request.headers.get("from") or "", remote_target=target,
            route_set=request.headers.values("record-route"),
            remote_cseq=request.cseq.number, flow=flow)

    def in_order(self, request: SipRequest) -> bool:
        """§12.2.2: a request with a lower CSeq than the last is out of order (answer 500);
        otherwise its CSeq becomes the last one. ACK and CANCEL carry their INVITE's."""
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return True
        if number < self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def refresh_target(self, request: SipRequest) -> None:
        """An accepted target refresh request (re-INVITE, UPDATE) moves the remote target to
        its Contact (§12.2.2)."""
        uri = contact_uri(request)
        if uri is not None and request.method in ("INVITE", "UPDATE"):
            self.remote_target = uri

    def request(self, method: str, sent_by: str, headers: list[tuple[str, str]] | None = None
                ) -> SipRequest:
        """A new request inside the dialog (§12.2.1.1), with the next local CSeq."""
        self.local_cseq += 1
        uri, routes = self.remote_target, list(self.route_set)
        if routes and not _loose(routes[0]):
            # A strict router: it takes the Request-URI, the target goes last in Route.
            uri = NameAddr.parse(routes[0]).uri
            routes = [*routes[1:], f"<{self.remote_target}>"]
        out = Headers()
        out.add("Via", f"SIP/2.0/{self.flow.transport} {sent_by};branch={MAGIC_COOKIE}"
                       f"{new_tag()};rport")
        out.add("Max-Forwards", MAX_FORWARDS)
        for route in routes:
            out.add("Route", route)
        out.add("From", self.local)
        out.add("To", self.remote)
        out.add("Call-ID", self.id.call_id)
        out.add("CSeq", f"{self.local_cseq} {method}")
        for name, value in headers or []:
            out.add(name, value)
        return SipRequest(method, uri, out)


def _loose(route: str) -> bool:
    try:
        return "lr" in SipUri.parse(NameAddr.parse(route).uri).params
    except ValueError:
        return True  # unreadable: send it on as a loose route, the usual kind
