"""The XML socket API: a TCP server answering each message with a RESULT line (CRLF-ended).

A client may send many requests on one connection, pretty-printed or on one line, or drop after
one. Requests on a connection are answered in order; handlers run on the API worker threads so
the event loop never waits for a disk or the database.

EVENTS turns a connection into an event subscriber (the manual's Event Interface): after its
RESULT, every matching event is written to it as one ``<CALLCOPYEVENT>`` line, and the
connection goes on answering requests, their RESULT lines among the events. A subscriber that
falls behind (its queue on the event bus fills) is disconnected. See docs/events.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial

from recorder.api.context import ApiContext
from recorder.api.dispatcher import Dispatcher
from recorder.api.framing import MessageFramer, MessageTooLarge
from recorder.api.handlers.events import params_filter, render_event, subscribed
from recorder.api.params import Params
from recorder.api.request import ApiResult, RequestError
from recorder.api.xmlcodec import render_result
from recorder.eventbus import EventBus, Subscription
from recorder.resultcodes import ResultCode

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
CRLF = b"\r\n"
# A client that stops reading must not hold a connection, or shutdown, open for long.
CLOSE_TIMEOUT = 2.0
# The kernel's send buffer of an event subscriber's connection (Linux doubles it). Left alone it
# grows to megabytes for a client that has stopped reading, which would then take thousands of
# events to be found out; this holds hundreds, plenty for a burst to a client that reads.
EVENT_SEND_BUFFER = 128 * 1024


@dataclass
class _Connection:
    """One client: where to write, and its event subscription once it has sent EVENTS."""

    writer: asyncio.StreamWriter
    name: str
    subscription: Subscription | None = None
    stream: asyncio.Task[None] | None = None


class SocketApi:
    """Serves the XML socket API on one listening socket."""

    def __init__(self, dispatcher: Dispatcher, executor: Executor, max_message_bytes: int,
                 message_timeout: float, events: EventBus | None = None) -> None:
        self._dispatcher = dispatcher
        self._executor = executor
        self._max_message_bytes = max_message_bytes
        self._message_timeout = message_timeout
        self._events = events
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port,
                                                  reuse_address=True)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # stop accepting
        # Connections go before wait_closed(): since Python 3.12 it waits for all of them.
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        peer = writer.get_extra_info("peername")
        conn = _Connection(writer, _peer_name(peer))
        framer = MessageFramer(self._max_message_bytes)
        aborting = False
        try:
            while True:
                # A partial message that stays incomplete (no closing tag ever comes) is
                # answered after a quiet period instead of leaving the client waiting forever.
                timeout = self._message_timeout if framer.pending else None
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    await self._answer_partial(conn, framer)
                    continue
                if not data:
                    await self._answer_partial(conn, framer)
                    break
                try:
                    messages = framer.feed(data)
                except MessageTooLarge as exc:
                    for message in exc.complete:
                        await self._answer(conn, message)
                    await self._send(writer, render_result("", None, ApiResult(
                        ResultCode.API_INVALID_MESSAGE_FORMAT,
                        f"message longer than {exc.limit} bytes; closing the connection")))
                    logger.warning("socket API: %s sent a message over %d bytes; disconnected",
                                   peer, exc.limit)
                    break
                for message in messages:
                    await self._answer(conn, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing of ours is lost with it
        except asyncio.CancelledError:
            aborting = True  # shutting down: answers the client has not read are dropped
        except Exception:
            logger.exception("socket API: connection from %s failed", peer)
        finally:
            self._clients.discard(task)
            await self._unsubscribe(conn)
            await _close(writer, aborting or (conn.subscription is not None
                                              and conn.subscription.dropped))

    async def _answer_partial(self, conn: _Connection, framer: MessageFramer) -> None:
        pending = framer.flush()
        if pending is not None:
            await self._answer(conn, pending)

    async def _answer(self, conn: _Connection, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        # EVENTS subscribes this connection: a handler of its own, run with the dispatcher's
        # checks like any other.
        handlers = {"EVENTS": partial(self._subscribe, conn, loop)}
        result = await loop.run_in_executor(self._executor, self._dispatcher.handle_xml, message,
                                            handlers)
        await self._send(conn.writer, result)
        if conn.subscription is not None and conn.stream is None:
            # Only now, so the RESULT goes out before the first event.
            conn.stream = asyncio.create_task(self._stream(conn, conn.subscription))

    def _subscribe(self, conn: _Connection, loop: asyncio.AbstractEventLoop, ctx: ApiContext,
                   params: Params) -> ApiResult:
        """EVENTS on this connection (runs on a worker thread, like every handler)."""
        wanted = params_filter(params)
        if self._events is None:
            raise RequestError(ResultCode.API_COMMAND_NOT_SUPPORTED,
                               "the event interface is not running")
        if conn.subscription is not None:
            raise RequestError(ResultCode.API_ERROR_ALREADY_MONITORING,
                               f"this connection already receives events (EVENTXREF "
                               f"{conn.subscription.xref}); open another connection to "
                               "subscribe again")
        transport = conn.writer.transport
        limit_send_buffer(transport)
        conn.subscription = self._events.subscribe(
            wanted.classes, wanted.devices, name=f"socket {conn.name}", loop=loop,
            on_drop=partial(cut, transport))
        logger.info("socket API: %s subscribed to %s events%s (EVENTXREF %d)", conn.name,
                    wanted.event_class, _devices(wanted.devices), conn.subscription.xref)
        return subscribed(wanted, conn.subscription.xref)

    async def _stream(self, conn: _Connection, subscription: Subscription) -> None:
        """Write the subscription's events to the connection until it ends."""
        try:
            while (event := await subscription.get()) is not None:
                try:
                    line = render_event(event, subscription.xref)
                except ValueError:
                    logger.exception("event %s could not be written as XML", event.event_type)
                    continue
                await self._send(conn.writer, line)
        except ConnectionError:
            pass  # the client went away, or was cut off for falling behind
        except Exception:
            logger.exception("socket API: events to %s failed", conn.name)
        finally:
            if subscription.dropped or not subscription.closed:
                # Dropped, or this stream failed: the connection goes too, so the client
                # notices it is no longer receiving events.
                cut(conn.writer.transport)
            else:
                # The bus ended it (shutdown) after its last event: close once that is sent,
                # so the client reads every event and then the end of the stream.
                conn.writer.close()

    async def _unsubscribe(self, conn: _Connection) -> None:
        if conn.subscription is None:
            return
        conn.subscription.close()
        if conn.stream is not None:
            conn.stream.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.stream
        if not conn.subscription.dropped:
            logger.info("socket API: %s unsubscribed (EVENTXREF %d)", conn.name,
                        conn.subscription.xref)

    async def _send(self, writer: asyncio.StreamWriter, result: bytes) -> None:
        writer.write(result + CRLF)
        await writer.drain()


def cut(transport: asyncio.WriteTransport) -> None:
    """Close a connection at once, with a reset: what its client has not read is discarded.

    A plain close would queue the end of the stream behind the unsent data of a client that
    stopped reading, so it would never see the end and the kernel would keep the data for it.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def limit_send_buffer(transport: asyncio.BaseTransport, size: int = EVENT_SEND_BUFFER) -> None:
    """Cap the kernel's send buffer of an event subscriber (see EVENT_SEND_BUFFER)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def _peer_name(peer: object) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _devices(devices: frozenset[str]) -> str:
    return f" of device {', '.join(sorted(devices))}" if devices else ""


async def _close(writer: asyncio.StreamWriter, abort: bool) -> None:
    """Close a connection, flushing what is queued unless told not to or the peer won't read."""
    if not abort:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            return
    writer.transport.abort()
