"""The WebAPI's connections held to the limits: how many may be open (``api.max_http_connections``
in all, ``api.max_clients_per_address`` from one address, places kept for the CTI links), and
how long a request may take to arrive: its request line, headers and body within
``api.message_deadline_seconds`` of its first byte (of the connection's opening, for a new
connection's first request), as the socket API holds its messages.

aiohttp bounds the size of a request line and of the headers, but not the time they or a body
take: a client sending a byte a second holds its connection, its file descriptor and a task
for as long as it likes. Its protocol class (``RequestHandler``) is given here a clock of its
own, started by the first byte of each request and stopped once the WebAPI has read the body:

- over the deadline before the headers are complete: HTTP 408 and the connection closed;
- over it while the body comes (the WebAPI reads the body under ``body_deadline``): the WebAPI
  answers 16 with HTTP 408 and closes the connection.

A connection over the limits is answered at once, before it has said anything, with HTTP 503
and the RESULT of code 48, and closed. docs/api-notes.md, "Limits", lists every limit. The
HTTP layer's log (``HTTP_LOG``: one warning line for a request it cannot parse) is here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from recorder.api.protocol.webquery import decode_pairs
from recorder.api.protocol.xmlcodec import render_result
from recorder.api.request import ApiResult
from recorder.api.transport.clients import ClientLimit, client_address
from recorder.api.transport.loadlimits import RefusalLog
from recorder.resultcodes import ResultCode

logger = logging.getLogger(__name__)


class _MalformedHttp(logging.Filter):
    """aiohttp logs a request it cannot even parse (a line over 8190 bytes, a broken header)
    with a traceback. That is a client's mistake or an attack, not the recorder's error: one
    warning line says what was refused."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "WebAPI: refused a malformed HTTP request (%d): %s"
            record.args = (exc.code, str(exc.message)[:200])
            record.exc_info = record.exc_text = None
        return True


# aiohttp's server log, as the recorder wants it (given to its Server).
HTTP_LOG = logging.getLogger(f"{__name__}.http")
HTTP_LOG.addFilter(_MalformedHttp())

# A refused connection is read (and what it sends dropped) this long at most after its answer,
# so that closing it does not reset the connection before the client has read the answer.
REFUSE_LINGER = 1.0
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n"
             b"\r\n")


class HttpGuard:
    """What the WebAPI's connections share: their limit and a request's deadline (seconds)."""

    def __init__(self, limit: ClientLimit, deadline: float) -> None:
        self.limit = limit
        self.deadline = deadline
        self.timeouts = RefusalLog("WebAPI: requests not whole within %d s of their first byte;"
                                   " %d connection(s) closed")


