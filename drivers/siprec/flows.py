"""How a SIP message travels: the ``Flow`` it came on (and our answers and requests go back
on), and the ``Sender`` the transport gives the layers above it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from recorder.drivers.siprec.sipmessage import SipMessage


@dataclass(frozen=True)
class Flow:
    """Where a message came from and how: the way back for its responses and our requests."""

    transport: str  # "UDP", "TCP" or "TLS"
    remote: tuple[str, int]
    connection: int = 0  # the transport's id of a TCP/TLS connection; 0 for UDP

    @property
    def reliable(self) -> bool:
        return self.transport != "UDP"


class Sender(Protocol):
    def __call__(self, message: SipMessage, flow: Flow) -> None: ...
