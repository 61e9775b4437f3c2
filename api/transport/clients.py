"""Who may stay connected (code 48): the places of the clients in all and per client address,
with places kept for the CTI links of ``api.cti_addresses``, who are also never closed for
being idle. One ClientLimit counts the socket connections and WebAPI event streams
(``api.max_clients``), another the WebAPI's HTTP connections (``api.max_http_connections``).
docs/api-notes.md, "Limits", lists every limit."""

from __future__ import annotations

import ipaddress
import logging

from recorder.api.transport.loadlimits import RefusalLog
from recorder.rules.addresses import Networks
from recorder.telemetry.prometheus import Gauge

logger = logging.getLogger(__name__)

def client_address(peer: object) -> str:
    """The address of a connection's peer (``getpeername()``), an IPv4 client reached over an
    IPv6 socket written as IPv4; "" when there is none (a Unix socket)."""
    if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
        host = peer[0]
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return host
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(address)
    return ""


# The CTI links' addresses: the same list as every other allow-list (api.allow, portal.allow).
CtiNetworks = Networks


class ClientLimit:
    """How many clients may be connected at once: ``limit`` in all, ``per_address`` from one
    address (0: no such limit), ``reserved`` of the places only for CTI addresses.

    A CTI address is held to ``limit`` alone: neither to ``per_address`` nor kept out of the
    reserved places. Every other client may take a place while the others leave free the
    reserved places the CTI links are not using. Used on the event loop only, so plain counts
    suffice.
    """

    def __init__(self, limit: int, gauge: Gauge | None = None, *, per_address: int = 0,
                 cti: CtiNetworks | None = None, reserved: int = 0,
                 what: str = "clients") -> None:
        self.limit = limit
        self.per_address = per_address
        self.cti = cti or CtiNetworks()
        self.reserved = min(reserved, limit) if self.cti else 0
        self.what = what
        self.count = 0
        self.cti_count = 0
        self._by_address: dict[str, int] = {}
        self._gauge = gauge or Gauge("recorder_api_clients", "")
        self._refusals = RefusalLog(f"API limit of {what} reached (%d); %d answered 48")
        self._address_refusals = RefusalLog(f"API limit of {what} per address reached (%d); "
                                            "%d answered 48")

    def is_cti(self, address: str) -> bool:
        return address in self.cti

    def acquire(self, address: str = "") -> bool:
        """Take a place for a client from ``address``; False (and nothing taken) when its
        places are all taken (``refusal`` then says why)."""
        if self.is_cti(address):
            if self.count >= self.limit:
                self._refusals.note(self.limit)
                return False
            self.cti_count += 1
        else:
            others = self.count - self.cti_count
            if others + max(self.cti_count, self.reserved) >= self.limit:
                self._refusals.note(self.limit)
                return False
            if self.per_address and self._by_address.get(address, 0) >= self.per_address:
                self._address_refusals.note(self.per_address)
                return False
        self.count += 1
        self._by_address[address] = self._by_address.get(address, 0) + 1
        self._gauge.set(self.count)
        return True

    def release(self, address: str = "") -> None:
        """Give back the place ``acquire(address)`` took."""
        self.count -= 1
        if self.is_cti(address):
            self.cti_count -= 1
        left = self._by_address.get(address, 1) - 1
        if left > 0:
            self._by_address[address] = left
        else:
            self._by_address.pop(address, None)
        self._gauge.set(self.count)

    def refusal(self, address: str = "") -> str:
        """Why a client from ``address`` finds no place now (the RESULTMSG of its 48)."""
        held = self._by_address.get(address, 0)
        if (not self.is_cti(address) and self.per_address and held >= self.per_address):
            return (f"the recorder already serves {held} {self.what} from {address or 'you'}; "
                    "close one or try again later")
        if self.count >= self.limit:
            return f"the recorder already serves {self.limit} {self.what}; try again later"
        return (f"the recorder already serves {self.count} {self.what}, the rest of its places "
                "kept for its CTI links; try again later")
