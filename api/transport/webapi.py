"""The WebAPI: every request type over HTTP (and HTTPS), at /webAPI.aspx and /webAPI.php in any
case, plus the event interface as Server-Sent Events at /events.

Parameters come from the query string and, for POST, a form body; names are case-insensitive.
The answer is the same RESULT the socket API gives, through the same dispatcher, except for the
media functions (EXPORT, COMBINEDEXPORT/COMBINEEXPORT, MULTIEXPORT): their answer is the media
itself, exported on a worker thread into a temporary file that is then streamed (with HTTP Range
support) and deleted; only their errors are a RESULT. EVENTS answers its RESULT and then keeps
the response open with the events, a line each, as the socket does. See docs/events.md.

For monitoring, ``/metrics`` answers the Prometheus text format and ``/status`` a JSON document
of the service's state (docs/metrics.md), from providers the composition root hands in.

Limits (docs/api-notes.md, "Limits"): a form body over ``max_body`` bytes is answered 16 with
HTTP 413; one not whole by its deadline (httpguard) 16 with HTTP 408; a request finding its
lane's command queue full is answered 47 at once; an event stream over the client limits is
answered 48, and so is a connection over the HTTP connections' limits (httpguard). /metrics and
/status are exempt from the command queues and the client limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from functools import partial
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from recorder.api.context import ApiContext
from recorder.api.dispatcher import LOOP_PARSE_MAX, Dispatcher, Handler
from recorder.api.handlers.events import (
    SSE_PATH,
    EventFilter,
    event_filter,
    params_filter,
    render_event,
    subscribed,
)
from recorder.api.handlers.media import MEDIA_REQUESTS, Media, audit_export, media_handlers
from recorder.api.protocol.params import Params
from recorder.api.protocol.webparams import lookup, merge_params
from recorder.api.protocol.webquery import MAX_FIELDS, TooManyFields, decode_pairs, xml_pairs
from recorder.api.protocol.xmlcodec import render_result
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.api.transport.access import ApiAccess, log_request
from recorder.api.transport.clients import ClientLimit
from recorder.api.transport.connguard import cut, limit_send_buffer
from recorder.api.transport.httpguard import (
    HTTP_LOG,
    GuardedServer,
    HttpGuard,
    guard_of,
    read_body,
    read_form,
    request_address,
)
from recorder.api.transport.loadlimits import REFUSED_PAUSE, Lanes, QueueFull, refused_for_load
from recorder.api.transport.plainmedia import in_executor, temporary_media
from recorder.api.transport.webaccess import WebAccess
from recorder.api.transport.webresponses import metrics_response, status_response
from recorder.events.bus import EventBus, Subscription
from recorder.events.types import Event
from recorder.resultcodes import ResultCode
from recorder.rules.access import Principal

logger = logging.getLogger(__name__)

PAGES = frozenset({"/webapi.aspx", "/webapi.php"})
# On shutdown, connections still busy after this long (a client that stopped reading) are cut.
SHUTDOWN_TIMEOUT = 2.0
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# A request POSTed as the XML the socket API reads (docs/api-notes.md, WebAPI).
XML_TYPES = frozenset({"text/xml", "application/xml"})
MAX_BODY = 1 << 20
# An idle keep-alive connection is closed after this long (aiohttp's own default is an hour):
# the client limit does not count plain HTTP connections, so they must not linger.
KEEPALIVE_SECONDS = 75.0
# A request the WebAPI answered without reading its whole body (a body too slow or not a
# form) is read on for at most this long, so that the client sees the answer rather than a
# reset (aiohttp's own default is 10 s, which a slow body would use to the full).
LINGER_SECONDS = 1.0
# An idle event stream gets a comment this often, so proxies keep it open and a client that
# has gone away is noticed.
HEARTBEAT_SECONDS = 15.0
CHECK_SECONDS = 1.0  # how soon a stream notices its client has gone
SSE_RETRY_MS = 3000
METRICS_PATH = "/metrics"
STATUS_PATH = "/status"



# The text of /metrics, and the JSON-able document of /status; each runs on a worker thread.
MetricsProvider = Callable[[], str]
StatusProvider = Callable[[], Mapping[str, Any]]


class WebApi:
    """Serves the WebAPI over HTTP, and over HTTPS on a second port when given a TLS context.

    ``lanes`` and ``clients`` are the limits it shares with the socket API, ``connections``
    those of its own HTTP connections; without them, requests run on ``executor`` unbounded and
    nothing is counted.
    """

    def __init__(self, dispatcher: Dispatcher, executor: Executor,
                 events: EventBus | None = None,
                 heartbeat_seconds: float = HEARTBEAT_SECONDS, *,
                 metrics: MetricsProvider | None = None, status: StatusProvider | None = None,
                 diagnostics_executor: Executor | None = None,
                 lanes: Lanes | None = None, clients: ClientLimit | None = None,
                 connections: ClientLimit | None = None, request_deadline: float = 30.0,
                 max_body: int = MAX_BODY, access: ApiAccess | None = None) -> None:
        self._dispatcher = dispatcher
        self._lanes = lanes or Lanes.unbounded(executor)
        # None: every address served, nobody asked who they are (tests of the transport).
        self._access = WebAccess(access, self._lanes) if access is not None else None
        self._clients = clients
        self._max_body = max_body
        self._metrics = metrics
        self._status = status
        self._diagnostics = diagnostics_executor or executor
        self._events = events
        self._heartbeat = heartbeat_seconds
        self._streams: set[Subscription] = set()
        self._guard = HttpGuard(connections or ClientLimit(1 << 30, what="HTTP connections"),
                                request_deadline)
        self._runner: web.ServerRunner | None = None

    def _make_request(self, message: RawRequestMessage, payload: StreamReader,
                      protocol: web.RequestHandler, writer: AbstractStreamWriter,
                      task: asyncio.Task[None]) -> web.BaseRequest:
        return web.BaseRequest(message, payload, protocol, writer, task,
                               asyncio.get_running_loop(), client_max_size=self._max_body)

    async def start(self, host: str, port: int,
                    ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Listen on ``host``:``port`` (HTTPS with ``ssl_context``); may be called per port."""
        if self._runner is None:
            # aiohttp's low-level server, every path to _handle, its connections guarded.
            server = GuardedServer(self._handle, guard=self._guard,
                                   loop=asyncio.get_running_loop(),
                                   request_factory=self._make_request, access_log=None,
                                   logger=HTTP_LOG, keepalive_timeout=KEEPALIVE_SECONDS,
                                   lingering_time=LINGER_SECONDS)
            self._runner = web.ServerRunner(server, handle_signals=False,
                                            shutdown_timeout=SHUTDOWN_TIMEOUT)
            await self._runner.setup()
        runner = self._runner
        before = len(runner.addresses)
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        await site.start()
        address = runner.addresses[before]
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        for subscription in list(self._streams):
            subscription.close()  # ends the event streams, so shutdown need not cut them
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        guard = guard_of(request)
        if guard is None:
            return await self._serve(request)
        guard.request_began(request.body_exists)
        try:
            return await self._serve(request)
        finally:
            guard.request_ended()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        principal: Principal | None = None
        if self._access is not None:
            admitted = await self._access.admit(request)
            if isinstance(admitted, web.Response):
                return admitted
            principal = admitted
        path = request.path.lower()
        if path not in PAGES:
            log_request("WebAPI", request_address(request), principal, path[:64], None)
        if path == SSE_PATH:
            return await self._event_stream(request)
        if path == METRICS_PATH and self._metrics is not None:
            return await self._diagnostic(request, self._metrics, metrics_response)
        if path == STATUS_PATH and self._status is not None:
            return await self._diagnostic(request, self._status, status_response)
        if path not in PAGES:
            raise web.HTTPNotFound(text="the WebAPI is at /webAPI.aspx or /webAPI.php, its "
                                   f"event stream at {SSE_PATH}\n")
        if request.method not in ("GET", "POST", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "HEAD"])
        try:
            # Not request.query: it turns escapes that are not UTF-8 into U+FFFD.
            pairs = decode_pairs(request.rel_url.raw_query_string)
        except TooManyFields:
            return self._xml(self._refused([], invalid(
                f"the query holds more than {MAX_FIELDS} fields")), status=414)
        try:
            if request.method == "POST" and request.content_type in XML_TYPES:
                try:
                    body = await read_body(request)
                    # As the socket API does: only a short message is parsed on the loop.
                    pairs += (xml_pairs(body) if len(body) <= LOOP_PARSE_MAX
                              else await asyncio.to_thread(xml_pairs, body))
                except TimeoutError:
                    return self._too_slow(request, pairs)
                except ConnectionError:
                    return web.Response(status=400, text="the request body was cut off\n")
            elif request.method == "POST" and request.content_type in FORM_TYPES:
                try:
                    form = await read_form(request)
                except TimeoutError:
                    return self._too_slow(request, pairs)
                except ConnectionError:
                    # The client left before its body was whole: there is nobody to answer,
                    # and nothing for the log (aiohttp would log it with its traceback).
                    return web.Response(status=400, text="the request body was cut off\n")
                except TooManyFields:
                    raise web.HTTPRequestEntityTooLarge(
                        max_size=self._max_body, actual_size=request.content_length or 0
                    ) from None
                for name, value in form:
                    if not isinstance(value, str):
                        raise invalid(f"{name[:40]}: file uploads are not WebAPI parameters")
                    pairs.append((name, value))
            params = merge_params(pairs)
        except web.HTTPRequestEntityTooLarge:
            # The manual's answer, with the status an HTTP client understands.
            return self._xml(self._refused(pairs, invalid(
                f"the request body is longer than {self._max_body} bytes or holds too many "
                "fields")), status=413)
        except RequestError as exc:
            if exc.request_type or exc.request_id is not None:  # read from a broken XML body
                return self._xml(render_result(exc.request_type, exc.request_id,
                                               ApiResult(exc.code, exc.message)))
            return self._xml(self._refused(pairs, exc))
        if self._access is not None:
            denied = self._access.check(request, principal, params)
            if denied is not None:
                assert isinstance(denied.body, bytes)
                await self._access.audit(request, principal, params, denied.body)
                return denied
        request_type = (lookup(params, "TYPE") or lookup(params, "REQUESTTYPE") or "")
        if request_type.strip().upper() in MEDIA_REQUESTS:
            return await self._media(request, params, principal)
        if request_type.strip().upper() == "EVENTS":
            return await self._events_page(request, params)
        body = await self._run(params, client=f"WebAPI {request_address(request)}")
        if self._access is not None:
            await self._access.audit(request, principal, params, body)
        response = self._xml(body)
        if refused_for_load(body) and not self._guard.limit.is_cti(request_address(request)):
            # Answered at once; the connection's next request waits (loadlimits.REFUSED_PAUSE).
            await response.prepare(request)
            await response.write_eof()
            await asyncio.sleep(REFUSED_PAUSE)
        return response

    async def _run(self, params: list[tuple[str, str]],
                   handlers: Mapping[str, Handler] | None = None, client: str = "") -> bytes:
        """The dispatcher's answer, worked out on a worker of the request's lane; 47 when none
        is free soon. ``client``: who asked, for the log."""
        request_type = (lookup(params, "TYPE") or lookup(params, "REQUESTTYPE") or "")
        lane = self._lanes.of(request_type.strip().upper())
        try:
            return await lane.run(partial(self._dispatcher.handle_params, params, handlers,
                                          client))
        except QueueFull:
            return self._dispatcher.refuse_params(params, ApiResult(
                ResultCode.API_COMMAND_QUEUE_FULL, lane.full_message()))

    def _too_slow(self, request: web.BaseRequest, pairs: list[tuple[str, str]]) -> web.Response:
        """16 with HTTP 408 for a body that did not come whole by its deadline; the connection
        is closed, as what is left of the body would otherwise be taken for a request."""
        deadline = self._guard.deadline
        self._guard.timeouts.note(round(deadline))
        response = self._xml(self._refused(pairs, invalid(
            f"the request did not arrive whole within {deadline:g} s of its first byte; "
            "closing the connection")), status=408)
        response.force_close()
        return response

    async def _media(self, request: web.BaseRequest, params: list[tuple[str, str]],
                     principal: Principal | None = None) -> web.StreamResponse:
        """A media function: the exported file as the body, or the RESULT of its error."""
        delivered: list[Media] = []
        body = await self._run(params, media_handlers(delivered.append),
                              f"WebAPI {request_address(request)}")
        if not delivered:
            if self._access is not None:
                await self._access.audit(request, principal, params, body)
            return self._xml(body)
        media = delivered[0]
        await asyncio.get_running_loop().run_in_executor(
            None, partial(audit_export, self._dispatcher.context, request_address(request),
                          params, media, principal))
        return await temporary_media(media.path, {
            "Content-Type": media.content_type,
            "Content-Disposition": f'attachment; filename="{media.filename}"',
            # Recordings are personal data: no cache on the way keeps a copy.
            "Cache-Control": "private, no-store",
        }, in_executor)

    async def _event_stream(self, request: web.BaseRequest) -> web.StreamResponse:
        """``GET /events?class=ALL&value=1001``: the event interface as Server-Sent Events."""
        if request.method != "GET":
            raise web.HTTPMethodNotAllowed(request.method, ["GET"])
        try:
            params = merge_params(decode_pairs(request.rel_url.raw_query_string))
            wanted = event_filter(
                lookup(params, "CLASS") or lookup(params, "EVENTCLASS") or "ALL",
                lookup(params, "VALUE") or lookup(params, "EVENTVALUE"))
        except TooManyFields:
            return self._xml(render_result("EVENTS", "", ApiResult(
                ResultCode.API_INVALID_MESSAGE_FORMAT,
                f"the query holds more than {MAX_FIELDS} fields")), status=414)
        except RequestError as exc:
            return self._xml(render_result("EVENTS", "", ApiResult(exc.code, exc.message)),
                             status=400)
        if self._events is None:
            return self._xml(render_result("EVENTS", "", ApiResult(
                ResultCode.API_COMMAND_NOT_SUPPORTED, "the event interface is not running")),
                status=503)
        if not self._take_client(request):
            return self._xml(render_result("EVENTS", "", self._too_many(request)), status=503)
        try:
            subscription = self._subscribe(request, wanted, "SSE")
        except BaseException:
            self._release_client(request)
            raise
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",  # a proxy must pass each event on as it comes
        })
        result = render_result("EVENTS", "", subscribed(wanted, subscription.xref))
        return await self._stream(
            request, response, subscription,
            first=b"retry: %d\nevent: RESULT\ndata: %s\n\n" % (SSE_RETRY_MS, result),
            frame=lambda event: b"event: %s\ndata: %s\n\n" % (
                event.event_type.encode(), render_event(event, subscription.xref)),
            heartbeat=b": keep-alive\n\n")

    async def _events_page(self, request: web.BaseRequest,
                           params: list[tuple[str, str]]) -> web.StreamResponse:
        """EVENTS on the request page: the RESULT line, then the events as the socket API
        sends them (one ``<CALLCOPYEVENT>`` per CRLF-ended line) for as long as the client
        keeps the response open. Its checks and refusals are the dispatcher's, as for every
        request."""
        loop = asyncio.get_running_loop()
        made: list[Subscription] = []

        wanted_by: list[EventFilter] = []

        def subscribe(ctx: ApiContext, request_params: Params) -> ApiResult:
            # On a worker thread: only what is thread-safe (the bus); the rest on the loop.
            wanted = params_filter(request_params)
            if self._events is None:
                raise RequestError(ResultCode.API_COMMAND_NOT_SUPPORTED,
                                   "the event interface is not running")
            made.append(self._events.subscribe(
                wanted.classes, wanted.devices, name=f"WebAPI {request.remote}", loop=loop,
                on_drop=partial(cut, request.transport) if request.transport else None))
            wanted_by.append(wanted)
            return subscribed(wanted, made[0].xref)

        if not self._take_client(request):
            return self._xml(self._dispatcher.refuse_params(params, self._too_many(request)))
        try:
            body = await self._run(params, {"EVENTS": subscribe},
                                  f"WebAPI {request_address(request)}")
        except BaseException:
            self._release_client(request)
            raise
        if not made:
            self._release_client(request)
            return self._xml(body)
        subscription = made[0]
        self._track(request, subscription, wanted_by[0], "WebAPI")
        response = web.StreamResponse(headers={
            "Content-Type": "text/xml; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        return await self._stream(
            request, response, subscription, first=body + b"\r\n",
            frame=lambda event: render_event(event, subscription.xref) + b"\r\n")

    def _subscribe(self, request: web.BaseRequest, wanted: EventFilter, kind: str,
                   ) -> Subscription:
        assert self._events is not None
        transport = request.transport
        subscription = self._events.subscribe(
            wanted.classes, wanted.devices, name=f"{kind} {request.remote}",
            loop=asyncio.get_running_loop(),
            on_drop=partial(cut, transport) if transport is not None else None)
        self._track(request, subscription, wanted, kind)
        return subscription

    def _track(self, request: web.BaseRequest, subscription: Subscription, wanted: EventFilter,
               kind: str) -> None:
        """A new stream's connection set up (on the loop): small send buffer, known to close."""
        if request.transport is not None:
            limit_send_buffer(request.transport)
        self._streams.add(subscription)
        logger.info("WebAPI: %s subscribed to %s events (%s, EVENTXREF %d)", request.remote,
                    wanted.event_class, kind, subscription.xref)

    async def _stream(self, request: web.BaseRequest, response: web.StreamResponse,
                      subscription: Subscription, *, first: bytes,
                      frame: Callable[[Event], bytes],
                      heartbeat: bytes | None = None) -> web.StreamResponse:
        """Write ``first``, then each event framed, until the client leaves or is cut off."""
        loop = asyncio.get_running_loop()
        try:
            await response.prepare(request)
            await response.write(first)
            quiet_since = loop.time()
            while True:
                try:
                    event = await asyncio.wait_for(subscription.get(), CHECK_SECONDS)
                except TimeoutError:
                    # aiohttp does not interrupt a handler whose client left: look.
                    if request.transport is None or request.transport.is_closing():
                        break
                    if heartbeat is not None and loop.time() - quiet_since >= self._heartbeat:
                        await response.write(heartbeat)
                        quiet_since = loop.time()
                    continue
                if event is None:
                    break
                quiet_since = loop.time()
                await response.write(frame(event))
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        except ConnectionError:
            pass  # the client left, or was cut off for falling behind
        finally:
            subscription.close()
            self._streams.discard(subscription)
            self._release_client(request)
            if not subscription.dropped:
                logger.info("WebAPI: %s unsubscribed (EVENTXREF %d)", request.remote,
                            subscription.xref)
        return response

    async def _diagnostic(self, request: web.BaseRequest, provide: Callable[[], Any],
                          respond: Callable[[Any], web.Response]) -> web.Response:
        """/metrics or /status: the provider's answer, gathered on a diagnostics thread."""
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        loop = asyncio.get_running_loop()
        try:
            return respond(await loop.run_in_executor(self._diagnostics, provide))
        except Exception:
            logger.exception("WebAPI: %s failed", request.path)
            raise web.HTTPInternalServerError(
                text=f"{request.path} could not be gathered; see the recorder's log\n"
            ) from None

    def _take_client(self, request: web.BaseRequest) -> bool:
        """A place for one more event stream among the clients; False when all are taken."""
        return self._clients is None or self._clients.acquire(request_address(request))

    def _release_client(self, request: web.BaseRequest) -> None:
        if self._clients is not None:
            self._clients.release(request_address(request))

    def _too_many(self, request: web.BaseRequest) -> ApiResult:
        message = (self._clients.refusal(request_address(request)) if self._clients is not None
                   else "the recorder serves no more clients; try again later")
        return ApiResult(ResultCode.API_TOO_MANY_CLIENTS, message)

    @staticmethod
    def _refused(pairs: list[tuple[str, str]], exc: RequestError) -> bytes:
        request_type = (lookup(pairs, "TYPE") or lookup(pairs, "REQUESTTYPE") or "").upper()
        return render_result(request_type[:64], (lookup(pairs, "REQUESTID") or "")[:64],
                             ApiResult(exc.code, exc.message))

    @staticmethod
    def _xml(body: bytes, status: int = 200) -> web.Response:
        return web.Response(body=body, status=status, content_type="text/xml",
                            charset="utf-8")
