"""RTP ports for answered streams: even ports of ``[rtp_port_min, rtp_port_max]``, each with the
odd port above it kept for RTCP (RFC 3550 §11), handed out and taken back.

Ports are reused in the order they were freed, least recently used first: RTP still in flight
for a call that just ended then reaches a port nobody holds rather than the next call's. A
range with no pair left raises ``PortsExhausted``, which the UAS answers 503.
"""

from __future__ import annotations

import threading
from collections import deque

from recorder.drivers.siprec.errors import ProtocolError


class PortsExhausted(ProtocolError):
    """Every RTP port pair of the range is in use."""

    default_status = 503


def port_pairs(low: int, high: int) -> list[int]:
    """The even RTP ports p with p and p + 1 both in ``[low, high]``."""
    first = low + (low % 2)
    return list(range(first, high, 2))


class PortAllocator:
    """Hands out RTP ports of one board's range; safe to call from any thread."""

    def __init__(self, low: int, high: int) -> None:
        pairs = port_pairs(low, high)
        if not pairs:
            raise ValueError(f"no even RTP port with its RTCP port in [{low}, {high}]")
        self.low, self.high = low, high
        self._free: deque[int] = deque(pairs)
        self._used: set[int] = set()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return len(self._free) + len(self._used)

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._used)

    def allocate(self) -> int:
        """A free even port (its RTCP port is the next one); raises PortsExhausted."""
        with self._lock:
            if not self._free:
                raise PortsExhausted(f"all {len(self._used)} RTP port pairs of "
                                     f"{self.low}-{self.high} are in use")
            port = self._free.popleft()
            self._used.add(port)
            return port

    def release(self, port: int) -> None:
        """Give ``port`` back; releasing a port that is not held does nothing."""
        with self._lock:
            if port in self._used:
                self._used.remove(port)
                self._free.append(port)
