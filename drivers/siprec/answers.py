"""What the recording server's responses say about it, and the checks every request passes
first (RFC 3261 §8.2): the capabilities (Allow, Accept, Supported), our Contact, the 200 to
an INVITE or UPDATE, and refusals that say why in a Warning header.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection

from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.multipart import ACCEPT
from recorder.drivers.siprec.sessiontimer import TimerAnswer
from recorder.drivers.siprec.sipmessage import SipRequest, SipResponse
from recorder.drivers.siprec.transactions import ServerTransaction

logger = logging.getLogger(__name__)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK"
SUPPORTED = ("siprec", "timer", "100rel")
ACCEPT_ALL = f"{ACCEPT}, application/rs-metadata"
# Methods of other extensions: 405 names what we do serve; anything else is 501 (§8.2.1).
KNOWN_METHODS = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
RETRY_AFTER_SECONDS = 30  # how long an SRC should leave us alone after a 503

Header = tuple[str, str]


def warning(host: str, text: str) -> Header:
    """A Warning header (§20.43, code 399) saying why, for whoever reads the SRC's logs."""
    clean = re.sub(r'[\x00-\x1f"\\]', " ", text)[:160]
    return ("Warning", f'399 {host} "{clean}"')


def capabilities() -> list[Header]:
    return [("Allow", ALLOW), ("Accept", ACCEPT_ALL), ("Accept-Encoding", "identity"),
            ("Supported", ", ".join(SUPPORTED))]


def precheck(request: SipRequest, methods: Collection[str]) -> tuple[int, list[Header]] | None:
    """The checks of §8.2 before any handler: (status, headers) of a refusal, or None."""
    if not request.uri.lower().startswith(("sip:", "sips:")):
        return 416, []
    if request.method not in methods:
        return (405 if request.method in KNOWN_METHODS else 501), [("Allow", ALLOW)]
    unknown = [tag for tag in request.headers.values("require")
               if tag.lower() not in SUPPORTED]
    if unknown:
        return 420, [("Unsupported", ", ".join(unknown))]
    return None


class Answers:
    """Our side of responses and requests: the host SRCs reach and our port per transport."""

    def __init__(self, host: str, sip_ports: dict[str, int]) -> None:
        self.host = host
        self.sip_ports = sip_ports

    def sent_by(self, transport: str) -> str:
        """host:port for a Via of ours."""
        port = self.sip_ports.get(transport, 0)
        return f"[{self.host}]:{port}" if ":" in self.host else f"{self.host}:{port}"

    def contact(self, request_uri: str, transport: str) -> str:
        # RFC 7866 §6.1.1: the SRS marks its Contact with +sip.srs. A sips dialog keeps a
        # sips Contact (§12.1.1).
        scheme = "sips" if request_uri.lower().startswith("sips:") else "sip"
        param = "" if transport == "UDP" or scheme == "sips" else (
            f";transport={transport.lower()}")
        return f"<{scheme}:recorder@{self.sent_by(transport)}{param}>;+sip.srs"

    def ok(self, transaction: ServerTransaction, timer: TimerAnswer, body: bytes
           ) -> SipResponse:
        """The 200 to an INVITE or UPDATE: Contact, capabilities, timers, our SDP if any."""
        headers = [("Contact", self.contact(transaction.request.uri, transaction.flow.transport)),
                   *capabilities(), *timer.headers]
        return transaction.response(200, headers=headers, body=body,
                                    content_type="application/sdp" if body else None)

    def refuse(self, transaction: ServerTransaction, error: ProtocolError,
               retry_after: int = RETRY_AFTER_SECONDS) -> None:
        """Answer with the error's status, what the status calls for, and why."""
        status = error.status or 400
        headers: list[Header] = []
        if status == 415:
            headers += [("Accept", ACCEPT_ALL), ("Accept-Encoding", "identity")]
        if status == 503:
            headers.append(("Retry-After", str(retry_after)))
        headers.append(warning(self.host, error.reason))
        logger.info("%s %s refused with %d: %s", transaction.method,
                    transaction.request.call_id, status, error.reason)
        transaction.respond(transaction.response(status, headers=headers))
