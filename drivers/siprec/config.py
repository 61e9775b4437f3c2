"""The settings of a ``driver = "siprec"`` board (issue 22's contract), and their checks.

Every key is the issue's, with its default. ``checked`` adds what no single key's type or range
can say, each problem naming its key: the hosts are IP addresses (SDP answers carry them), the
RTP range starts on an even port and holds at least one RTP/RTCP pair, neither SIP port lies in
it, ``allow`` is a list of networks, and SIP over TLS has its certificate and key.

The certificate's files are opened when the SIP server starts (a StartupError naming
``tls_cert``): a board's check has no config directory to resolve a relative path against.

The board's channels are not its devices: it has two per session (``channels``, one per party
of the call), bound to each session's device while it lasts. ``devices`` only filters which
calls it records (``[]``: any participant); the loader checks them as DEVICEIDs that no other
board taps. Its channels start and stop recording with their sessions, so ``trigger`` stays
``api`` (CTI may still act on the calls).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from recorder.config.boards import BoardCommon
from recorder.config.setting import setting
from recorder.drivers.siprec.ports import port_pairs

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")


@dataclass(frozen=True, kw_only=True)
class SiprecBoardConfig(BoardCommon):
    """A SIPREC recording server (RFC 7866): SRCs send it calls over SIP, their audio over RTP."""

    devices_are_channels: ClassVar[bool] = False

    driver: str = setting("siprec", "board driver")
    sip_host: str = setting("127.0.0.1", "address SIP listens on (UDP and TCP, same port)")
    sip_port: int = setting(5060, "SIP port, UDP and TCP; 0 picks a free port", min=0,
                            max=65535)
    rtp_host: str = setting("", "address RTP sockets bind and the SDP answer offers; empty: "
                            "sip_host")
    rtp_port_min: int = setting(20000, "lowest RTP port (even; each stream takes an even port "
                                "and the odd one above it for RTCP)", min=1024, max=65534)
    rtp_port_max: int = setting(29999, "highest RTP/RTCP port; two streams per two-party "
                                "call", min=1025, max=65535)
    devices: tuple[str, ...] = setting((), "extensions this board records; empty: any "
                                       "participant")
    allow: tuple[str, ...] = setting(
        ("127.0.0.1/32",), "networks (CIDR) of the SRCs that may send SIP and RTP; anything "
        "else is ignored")
    max_sessions: int = setting(500, "recording sessions at once; beyond it new INVITEs get "
                                "503 with Retry-After, so the SRC can fail over", min=1,
                                max=100000)
    media_timeout_seconds: float = setting(
        30.0, "no RTP on any unpaused stream this long ends the recording", min=1.0,
        max=86400.0)
    playout_delay_seconds: float = setting(
        0.1, "how long a stream's audio waits for late and reordered packets before it is "
        "written (the jitter buffer's depth): more on a jittery network, or a machine whose "
        "media thread may be kept from running that long; a packet later than this is "
        "reported lost", min=0.02, max=5.0)
    sample_rate: int = setting(8000, "stored sample rate; G.722 (16 kHz) and Opus (48 kHz) "
                               "are resampled to it", min=8000, max=48000)
    tls_port: int = setting(0, "SIP over TLS port (with tls_cert and tls_key); 0: no TLS",
                            min=0, max=65535)
    tls_cert: str = setting("", "PEM certificate (with its chain) for SIP over TLS")
    tls_key: str = setting("", "PEM private key of tls_cert (unencrypted)")

    def checked(self, where: str, problems: list[str]) -> SiprecBoardConfig:
        before = len(problems)
        if self.trigger != "api" or self.triggers:
            key = "trigger" if self.trigger != "api" else "triggers"
            problems.append(f"{where}.{key}: a siprec board's calls start and end with their "
                            "SIPREC sessions; leave trigger at api")
            before = len(problems)
        _check_hosts(self, where, problems)
        _check_ports(self, where, problems)
        _check_tls(self, where, problems)
        for i, entry in enumerate(self.allow):
            problem = network_problem(entry)
            if problem is not None:
                problems.append(f"{where}.allow[{i}]: {problem}")
        if not self.allow and len(problems) == before:
            problems.append(f"{where}.allow: empty, so no SRC could reach the recorder")
        return self

    def host_warnings(self, where: str) -> list[str]:
        warning = ephemeral_overlap(where, self.rtp_port_min, self.rtp_port_max,
                                    ephemeral_range())
        return [warning] if warning else []

    def listen_ports(self, where: str) -> list[tuple[str, str, int, bool]]:
        ports = [(f"{where}.sip_port", self.sip_host, self.sip_port, True),
                 (f"{where}.sip_port", self.sip_host, self.sip_port, False)]
        if self.tls_cert and self.tls_port:
            ports.append((f"{where}.tls_port", self.sip_host, self.tls_port, False))
        return ports

    @property
    def channels(self) -> int:
        """Two channels per session: the recorded device's party and the other one."""
        return 2 * self.max_sessions

    @property
    def rtp_address(self) -> str:
        """The address RTP binds and answers offer."""
        return self.rtp_host or self.sip_host

    @property
    def advertised_host(self) -> str:
        """The address SRCs reach us at (Contact, Via): sip_host unless that is a wildcard."""
        return self.rtp_address if _is_wildcard(self.sip_host) else self.sip_host

    def networks(self) -> list[IpNetwork]:
        """``allow`` as networks (after ``checked`` passed)."""
        return [ipaddress.ip_network(entry.strip()) for entry in self.allow]


