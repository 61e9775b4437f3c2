"""Which client addresses a listener serves: a list of addresses and networks (CIDR, IPv4 and
IPv6), as ``api.allow``, ``api.cti_addresses`` and ``portal.allow`` give them. One class for
all three, so an address is matched the same way wherever it is checked. Pure: no sockets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = ("127.0.0.1/32", "::1/128")
EVERYONE = ("0.0.0.0/0", "::/0")


def network_problem(text: str) -> str | None:
    """Why ``text`` is not an address or a network, or None if it is one (for the config)."""
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return (f"{text!r} is not an IP address or a network (CIDR, e.g. 10.1.2.0/28 or "
                "fd00::/64)")
    return None


class Networks:
    """Addresses and networks; ``address in networks`` for a client's address as text.

    An IPv4 client reached over an IPv6 socket (``::ffff:10.1.2.3``) is matched as its IPv4
    address. Anything that is not an address (a Unix socket's "") is in no list.
    """

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self._networks: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(a.strip(), strict=False) for a in addresses)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def __or__(self, other: Networks) -> Networks:
        joined = Networks()
        joined._networks = self._networks + other._networks
        return joined

    def __contains__(self, address: object) -> bool:
        if not self._networks or not isinstance(address, str) or not address:
            return False
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in self._networks)


def is_loopback(address: str) -> bool:
    """Whether a client's address is this machine's own (127.0.0.0/8, ::1)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback
