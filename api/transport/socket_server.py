"""The XML socket API: a TCP server answering each message with a RESULT line (CRLF-ended).

A client may send many requests on one connection, pretty-printed or on one line, or drop after
one. Requests on a connection are answered in order, one at a time: a connection never holds
more than one request in progress, however many it pipelines. Handlers run on the API worker
threads so the event loop never waits for a disk or the database, call control in its own lane
(loadlimits.Lanes), except requests of dispatcher.INLINE_TYPES that wait for nothing (TEST, a
CALLSTART that is not recorded, a CALLSTOP with no recording to end), answered on the loop while
a worker of their lane is idle; one that would wait goes to a worker untouched.

EVENTS turns a connection into an event subscriber (the manual's Event Interface): after its
RESULT, every matching event is written to it as one ``<CALLCOPYEVENT>`` line, and the
connection goes on answering requests, their RESULT lines among the events. A subscriber that
falls behind (its queue on the event bus fills) is disconnected. See docs/events.md.

Limits (docs/api-notes.md, "Limits"): a message over ``max_message_bytes`` is answered 16 and
the connection closed; a message left unfinished for ``message_timeout`` is answered 16 and
the connection kept; one still arriving ``message_deadline`` after its first byte (a slow
sender) is answered 16 and the connection closed; a connection that has sent no whole message
``message_deadline`` after it opened, or none for ``idle_timeout`` since, is closed, unless it
receives events or comes from a CTI address; a client over the client limits (in all, per
address) is answered 48 and closed; a request finding its lane's queue full is answered 47 at
once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from recorder.api.context import ApiContext
from recorder.api.dispatcher import INLINE_TYPES, Dispatcher, Handler
from recorder.api.handlers.events import params_filter, render_event, subscribed
from recorder.api.protocol.params import Params
from recorder.api.protocol.xmlcodec import parse_request, render_result
from recorder.api.request import ApiRequest, ApiResult, RequestError
from recorder.api.transport.access import ApiAccess, certificate_name, log_request
from recorder.api.transport.clients import ClientLimit, client_address
from recorder.api.transport.connguard import Watchdog, cut, limit_send_buffer
from recorder.api.transport.framing import MessageFramer, MessageTooLarge
from recorder.api.transport.loadlimits import (
    REFUSED_PAUSE,
    Lanes,
    QueueFull,
    refused_for_load,
)
from recorder.api.transport.tlsgate import TlsGate
from recorder.events.bus import EventBus, Subscription
from recorder.resultcodes import ResultCode

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
CRLF = b"\r\n"
# A client that stops reading must not hold a connection, or shutdown, open for long.
CLOSE_TIMEOUT = 2.0


@dataclass
class _Connection:
    """One client: where to write, and its event subscription once it has sent EVENTS."""

    writer: asyncio.StreamWriter
    name: str
    address: str = ""
    cti: bool = False  # from a CTI address: never closed for being idle
    identity: str | None = None  # the subject CN of its verified client certificate (TLS)
    subscription: Subscription | None = None
    stream: asyncio.Task[None] | None = None
    handlers: dict[str, Handler] | None = None  # the connection's own (EVENTS), made once


class Timeouts(NamedTuple):
    """How long a socket client may take (seconds; idle 0 = no limit)."""

    message: float  # quiet time within a message before it is answered as it stands (16)
    deadline: float  # a message's first byte to its last (slow sender: 16 and closed); also
    # the connection's opening to its first whole message (closed)
    idle: float = 0.0  # no message at all: closed


class SocketApi:
    """Serves the XML socket API on one listening socket.

    ``lanes`` and ``clients`` are the limits it shares with the WebAPI; without them, requests
    run on ``executor`` unbounded and clients are not counted (nor any address a CTI's).
    """

    def __init__(self, dispatcher: Dispatcher, executor: Executor, max_message_bytes: int,
                 message_timeout: float, events: EventBus | None = None, *,
                 message_deadline: float | None = None, idle_timeout: float = 0.0,
                 lanes: Lanes | None = None, clients: ClientLimit | None = None,
                 access: ApiAccess | None = None) -> None:
        self._dispatcher = dispatcher
        self._max_message_bytes = max_message_bytes
        self._timeouts = Timeouts(message_timeout, message_deadline or message_timeout * 6,
                                  idle_timeout)
        self._lanes = lanes or Lanes.unbounded(executor)
        self._limit = clients
        self._events = events
        self._access = access  # None: every address served, nobody asked who they are
        self._servers: list[asyncio.Server] = []
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listen on ``host``:``port`` (over TLS with ``ssl_context``); may be called per port."""
        if ssl_context is None:
            server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        else:
            # A stranger is closed at accept, before any handshake (tlsgate).
            context = ssl_context
            server = await asyncio.get_running_loop().create_server(
                lambda: TlsGate(self._admits, context, self._serve, self._clients,
                                self._timeouts.deadline), host, port, reuse_address=True)
        self._servers.append(server)
        address = server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()  # stop accepting
        # Connections go before wait_closed(): since Python 3.12 it waits for all of them.
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        conn = _Connection(writer, _peer_name(peer), client_address(peer))
        if not self._admits(peer):
            # Closed before a byte is read or answered: nothing of the API for a stranger.
            writer.transport.abort()
            return
        conn.identity = certificate_name(writer.get_extra_info("peercert"))
        if conn.identity is not None:
            conn.name = f"{conn.name} (certificate CN {conn.identity})"
        if self._limit is not None:
            conn.cti = self._limit.is_cti(conn.address)
            if not self._limit.acquire(conn.address):
                await self._refuse_client(conn)
                return
        self._clients.add(task)
        aborting = False
        try:
            await self._converse(reader, conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing of ours is lost with it
        except asyncio.CancelledError:
            aborting = True  # shutting down: answers the client has not read are dropped
        except Exception:
            logger.exception("socket API: connection from %s failed", conn.name)
        finally:
            self._clients.discard(task)
            if self._limit is not None:
                self._limit.release(conn.address)
            await self._unsubscribe(conn)
            await _close(conn.writer, aborting or (conn.subscription is not None
                                                   and conn.subscription.dropped))

    def _admits(self, peer: object) -> bool:
        """Whether api.allow admits the client at ``peer`` (a refusal is noted, and logged)."""
        return self._access is None or self._access.admits_socket(client_address(peer))

    async def _converse(self, reader: asyncio.StreamReader, conn: _Connection) -> None:
        """Read and answer messages until the client leaves or breaks a limit."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        framer = MessageFramer(self._max_message_bytes)
        timeouts = self._timeouts
        watchdog = Watchdog(loop, task)
        opened = last_message = loop.time()  # last_message: when the last whole one was answered
        began = 0.0  # when the message being received (framer.pending) began
        whole = False  # a whole message has come (not just a partial one answered when quiet)
        try:
            while True:
                # A partial message that stays incomplete (no closing tag ever comes) is
                # answered after a quiet period instead of leaving the client waiting forever;
                # one that keeps trickling in is cut off at its deadline; a connection that
                # sends nothing is closed when idle, or at the deadline if it has never sent a
                # whole message (but never one that is receiving events, nor a CTI link).
                if framer.pending:
                    now = loop.time()
                    watchdog.deadline_at(min(now + timeouts.message, began + timeouts.deadline))
                elif conn.subscription is None and not conn.cti:
                    if not whole:
                        watchdog.deadline_at(min(opened + timeouts.deadline,
                                                 opened + (timeouts.idle or math.inf)))
                    elif timeouts.idle:
                        watchdog.deadline_at(last_message + timeouts.idle)
                try:
                    data = await reader.read(READ_SIZE)
                except asyncio.CancelledError:
                    if not watchdog.expired(task):
                        raise
                    now = loop.time()
                    if not framer.pending:
                        if conn.subscription is not None:
                            continue  # subscribed meanwhile: no longer idle
                        if not whole:
                            logger.info("socket API: %s sent no whole message within %.0f s of "
                                        "connecting; disconnected", conn.name, now - opened)
                        else:
                            logger.info("socket API: %s sent nothing for %.0f s; disconnected",
                                        conn.name, timeouts.idle)
                        return
                    if now - began >= timeouts.deadline:
                        framer.flush()
                        await self._send(conn.writer, render_result("", None, ApiResult(
                            ResultCode.API_INVALID_MESSAGE_FORMAT,
                            f"message not complete within {timeouts.deadline:g} s of its first "
                            "byte; closing the connection")))
                        logger.warning("socket API: %s sent a message too slowly; disconnected",
                                       conn.name)
                        return
                    await self._answer_partial(conn, framer)
                    last_message = loop.time()
                    continue
                watchdog.deadline = None  # answering is never cut short
                if not data:
                    await self._answer_partial(conn, framer)
                    return
                was_pending = framer.pending
                try:
                    messages = framer.feed(data)
                except MessageTooLarge as exc:
                    for message in exc.complete:
                        await self._answer(conn, message)
                    await self._send(conn.writer, render_result("", None, ApiResult(
                        ResultCode.API_INVALID_MESSAGE_FORMAT,
                        f"message longer than {exc.limit} bytes; closing the connection")))
                    logger.warning("socket API: %s sent a message over %d bytes; disconnected",
                                   conn.name, exc.limit)
                    return
                if framer.pending and (messages or not was_pending):
                    began = loop.time()  # a new message began in this chunk
                for message in messages:
                    await self._answer(conn, message)
                if messages:
                    whole = True
                    last_message = loop.time()
        finally:
            watchdog.close()

    async def _refuse_client(self, conn: _Connection) -> None:
        """Answer 48 to a client over the limit, and close its connection."""
        assert self._limit is not None
        logger.debug("socket API: %s refused: %d clients connected", conn.name,
                     self._limit.count)
        with contextlib.suppress(ConnectionError, TimeoutError):
            conn.writer.write(render_result("", None, ApiResult(
                ResultCode.API_TOO_MANY_CLIENTS, self._limit.refusal(conn.address))) + CRLF)
            await asyncio.wait_for(conn.writer.drain(), CLOSE_TIMEOUT)
        await _close(conn.writer, False)

    async def _answer_partial(self, conn: _Connection, framer: MessageFramer) -> None:
        pending = framer.flush()
        if pending is not None:
            await self._answer(conn, pending)

    async def _answer(self, conn: _Connection, message: bytes) -> None:
        if conn.handlers is None:
            # EVENTS subscribes this connection: a handler of its own, run with the
            # dispatcher's checks like any other.
            conn.handlers = {"EVENTS": partial(self._subscribe, conn,
                                               asyncio.get_running_loop())}
        dispatcher = self._dispatcher
        # Read here when that is cheap: its TYPE says its lane, a request that waits for
        # nothing is then answered at once, and any other reaches its worker parsed.
        request = dispatcher.read_bounded(message)
        lane = self._lanes.general if request is None else self._lanes.of(request.type)
        try:
            client = f"socket API {conn.name}"
            result = None
            logged = False
            if (request is not None and request.type in INLINE_TYPES
                    and (self._access is None or self._access.checked_in_memory(
                        conn.identity, request.type, request.params))
                    and lane.take_idle()):
                try:
                    result, logged = self._inline(conn, message, request, client)
                finally:
                    lane.give_back()
            if result is not None:
                pass
            elif self._access is not None:
                result = await lane.run(partial(self._checked, conn, message, request,
                                                conn.handlers, logged=logged))
            elif request is None:
                result = await lane.run(partial(dispatcher.handle_xml, message, conn.handlers,
                                                client))
            else:
                result = await lane.run(partial(dispatcher.handle, request, conn.handlers,
                                                client))
        except QueueFull:
            # Parsed here on the loop (bounded by max_message_bytes, and rare) so the refusal
            # still carries the request's TYPE and REQUESTID.
            result = self._dispatcher.refuse_xml(message, ApiResult(
                ResultCode.API_COMMAND_QUEUE_FULL, lane.full_message()))
        await self._send(conn.writer, result)
        if conn.subscription is not None and conn.stream is None:
            # Only now, so the RESULT goes out before the first event.
            conn.stream = asyncio.create_task(self._stream(conn, conn.subscription))
        if not conn.cti and refused_for_load(result):
            await asyncio.sleep(REFUSED_PAUSE)

    def _inline(self, conn: _Connection, message: bytes, request: ApiRequest,
                client: str) -> tuple[bytes | None, bool]:
        """On the event loop, a request of INLINE_TYPES whose access check needs no database
        (``checked_in_memory``): its RESULT, or None if it would wait for something (then
        nothing of it was done), and whether its request line was logged."""
        access = self._access
        if access is None:
            return self._dispatcher.handle_inline(request, client), False
        log_request("socket", conn.name, None, request.type, request.request_id)
        _, denied = access.socket_check(conn.identity, request.type, request.params)
        if denied is not None:
            return None, True  # refused on a worker, as every refusal is
        return self._dispatcher.handle_inline(request, client), True

    def _checked(self, conn: _Connection, message: bytes, request: ApiRequest | None,
                 handlers: dict[str, Handler] | None, *, logged: bool = False) -> bytes:
        """On a worker: a request logged with its client (unless ``logged`` already), held to
        api.require_auth (a certificate's user for administration), answered, and audited if
        it is a change."""
        access = self._access
        assert access is not None
        if request is None:
            try:
                request = parse_request(message)
            except RequestError:
                # answers the error
                return self._dispatcher.handle_xml(message, handlers, f"socket API {conn.name}")
        if not logged:
            log_request("socket", conn.name, None, request.type, request.request_id)
        principal, denied = access.socket_check(conn.identity, request.type, request.params)
        if denied is not None:
            logger.warning("socket API: %s refused %s: %s", conn.name, request.type,
                           denied.message)
            answer = self._dispatcher.refuse_xml(message, denied.result())
        else:
            answer = self._dispatcher.handle(request, handlers, f"socket API {conn.name}")
        access.audit_request(principal, conn.address, via="socket API",
                             request_type=request.type, params=request.params, answer=answer)
        return answer

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
