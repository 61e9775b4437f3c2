"""RTP ports for answered streams: even ports of ``[rtp_port_min, rtp_port_max]``, each with the
odd port above it for RTCP (RFC 3550 §11), handed out and taken back.

Ports are reused in the order they were freed, least recently used first: RTP still in flight
for a call that just ended then reaches a port nobody holds rather than the next call's.

Another program may hold a port of the range (a client socket of any program gets an
ephemeral port, and the range may overlap the kernel's ephemeral ports): before a pair is
handed out it is tried (``probe``: bound and closed at once), and a pair another socket holds
is skipped for the next one, with one warning naming it, and tried again on a later turn. Only
a range with no pair left that can be bound raises ``PortsExhausted``, which the UAS answers
503.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable

from recorder.drivers.siprec.errors import ProtocolError

logger = logging.getLogger(__name__)

Probe = Callable[[int], None]  # raises OSError when the pair at the port cannot be bound


class PortsExhausted(ProtocolError):
    """Every RTP port pair of the range is in use, by us or by other programs."""

    default_status = 503


def port_pairs(low: int, high: int) -> list[int]:
    """The even RTP ports p with p and p + 1 both in ``[low, high]``."""
    first = low + (low % 2)
    return list(range(first, high, 2))


def bind_probe(address: str) -> Probe:
    """A probe that binds the RTP port and its RTCP port on ``address`` and lets them go."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    def probe(port: int) -> None:
        with socket.socket(family, socket.SOCK_DGRAM) as rtp, \
                socket.socket(family, socket.SOCK_DGRAM) as rtcp:
            rtp.bind((address, port))
            rtcp.bind((address, port + 1))

    return probe


def _no_probe(port: int) -> None:
    return None


class PortAllocator:
    """Hands out RTP ports of one board's range; safe to call from any thread."""

    def __init__(self, low: int, high: int, *, probe: Probe = _no_probe) -> None:
        pairs = port_pairs(low, high)
        if not pairs:
            raise ValueError(f"no even RTP port with its RTCP port in [{low}, {high}]")
        self.low, self.high = low, high
        self._probe = probe
        self._free: deque[int] = deque(pairs)
        self._used: set[int] = set()
        self._held_elsewhere: set[int] = set()  # warned about; cleared once it binds again
        self._lock = threading.Lock()
        self.skipped = 0  # pairs passed over because another program held them

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._used)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._used)

    def allocate(self) -> int:
        """A free even port that can be bound now (its RTCP port is the next one); raises
        PortsExhausted when none can."""
        with self._lock:
            # Each free pair is tried at most once: a held one goes to the back of the queue.
            for _ in range(len(self._free)):
                port = self._free.popleft()
                try:
                    self._probe(port)
                except OSError as exc:
                    self._free.append(port)
                    if exc.errno != errno.EADDRINUSE:
                        # Not a port someone holds (a wrong rtp_host, no permission): every
                        # other port would fail the same way.
                        raise PortsExhausted(f"RTP port {port} cannot be bound: {exc}"
                                             ) from exc
                    self.skipped += 1
                    if port not in self._held_elsewhere:
                        self._held_elsewhere.add(port)
                        logger.warning("RTP port %d or %d is held by another program; skipped "
                                       "for the next free pair of %d-%d", port, port + 1,
                                       self.low, self.high)
                    continue
                self._held_elsewhere.discard(port)
                self._used.add(port)
                return port
            if self._free:
                raise PortsExhausted(f"no RTP port pair of {self.low}-{self.high} can be bound: "
                                     f"{len(self._used)} in use here, {len(self._free)} held "
                                     "by other programs")
            raise PortsExhausted(f"all {len(self._used)} RTP port pairs of "
                                 f"{self.low}-{self.high} are in use")

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing a port that is not held does nothing."""
        with self._lock:
            if port in self._used:
                self._used.remove(port)
                self._free.append(port)