class GuardedServer(web.Server):
    """aiohttp's low-level server, its connections made by GuardedRequestHandler."""

    def __init__(self, handler: Any, *, guard: HttpGuard, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        handler_kwargs = {k: v for k, v in kwargs.items() if k != "request_factory"}
        super().__init__(handler, loop=loop, **kwargs)
        self._guard = guard
        self._handler_loop = loop
        self._handler_kwargs = handler_kwargs

    def __call__(self) -> web.RequestHandler:
        return GuardedRequestHandler(self, self._guard, loop=self._handler_loop,
                                     **self._handler_kwargs)


class GuardedRequestHandler(web.RequestHandler):
    """One HTTP connection: aiohttp's, with a place among the limits and a request deadline.

    ``began`` is when the request being received began (None: between requests, idle), and
    ``reading`` whether it is still arriving (its body not yet read by the WebAPI).
    """

    def __init__(self, manager: web.Server, guard: HttpGuard, *,
                 loop: asyncio.AbstractEventLoop, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = guard
        self._clock = loop
        self._address = ""
        self._refusing: asyncio.Transport | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False  # the WebAPI is handling a request of this connection
        self.began: float | None = None
        self.reading = False
        self._next_began: float | None = None  # a pipelined request's first byte

    @property
    def body_deadline(self) -> float | None:
        """loop.time() by which the request's body must have come; None: no limit."""
        return self.began + self._guard.deadline if self.reading and self.began else None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._address = client_address(transport.get_extra_info("peername"))
        limit = self._guard.limit
        if not limit.acquire(self._address):
            self._refuse(transport, limit.refusal(self._address))
            return
        super().connection_made(transport)
        if not limit.is_cti(self._address):
            # A connection that never sends a whole request is closed like a slow one; a CTI
            # link's is left to aiohttp's keep-alive, as between requests.
            self._begin(self._clock.time())

    def data_received(self, data: bytes) -> None:
        if self._refusing is not None:
            return  # what a refused client sends is dropped
        if data and not self.reading:
            now = self._clock.time()
            if self._in_request:
                if self._next_began is None:
                    self._next_began = now  # pipelined behind the request being answered
            else:
                self._begin(now)
        super().data_received(data)

    def eof_received(self) -> None:
        if self._refusing is not None:
            self._refusing.close()
            return
        super().eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refusing is not None:
            if self._linger is not None:
                self._linger.cancel()
            self._refusing = None
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._guard.limit.release(self._address)
        super().connection_lost(exc)

    # The WebAPI's side: a request's handling began, its body has been read, it has ended.

    def request_began(self, has_body: bool) -> None:
        self._in_request = True
        if not has_body:
            self.body_read()

    def body_read(self) -> None:
        self.reading = False

    def request_ended(self) -> None:
        self._in_request = False
        following, self._next_began = self._next_began, None
        if following is not None:
            self._begin(following)
        else:
            self.began, self.reading = None, False

    def _begin(self, when: float) -> None:
        self.began, self.reading = when, True
        deadline = when + self._guard.deadline
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._clock.call_at(deadline, self._check)

    def _check(self) -> None:
        """At a request's deadline: close the connection if the request is still arriving
        and the WebAPI has not got it yet (once it has, it holds the body to the deadline)."""
        self._timer = None
        deadline = self.body_deadline
        if deadline is None:
            return
        if self._clock.time() < deadline:
            self._timer = self._clock.call_at(deadline, self._check)
            return
        if self._in_request:
            return  # reading the body: the WebAPI answers 16 at the deadline itself
        self._guard.timeouts.note(round(self._guard.deadline))
        transport = self.transport
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.write(TIMED_OUT)
        self.force_close()

    def _refuse(self, transport: asyncio.Transport, message: str) -> None:
        """Answer 503 with code 48 before the client has said anything, and close."""
        self._refusing = transport
        body = render_result("", None, ApiResult(ResultCode.API_TOO_MANY_CLIENTS, message))
        transport.write(b"HTTP/1.1 503 Service Unavailable\r\n"
                        b"Content-Type: text/xml; charset=utf-8\r\n"
                        b"Content-Length: %d\r\nConnection: close\r\nRetry-After: 5\r\n\r\n"
                        % len(body) + body)
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self._clock.call_later(REFUSE_LINGER, transport.close)


def guard_of(request: web.BaseRequest) -> GuardedRequestHandler | None:
    """The guarded connection a request came on; None for another kind (a test's own)."""
    protocol = request.protocol
    return protocol if isinstance(protocol, GuardedRequestHandler) else None


async def read_form(request: web.BaseRequest) -> list[tuple[str, Any]]:
    """The request's form fields in order, read within its connection's deadline
    (TimeoutError past it). A urlencoded body is decoded as the query string is (UTF-8, else
    Latin-1: api/protocol/webquery.py); multipart by aiohttp (a file part is not a str)."""
    if request.content_type == "application/x-www-form-urlencoded":
        return list(decode_pairs(await read_body(request)))
    guard = guard_of(request)
    async with asyncio.timeout_at(guard.body_deadline if guard is not None else None):
        fields = list((await request.post()).items())
    if guard is not None:
        guard.body_read()
    return fields


async def read_body(request: web.BaseRequest) -> bytes:
    """The request's body, read within its connection's deadline (TimeoutError past it; 413
    past the application's client_max_size)."""
    guard = guard_of(request)
    async with asyncio.timeout_at(guard.body_deadline if guard is not None else None):
        body = await request.read()
    if guard is not None:
        guard.body_read()
    return body


def request_address(request: web.BaseRequest) -> str:
    """The client's address, as the client limits count it (``remote`` is kept by the request,
    so this is the same once its connection has gone)."""
    remote = request.remote
    return client_address((remote, 0)) if remote else ""
