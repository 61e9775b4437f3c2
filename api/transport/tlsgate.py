"""The socket API's TLS port: the address is checked against ``api.allow`` as the connection is
accepted, before a byte of it is read and before any TLS handshake, as on the plain port; only
an admitted client is then upgraded to TLS and served.

``asyncio.start_server(ssl=...)`` cannot do that: it shakes hands before the server sees the
connection, so a stranger would get the certificate and the handshake's CPU. Starting TLS on a
stream later races the client's hello into the plain reader. Here the accepted transport's
protocol is a gate that pauses reading at once, decides, and hands the untouched transport to
``loop.start_tls``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# As asyncio.start_server's streams.
STREAM_LIMIT = 64 * 1024

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class TlsGate(asyncio.Protocol):
    """The protocol of one accepted connection until it is admitted and its handshake done.

    ``admits(peername)`` decides (and notes a refusal); a refused connection is aborted at
    once, never read. An admitted one shakes hands within ``handshake_timeout`` and is then
    served by ``serve`` as streams, on a task kept in ``tasks`` (so a shutdown can cancel it,
    handshake or not)."""

    def __init__(self, admits: Callable[[object], bool], context: ssl.SSLContext,
                 serve: Serve, tasks: set[asyncio.Task[None]], handshake_timeout: float
                 ) -> None:
        self._admits = admits
        self._context = context
        self._serve = serve
        self._tasks = tasks
        self._handshake_timeout = handshake_timeout

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        # Before anything: the transport starts reading only after this returns, so pausing
        # here means not a byte of the client's hello is taken by the plain transport.
        transport.pause_reading()
        if not self._admits(transport.get_extra_info("peername")):
            transport.abort()
            return
        task = asyncio.get_running_loop().create_task(self._upgrade(transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def data_received(self, data: bytes) -> None:
        # Reading is paused until TLS takes the transport over; nothing can arrive here.
        raise AssertionError("the TLS gate read data")

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=STREAM_LIMIT, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        peer = transport.get_extra_info("peername")
        try:
            secure = await loop.start_tls(transport, protocol, self._context, server_side=True,
                                          ssl_handshake_timeout=self._handshake_timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:  # ssl.SSLError is an OSError
            # A client without a certificate of socket_tls_client_ca, or speaking no TLS.
            logger.info("socket API over TLS: handshake with %s failed: %s", _name(peer),
                        getattr(exc, "reason", None) or exc or type(exc).__name__)
            transport.abort()
            return
        if secure is None:  # the client closed during the handshake
            transport.abort()
            return
        protocol.connection_made(secure)
        await self._serve(reader, asyncio.StreamWriter(secure, protocol, reader, loop))


def _name(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)
