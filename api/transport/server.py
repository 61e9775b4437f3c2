"""Runs the socket API (plain, and over TLS when asked for) and the WebAPI (HTTP, and HTTPS when a
certificate is configured) on one asyncio event loop in a thread of its own. All of them share
one dispatcher, one event bus and one admission (``access``: api.allow, api.require_auth)."""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor

from recorder.api.dispatcher import Dispatcher
from recorder.api.transport.access import ApiAccess
from recorder.api.transport.clients import ClientLimit, CtiNetworks
from recorder.api.transport.loadlimits import CommandQueue, Lanes
from recorder.api.transport.socket_server import SocketApi
from recorder.api.transport.webapi import MetricsProvider, StatusProvider, WebApi
from recorder.config.sections import ApiConfig
from recorder.errors import StartupError
from recorder.events.bus import EventBus
from recorder.tls import server_context
from recorder.worker import Worker

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
# How often the event loop proves it is turning (ApiServer.heartbeat); well inside any
# threshold Recorder.health would call hung.
HEARTBEAT_INTERVAL = 0.25
# /metrics and /status run on threads of their own: they must answer while every API worker
# is stuck behind a hung core, which is when someone looks at them.
DIAGNOSTIC_WORKERS = 2


class ApiServer(Worker):
    """Both API transports; ``start`` returns once both listen, or raises StartupError.

    ``metrics`` and ``status`` provide the WebAPI's ``/metrics`` text and ``/status`` document
    (not served without them).
    """

    def __init__(self, config: ApiConfig, dispatcher: Dispatcher,
                 events: EventBus | None = None, *, metrics: MetricsProvider | None = None,
                 status: StatusProvider | None = None, access: ApiAccess | None = None
                 ) -> None:
        super().__init__("api-loop")
        self._config = config
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix="api")
        self._calls = ThreadPoolExecutor(config.call_control_workers,
                                         thread_name_prefix="api-call")
        self._diagnostics = ThreadPoolExecutor(DIAGNOSTIC_WORKERS,
                                               thread_name_prefix="api-diag")
        # One pair of command queues and one client count for both transports: the limits are
        # the recorder's, whichever way a client comes in. Call control has its own workers
        # and queue, so no other request can hold it up (loadlimits.Lanes).
        stats = dispatcher.stats
        lanes = Lanes(
            CommandQueue(self._calls, config.call_control_workers,
                         config.call_control_queue_size, stats.pending, stats.call_pending,
                         kind="call-control"),
            CommandQueue(self._executor, config.workers, config.command_queue_size,
                         stats.pending))
        cti = CtiNetworks(config.cti_addresses)
        clients = ClientLimit(config.max_clients, stats.clients,
                              per_address=config.max_clients_per_address, cti=cti,
                              reserved=config.cti_reserved_clients)
        connections = ClientLimit(config.max_http_connections, stats.http_connections,
                                  per_address=config.max_clients_per_address, cti=cti,
                                  reserved=config.cti_reserved_clients,
                                  what="HTTP connections")
        self._socket = SocketApi(dispatcher, self._executor, config.max_message_bytes,
                                 config.message_timeout_seconds, events,
                                 message_deadline=config.message_deadline_seconds,
                                 idle_timeout=config.idle_timeout_seconds, lanes=lanes,
                                 clients=clients, access=access)
        self._web = WebApi(dispatcher, self._executor, events, metrics=metrics, status=status,
                           diagnostics_executor=self._diagnostics, lanes=lanes,
                           clients=clients, connections=connections,
                           request_deadline=config.message_deadline_seconds,
                           max_body=config.max_message_bytes, access=access)
        self._tls: ssl.SSLContext | None = None
        self._socket_tls: ssl.SSLContext | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.socket_address: tuple[str, int] = ("", 0)
        self.web_address: tuple[str, int] = ("", 0)
        self.tls_address: tuple[str, int] | None = None  # set when HTTPS is served
        self.socket_tls_address: tuple[str, int] | None = None  # set with api.socket_tls
        # The heartbeat is the time of the event loop's last heartbeat callback: a loop blocked
        # by a callback that never returns shows as a heartbeat that stops moving.
        self._beat_handle: asyncio.TimerHandle | None = None

    @property
    def loop_alive(self) -> bool:
        """The event loop's thread is running."""
        return self.alive

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the servers run on, once started."""
        return self._loop

    def start(self) -> None:
        self._tls = tls_context(self._config)
        self._socket_tls = socket_tls_context(self._config)
        super().start()
        if not self._ready.wait(START_TIMEOUT):
            raise StartupError("the API servers did not start within "
                               f"{START_TIMEOUT:.0f} s")
        if self._error is not None:
            super().join()
            for pool in (self._executor, self._calls, self._diagnostics):
                pool.shutdown(wait=False)
            raise self._error
        host, port = self.socket_address
        logger.info("socket API listening on %s:%d", host, port)
        if self.socket_tls_address is not None:
            host, port = self.socket_tls_address
            logger.info("socket API over TLS listening on %s:%d%s", host, port,
                        " (client certificates required)"
                        if self._config.socket_tls_client_ca else "")
        host, port = self.web_address
        logger.info("WebAPI listening on http://%s:%d/webAPI.aspx", host, port)
        if self.tls_address is not None:
            host, port = self.tls_address
            logger.info("WebAPI listening on https://%s:%d/webAPI.aspx", host, port)

    def stop(self) -> None:
        """Stop accepting, drop connections, and let requests already running finish."""
        super().stop()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def join(self, timeout: float | None = None) -> bool:
        ended = super().join(timeout)
        for pool in (self._executor, self._calls, self._diagnostics):
            pool.shutdown(wait=True)
        return ended

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start(), or logged if it comes later
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                logger.exception("API event loop failed")

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        host = self._config.host
        try:
            port = self._config.socket_port
            self.socket_address = await self._listen(
                "api.socket_port", port, self._socket.start(host, port))
            if self._socket_tls is not None:
                port = self._config.socket_tls_port
                self.socket_tls_address = await self._listen(
                    "api.socket_tls_port", port, self._socket.start(host, port,
                                                                     self._socket_tls))
            port = self._config.web_port
            self.web_address = await self._listen(
                "api.web_port", port, self._web.start(host, port))
            if self._tls is not None:
                port = self._config.tls_port
                self.tls_address = await self._listen(
                    "api.tls_port", port, self._web.start(host, port, self._tls))
        except StartupError as exc:
            self._error = exc
            await self._socket.close()
            await self._web.close()
            self._ready.set()
            return
        self._beat()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            if self._beat_handle is not None:
                self._beat_handle.cancel()
        await self._socket.close()
        await self._web.close()

    def _beat(self) -> None:
        """On the loop: note the time, and come back in HEARTBEAT_INTERVAL."""
        self.heartbeat = time.monotonic()
        assert self._loop is not None
        self._beat_handle = self._loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    async def _listen(self, key: str, port: int,
                      opening: Awaitable[tuple[str, int]]) -> tuple[str, int]:
        try:
            return await opening
        except OSError as exc:
            raise StartupError(f"{key}: cannot listen on {self._config.host}:{port}: "
                               f"{exc.strerror or exc}",
                               port_busy=exc.errno == errno.EADDRINUSE) from exc


def tls_context(config: ApiConfig) -> ssl.SSLContext | None:
    """The server side of HTTPS from api.tls_cert and api.tls_key; None when not configured."""
    if not config.tls_cert:
        return None
    return server_context("api.tls_cert", config.tls_cert, config.tls_key)


def socket_tls_context(config: ApiConfig) -> ssl.SSLContext | None:
    """The server side of the socket API over TLS (api.socket_tls), asking for client
    certificates of api.socket_tls_client_ca when it is set; None when not served."""
    if not config.socket_tls or not config.tls_cert:
        return None
    return server_context("api.tls_cert", config.tls_cert, config.tls_key,
                          client_ca=config.socket_tls_client_ca,
                          client_ca_setting="api.socket_tls_client_ca")
