"""The SIP server: UDP and TCP on one port (and TLS when ``tls_port`` > 0) on an asyncio loop in a
thread of its own, ``siprec-sip-<key>``, feeding the transaction layer and the UAS.

What reaches the SIP layers has passed the gate here:
- Only SRCs in ``allow`` are heard. Anything else is ignored: a datagram is dropped, a
  connection closed at once, never answered (not even 403). An answer would tell the SIP
  scanners that sweep port 5060 that a server is here and would make us a reflector; the
  first drop from each address is logged, the rest counted, so a misconfigured SRC shows.
- Message and header sizes are bounded (``Limits``), TCP/TLS connections are counted and
  bounded, a peer that does not read our answers is cut off, an idle connection that carries
  no session is closed. A message that cannot be parsed gets its 400/413/505/513 when it can
  be answered (ParseError says), else nothing; a TCP stream whose framing broke is closed
  after its answer. None of it touches any other dialog.
- Requests get ``received``/``rport`` on their top Via (RFC 3261 §18.2.1, RFC 3581), and
  responses over UDP go where the Via says (§18.2.2); over TCP/TLS back on the connection.

``start`` returns once every port listens (or raises StartupError naming the key),
``stop`` ends every session with a BYE and closes the ports, ``join`` waits for the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import ipaddress
import itertools
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.connections import Connection, Datagrams
from recorder.drivers.siprec.events import EndReason, RecordingSession, SessionListener
from recorder.drivers.siprec.flows import Flow
from recorder.drivers.siprec.ports import PortAllocator, bind_probe
from recorder.drivers.siprec.sipheaders import Via, response_address, stamp_received
from recorder.drivers.siprec.sipmessage import (
    DEFAULT_LIMITS,
    Limits,
    ParseError,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
)
from recorder.drivers.siprec.timers import DEFAULT_SIP_TIMERS, LoopTimers, SipTimers
from recorder.drivers.siprec.transactions import TransactionLayer
from recorder.drivers.siprec.uas import Uas, UasSettings
from recorder.errors import StartupError
from recorder.tls import server_context
from recorder.worker import Worker

logger = logging.getLogger(__name__)

T = TypeVar("T")
START_TIMEOUT = 10.0
HEARTBEAT_INTERVAL = 0.25
BIND_ATTEMPTS = 10  # sip_port 0: UDP picks a port, TCP may find it taken; try another
MAX_CONNECTIONS = 1000
IDLE_SECONDS = 300.0  # a connection silent this long, with no session on it, is closed
TLS_HANDSHAKE_SECONDS = 10.0
MAX_WARNED_SOURCES = 1000


def tls_context(key: str, config: SiprecBoardConfig) -> ssl.SSLContext | None:
    """The server side of SIP over TLS from tls_cert and tls_key; None when tls_port is 0."""
    if not config.tls_port:
        return None
    return server_context(f"{key}.tls_cert", config.tls_cert, config.tls_key)


class SipServer(Worker):
    """One siprec board's SIP side; the listener hears its sessions (see ``events``)."""

    def __init__(self, key: str, config: SiprecBoardConfig, listener: SessionListener, *,
                 ports: PortAllocator | None = None, sip_timers: SipTimers = DEFAULT_SIP_TIMERS,
                 min_se: int = 90, limits: Limits = DEFAULT_LIMITS,
                 max_connections: int = MAX_CONNECTIONS, idle_seconds: float = IDLE_SECONDS
                 ) -> None:
        super().__init__(f"siprec-sip-{key}")
        self.key = key
        self.config = config
        self.listener = listener
        self.ports = ports or PortAllocator(config.rtp_port_min, config.rtp_port_max,
                                            probe=bind_probe(config.rtp_address))
        self.sip_timers = sip_timers
        self.min_se = min_se
        self.limits = limits
        self.max_connections = max_connections
        self.idle_seconds = idle_seconds
        self.networks = config.networks()
        self.uas: Uas | None = None  # once started; touch it on the SIP thread only
        self.udp_address: tuple[str, int] = ("", 0)
        self.tcp_address: tuple[str, int] = ("", 0)
        self.tls_address: tuple[str, int] | None = None
        self.stats = {"datagrams": 0, "malformed": 0, "not_allowed": 0,
                      "connections_refused": 0, "connections_cut": 0}
        self._tls: ssl.SSLContext | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.Server] = []
        self._connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._warned: set[str] = set()

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._tls = tls_context(self.key, self.config)
        super().start()
        if not self._ready.wait(START_TIMEOUT):
            raise StartupError(f"{self.key}: the SIP server did not start within "
                               f"{START_TIMEOUT:.0f} s")
        if self._error is not None:
            super().join()
            raise self._error
        logger.info("%s: SIP listening on %s:%d (UDP, TCP)%s", self.key, *self.udp_address,
                    f" and {self.tls_address[1]} (TLS)" if self.tls_address else "")

    def stop(self) -> None:
        """End every session with a BYE, then close the ports; returns at once."""
        super().stop()
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(stopping.set)

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                logger.exception("%s: the SIP event loop failed", self.key)

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._stopping = loop, asyncio.Event()
        if self.stopping:
            self._ready.set()
            return
        try:
            await self._bind()
        except StartupError as exc:
            self._error = exc
            self._close_ports()
            self._ready.set()
            return
        layer = TransactionLayer(LoopTimers(loop), self._send, self.sip_timers)
        sip_ports = {"UDP": self.udp_address[1], "TCP": self.tcp_address[1]}
        if self.tls_address is not None:
            sip_ports["TLS"] = self.tls_address[1]
        self.uas = Uas(layer, self.listener, self.ports, UasSettings(
            host=self.config.advertised_host, sip_ports=sip_ports,
            rtp_address=self.config.rtp_address, max_sessions=self.config.max_sessions,
            min_se=self.min_se))
        beat = loop.call_soon(self._beat)
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            beat.cancel()
            self.uas.shutdown()
            layer.close()
            await asyncio.sleep(0)  # let the BYEs leave before the sockets close
            self._close_ports()
            for connection in list(self._connections.values()):
                connection.close()
            for server in self._servers:
                await server.wait_closed()

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()
        if self._loop is not None and not self.stopping:
            self._loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    async def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        host = self.config.sip_host
        for attempt in range(BIND_ATTEMPTS):
            try:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: Datagrams(self), local_addr=(host, self.config.sip_port))
            except OSError as exc:
                raise StartupError(f"{self.key}.sip_port: cannot listen on {host}:"
                                   f"{self.config.sip_port} (UDP): {exc.strerror or exc}",
                                   port_busy=exc.errno == errno.EADDRINUSE) from exc
            self._udp = udp
            port = int(udp.get_extra_info("sockname")[1])
            try:
                self._servers.append(await loop.create_server(
                    lambda: Connection(self, "TCP"), host, port, reuse_address=True))
            except OSError as exc:
                udp.close()
                if (self.config.sip_port == 0 and exc.errno == errno.EADDRINUSE
                        and attempt < BIND_ATTEMPTS - 1):
                    continue
                raise StartupError(f"{self.key}.sip_port: cannot listen on {host}:{port} "
                                   f"(TCP): {exc.strerror or exc}",
                                   port_busy=exc.errno == errno.EADDRINUSE) from exc
            self.udp_address = self.tcp_address = (host, port)
            break
        if self._tls is not None:
            port = self.config.tls_port
            try:
                server = await loop.create_server(
                    lambda: Connection(self, "TLS"), host, port, ssl=self._tls,
                    reuse_address=True, ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS)
            except OSError as exc:
                raise StartupError(f"{self.key}.tls_port: cannot listen on {host}:{port}: "
                                   f"{exc.strerror or exc}",
                                   port_busy=exc.errno == errno.EADDRINUSE) from exc
            self._servers.append(server)
            self.tls_address = (host, port)

    def _close_ports(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()

    # --- calls from other threads -------------------------------------------------------

    def call(self, function: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``function`` on the SIP thread and return what it returns."""
        if self._loop is None:
            raise RuntimeError(f"{self.key}: the SIP server is not running")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def sessions(self) -> list[RecordingSession]:
        """The live sessions, as of now."""
        return self.call(lambda: self.uas.sessions if self.uas else [])

    def end_session(self, call_id: str, reason: EndReason = EndReason.LOCAL) -> bool:
        """End a session with a BYE (the recorder's media timeout, say); False if none."""
        return self.call(lambda: self.uas.end_session(call_id, reason) if self.uas else False)

    def end_session_soon(self, call_id: str, reason: EndReason = EndReason.LOCAL) -> None:
        """``end_session`` without waiting for it: for a thread that must never wait for this
        one (the media thread's timeout)."""
        loop = self._loop
        if loop is None:
            return

        def end() -> None:
            if self.uas is not None:
                self.uas.end_session(call_id, reason)

        with contextlib.suppress(RuntimeError):  # the loop has ended already
            loop.call_soon_threadsafe(end)

    # --- receiving ----------------------------------------------------------------------

    def allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.networks):
            return True
        self.stats["not_allowed"] += 1
        if host not in self._warned and len(self._warned) < MAX_WARNED_SOURCES:
            self._warned.add(host)
            logger.warning("%s: SIP from %s ignored: not in allow (further drops are only "
                           "counted)", self.key, host)
        return False

    def datagram(self, data: bytes, address: tuple[str, int]) -> None:
        self.stats["datagrams"] += 1
        flow = Flow("UDP", (address[0], address[1]))
        if not self.allowed(address[0]):
            return
        if data.strip(b"\r\n") == b"":
            return  # a keep-alive (RFC 5626 §4.4.2 STUN aside): nothing to answer
        try:
            message = parse_message(data, self.limits)
        except ParseError as exc:
            self.malformed(exc, flow)
            return
        self.received(message, flow)

    def received(self, message: SipMessage, flow: Flow) -> None:
        try:
            if isinstance(message, SipRequest):
                stamp_received(message.headers, *flow.remote)
            if self.uas is not None:
                self.uas.layer.receive(message, flow)
        except Exception:
            # A bug met by one message must not take the server (or another call) down.
            logger.exception("%s: a SIP message from %s:%d failed", self.key, *flow.remote)

    def malformed(self, error: ParseError, flow: Flow) -> None:
        self.stats["malformed"] += 1
        logger.info("%s: a malformed SIP message from %s:%d (%s): %s", self.key, *flow.remote,
                    error.status or "not answered", error.reason)
        if error.status is None or error.request is None:
            return
        try:
            stamp_received(error.request.headers, *flow.remote)
            response = make_response(error.request, error.status, headers=[
                ("Warning", f'399 {self.config.advertised_host} "malformed message"')])
            self._send(response, flow)
        except Exception:
            logger.exception("%s: answering a malformed message failed", self.key)

    # --- sending ------------------------------------------------------------------------

    def _send(self, message: SipMessage, flow: Flow) -> None:
        data = message.to_bytes()
        if flow.transport == "UDP":
            if self._udp is None or self._udp.is_closing():
                return
            address = flow.remote
            if isinstance(message, SipResponse):
                # Without a readable Via it goes back where the request came from.
                with contextlib.suppress(ValueError, IndexError):
                    address = response_address(Via.parse(message.headers.values("via")[0]))
            self._udp.sendto(data, address)
            return
        stream = self._connections.get(flow.connection)
        if stream is None:
            logger.info("%s: the %s connection to %s:%d is gone; a %s is not sent", self.key,
                        flow.transport, *flow.remote, _what(message))
            return
        stream.write(data)

    def register(self, connection: Connection) -> int | None:
        if len(self._connections) >= self.max_connections:
            self.stats["connections_refused"] += 1
            logger.warning("%s: %d SIP connections open; one from %s refused", self.key,
                           len(self._connections), connection.peer[0])
            return None
        number = next(self._ids)
        self._connections[number] = connection
        return number

    def unregister(self, number: int) -> None:
        self._connections.pop(number, None)

    def in_use(self, number: int) -> bool:
        """A live session answers on this connection."""
        return self.uas is not None and number in self.uas.connections()


def _what(message: SipMessage) -> str:
    return (f"{message.status} response" if isinstance(message, SipResponse)
            else message.method)