def ephemeral_range(path: Path = EPHEMERAL_PORTS) -> tuple[int, int] | None:
    """The kernel's ephemeral ports (net.ipv4.ip_local_port_range), None where unknown."""
    try:
        low, high = (int(field) for field in path.read_text().split())
    except (OSError, ValueError):
        return None
    return low, high


def ephemeral_overlap(where: str, low: int, high: int,
                      ephemeral: tuple[int, int] | None) -> str | None:
    """The warning for an RTP range ``low..high`` that overlaps the ephemeral ports, or None.

    Not an error: the allocator skips a port another program holds. But every client socket
    on the host (DNS lookups, database and HTTP clients) takes a random ephemeral port, so
    sessions may find ports of the range taken and, on a busy host, the range short.
    """
    if ephemeral is None or high < ephemeral[0] or low > ephemeral[1]:
        return None
    return (f"{where}.rtp_port_min..rtp_port_max: {low}-{high} overlaps the kernel's ephemeral "
            f"ports {ephemeral[0]}-{ephemeral[1]} (net.ipv4.ip_local_port_range): client "
            "sockets of other programs may hold ports of the range, which the recorder then "
            "skips; move the range below it, or reserve it with "
            "net.ipv4.ip_local_reserved_ports")


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _check_hosts(board: SiprecBoardConfig, where: str, problems: list[str]) -> None:
    for key in ("sip_host", "rtp_host"):
        value: str = getattr(board, key)
        if key == "rtp_host" and not value:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            problems.append(f"{where}.{key}: {value!r} is not an IP address")
            continue
        if key == "rtp_host" and address.is_unspecified:
            problems.append(f"{where}.rtp_host: {value} cannot be offered in an SDP answer "
                            "(it means hold); give this host's address")
    if _is_wildcard(board.sip_host) and not board.rtp_host:
        problems.append(f"{where}.rtp_host: required when sip_host is {board.sip_host} (the "
                        "SDP answer needs an address SRCs can send to)")


def _check_ports(board: SiprecBoardConfig, where: str, problems: list[str]) -> None:
    low, high = board.rtp_port_min, board.rtp_port_max
    if low % 2:
        problems.append(f"{where}.rtp_port_min: {low} is odd; RTP takes even ports and the odd "
                        "one above for RTCP (RFC 3550 §11)")
    if high <= low:
        problems.append(f"{where}.rtp_port_max: {high} is not above rtp_port_min ({low})")
    elif not port_pairs(low, high):
        problems.append(f"{where}.rtp_port_max: {low}-{high} holds no even RTP port with its "
                        "RTCP port")
    for key in ("sip_port", "tls_port"):
        port: int = getattr(board, key)
        if port and low <= port <= high:
            problems.append(f"{where}.{key}: {port} is inside the RTP range {low}-{high}")
    if board.tls_port and board.tls_port == board.sip_port:
        problems.append(f"{where}.tls_port: {board.tls_port} is also sip_port (TCP cannot "
                        "serve SIP and SIP over TLS on one port)")


def _check_tls(board: SiprecBoardConfig, where: str, problems: list[str]) -> None:
    if board.tls_port:
        for key in ("tls_cert", "tls_key"):
            if not getattr(board, key).strip():
                problems.append(f"{where}.{key}: required with tls_port ({board.tls_port})")
    else:
        for key in ("tls_cert", "tls_key"):
            if getattr(board, key).strip():
                problems.append(f"{where}.{key}: set, but tls_port is 0, so SIP over TLS is "
                                "off; give tls_port")


def network_problem(entry: str) -> str | None:
    """Why ``entry`` is not a network in CIDR form (an address alone is one host), or None."""
    try:
        ipaddress.ip_network(entry.strip())
    except ValueError:
        try:
            loose = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            return f"{entry!r} is not a network (CIDR, e.g. 10.0.0.0/24, or an address)"
        return f"{entry!r} has host bits set; did you mean {loose}?"
    return None
