"""The asyncio protocols of the SIP server: UDP datagrams, and one ``Connection`` per TCP or TLS
stream (framed by ``StreamFramer``, bounded in what it buffers both ways, closed when idle with
no session on it). What they receive goes to a ``Gate``, the server (``transport``), which
checks the source and hands messages to the SIP layers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from recorder.drivers.siprec.flows import Flow
from recorder.drivers.siprec.sipmessage import (
    KeepAlive,
    Limits,
    ParseError,
    SipMessage,
    StreamFramer,
)

logger = logging.getLogger(__name__)

MAX_WRITE_BUFFER = 1024 * 1024  # a peer this far behind reading our answers is cut off


class Gate(Protocol):
    """What the protocols need of the server."""

    key: str
    limits: Limits
    idle_seconds: float
    stats: dict[str, int]

    def allowed(self, host: str) -> bool: ...

    def datagram(self, data: bytes, address: tuple[str, int]) -> None: ...

    def received(self, message: SipMessage, flow: Flow) -> None: ...

    def malformed(self, error: ParseError, flow: Flow) -> None: ...

    def register(self, connection: Connection) -> int | None: ...

    def unregister(self, number: int) -> None: ...

    def in_use(self, number: int) -> bool: ...


class Datagrams(asyncio.DatagramProtocol):
    """The UDP socket: every datagram goes to the gate."""

    def __init__(self, server: Gate) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.server.datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for something we sent: the peer is gone; timers handle it.
        logger.debug("%s: UDP error: %s", self.server.key, exc)


class Connection(asyncio.Protocol):
    """One TCP or TLS connection: the framer in, writes out, its limits kept."""

    def __init__(self, server: Gate, name: str) -> None:
        self.server = server
        self.name = name
        self.peer: tuple[str, int] = ("", 0)
        self.number: int | None = None
        self.framer = StreamFramer(server.limits)
        self.transport: asyncio.Transport | None = None
        self.last_heard = time.monotonic()
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if not self.server.allowed(self.peer[0]):
            transport.abort()
            return
        self.number = self.server.register(self)
        if self.number is None:
            transport.abort()
            return
        self._watch()

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.server.idle_seconds, self._check_idle)

    def _check_idle(self) -> None:
        if self.transport is None or self.transport.is_closing() or self.number is None:
            return
        silent = time.monotonic() - self.last_heard
        if silent >= self.server.idle_seconds and not self.server.in_use(self.number):
            logger.info("%s: closing an idle %s connection from %s:%d", self.server.key,
                        self.name, *self.peer)
            self.close()
            return
        self._watch()

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        assert self.number is not None
        flow = Flow(self.name, self.peer, self.number)
        for item in self.framer.feed(data):
            if isinstance(item, KeepAlive):
                self.write(b"\r\n")  # RFC 5626 §4.4.1: a CRLF answers a double CRLF
            elif isinstance(item, ParseError):
                self.server.malformed(item, flow)
            else:
                self.server.received(item, flow)
        if self.framer.broken:
            # Where the next message starts is unknown: the answer (if any) goes, then close.
            self.close()

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            self.server.stats["connections_cut"] += 1
            logger.warning("%s: %s:%d does not read what we send; connection cut",
                           self.server.key, *self.peer)
            self.transport.abort()
            return
        self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.number is not None:
            self.server.unregister(self.number)
