"""One dispatcher, keyed by request type, behind both the socket API and the WebAPI.

It checks REQUESTID and TYPE, runs the handler, and turns every outcome, including a handler's
bug, into a RESULT with the manual's code: no request can crash the service or go unanswered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from recorder.api.context import ApiContext
from recorder.api.handlers import (
    agentwindow,
    calls,
    channels,
    chat,
    email,
    events,
    groups,
    media,
    roles,
    stations,
    status,
    system,
    users,
)
from recorder.api.protocol.params import Params, parse_int
from recorder.api.protocol.xmlcodec import parse_flat_request, parse_request, render_result
from recorder.api.request import ApiRequest, ApiResult, RequestError, invalid
from recorder.calls.requests import WouldBlock
from recorder.errors import ResultError, StoreError
from recorder.resultcodes import ResultCode
from recorder.telemetry.prometheus import Counter, Gauge, Histogram

logger = logging.getLogger(__name__)

Handler = Callable[[ApiContext, Params], ApiResult]

HANDLERS: dict[str, Handler] = {
    "TEST": system.test,
    "CALLSTART": calls.call_start,
    "CALLSTOP": calls.call_stop,
    "CALLUPDATE": calls.call_update,
    "RECORDSTART": calls.record_start,
    "RECORDSTOP": calls.record_stop,
    "BLACKOUTSTART": calls.blackout_start,
    "BLACKOUTSTOP": calls.blackout_stop,
    "AGENTBLACKOUTSTART": calls.agent_blackout_start,
    "AGENTBLACKOUTSTOP": calls.agent_blackout_stop,
    "DEVICELIST": status.device_list,
    "DEVICERECORDINGSTATUS": status.device_recording_status,
    "CALLLIST": status.call_list,
    "DEVICESTATUS": status.device_status,
    "CHANNELS": channels.channels,
    "SYSTEMSTATUS": system.system_status,
    "STATIONS": stations.stations,
    "FETCHTERMINOLOGY": system.fetch_terminology,
    "CHATSTART": chat.chat_start,
    "CHATSTOP": chat.chat_stop,
    "CHATUPDATE": chat.chat_update,
    "IMPORTUSER": users.import_user,
    "IMPORTAGENTPHONE": users.import_agent_phone,
    "IMPORTWORKSTATION": stations.import_workstation,
    "ADDGROUP": groups.add_group,
    "MODIFYGROUPPERMISSION": groups.modify_group_permission,
    "MODIFYROLE": roles.modify_role,
    "MODIFYROLEGROUPPERMISSION": roles.modify_role_group_permission,
    "MODIFYUSERROLE": roles.modify_user_role,
    "MODIFYROLEPERMISSION": roles.modify_role_permission,
    "AGENTWINDOW": agentwindow.agent_window,
    "EMAIL": email.email,
    "COMBINEDEMAIL": email.combined_email,
    # The transports carry these out themselves (a stream, media); HANDLERS answers them where
    # they cannot be: EVENTS on the WebAPI's request page, the media functions on the socket.
    "EVENTS": events.events_elsewhere,
    **dict.fromkeys(media.MEDIA_REQUESTS, media.webapi_only),
}

# The manual's "Deprecated Functions" table: function -> (replacement, version it went in).
DEPRECATED: dict[str, tuple[str | None, str]] = {
    "IMPORTSTATION": ("IMPORTWORKSTATION", "5.3"),
    "MODECHANGE": (None, "5.0"),
    "EXTENSIONPLAYBACKSTART": (None, "5.0"),
    "EXTENSIONPLAYBACKSTOP": (None, "5.0"),
    "RECORDINGDEVICE": (None, "5.0"),
    "RECORDINGDEVICEALIAS": (None, "5.0"),
    "IMPORTAGENT": ("IMPORTUSER", "5.0"),
}

# Request types the manual defines that this release does not carry out yet. They answer 49
# saying so, rather than 10 "unknown", which would tell an integrator their spelling is wrong.
PLANNED: frozenset[str] = frozenset()

# Request types tried on the socket API's event loop, without the hand-over to a worker thread
# and back, when a worker of their lane is idle (so they wait their turn when every worker is
# busy, and the command queue counts them as ever). Their handlers here (INLINE_HANDLERS) touch
# memory only: TEST and FETCHTERMINOLOGY always; CALLSTART and CALLSTOP as long as the call
# waits for nothing (not recorded, no recording to end, no directory read), else they raise
# WouldBlock having changed nothing and the request goes to a worker like any other
# (``Dispatcher.handle_inline`` answers None). Nothing that may touch the disk, the database, a
# mail server or a lock held across any of those runs here.
INLINE_HANDLERS: dict[str, Handler] = {
    "TEST": system.test,
    "FETCHTERMINOLOGY": system.fetch_terminology,
    "CALLSTART": calls.call_start_inline,
    "CALLSTOP": calls.call_stop_inline,
}
INLINE_TYPES: frozenset[str] = frozenset(INLINE_HANDLERS)
# Of those, the types whose handler always answers at once, even one a dispatcher was given in
# place of HANDLERS' (a test's): any other given handler runs on a worker.
_ALWAYS_INLINE = frozenset({"TEST", "FETCHTERMINOLOGY"})

# Call control, which the CTI link sends as calls come and go, and TEST, which it sends to see
# that the link is alive: they run in a lane of their own (workers and queue,
# api.call_control_workers and api.call_control_queue_size), so that no flood of anything else
# (administration, exports, e-mail) can keep a call waiting or have it refused.
CALL_CONTROL_TYPES: frozenset[str] = frozenset({
    "CALLSTART", "CALLSTOP", "CALLUPDATE", "RECORDSTART", "RECORDSTOP", "BLACKOUTSTART",
    "BLACKOUTSTOP", "AGENTBLACKOUTSTART", "AGENTBLACKOUTSTOP", "TEST"})

# The longest message the socket API parses on its event loop to learn its lane (lxml takes
# tens of microseconds for a few KiB, under 0.2 ms for this). No call-control request comes
# near it (its fields are a few KiB in all); a longer one is parsed on a general worker.
LOOP_PARSE_MAX = 64 * 1024

# Requests that change users or their phones. The scheduler keeps each device's agent in memory
# (Scheduler.directory_changed); after one of these it reads them again, unless the request
# cannot have moved or renamed an agent (agents_may_have_moved). Every handler that writes users
# or phones (store.add_user, modify_user, delete_user, assign_phone, unassign_phone) must be
# listed here; tests/test_api_fast_paths.py checks it.
DIRECTORY_CHANGES: frozenset[str] = frozenset({"IMPORTUSER", "IMPORTAGENTPHONE"})
# The answers of a directory change that may have written it: done, or failed part way.
# Every other answer refuses the request as it stood (a full queue, a busy password hasher,
# a bad field, a name taken), the store's writes changing nothing.
_MAY_HAVE_WRITTEN = frozenset({ResultCode.API_OK, ResultCode.API_DATABASE_QUERY_ERROR,
                               ResultCode.API_ERROR_PROCESSING_MESSAGE})

REQUESTID_MAX = 2147483647
ECHO_MAX = 64

# What the request metrics call a TYPE nobody defines, or none: a client's typos must not
# become new time series.
UNKNOWN_TYPE = "UNKNOWN"
NO_TYPE = "NONE"


def agents_may_have_moved(request: ApiRequest, result: ApiResult) -> bool:
    """Whether a directory change (DIRECTORY_CHANGES) may have changed the agent of a device.

    Not when it was refused, nor for a user added without phones (on no device yet): each of
    those would otherwise make the next CALLSTART on every device read the directory, behind
    the administration's writes, and a flood of IMPORTUSER would keep call control waiting.
    """
    if result.code not in _MAY_HAVE_WRITTEN:
        return False
    return not (request.type == "IMPORTUSER"
                and request.params.get("ACTION", "").strip().upper() == "ADD"
                and not request.params.get("PHONES", "").strip())


class RequestStats:
    """Every request answered, by TYPE and RESULTCODE, and how long each took, by TYPE.

    Kept by the dispatcher, which both transports go through; the metrics scrape reads it.
    """

    def __init__(self) -> None:
        self.requests = Counter("recorder_api_requests_total",
                                "API requests answered (socket and WebAPI), by TYPE and "
                                "RESULTCODE", ("type", "code", "result"))
        self.latency = Histogram("recorder_api_request_duration_seconds",
                                 "Time from receiving a request to its RESULT, by TYPE",
                                 ("type",))
        # Kept by the transports' limits (recorder.api.transport.loadlimits), which share this
        # object.
        self.pending = Gauge("recorder_api_requests_pending",
                             "API requests running on a worker or waiting for one (socket "
                             "and WebAPI, both lanes); more than api.workers + "
                             "api.command_queue_size in the general lane are answered 47")
        self.clients = Gauge("recorder_api_clients",
                             "Socket API connections and WebAPI event streams open; more than "
                             "api.max_clients are answered 48")
        self.call_pending = Gauge("recorder_api_call_control_pending",
                                  "Call-control requests (and TEST) running on a call-control "
                                  "worker or waiting for one; more than "
                                  "api.call_control_workers + api.call_control_queue_size are "
                                  "answered 47")
        self.ignored = Counter("recorder_api_ignored_parameters_total",
                               "Parameters of requests answered API_OK that the request type "
                               "does not use (a misspelt <USER01>, say): dropped, and logged "
                               "once per client and name", ("type",))
        self.http_connections = Gauge("recorder_api_http_connections",
                                      "WebAPI (HTTP and HTTPS) connections open; more than "
                                      "api.max_http_connections are answered 48")

    def observe(self, request_type: str, code: ResultCode, seconds: float) -> None:
        self.requests.inc(1, (request_type, str(int(code)), code.label))
        self.latency.observe(seconds, (request_type,))

    @property
    def total(self) -> int:
        return int(self.requests.total())


class Dispatcher:
    """Answers requests: XML messages from the socket, parameter lists from the WebAPI."""

    def __init__(self, ctx: ApiContext, handlers: Mapping[str, Handler] = HANDLERS) -> None:
        self._ctx = ctx
        self._handlers = dict(handlers)
        self._inline = {name: handler if self._handlers.get(name) is HANDLERS.get(name)
                        else self._handlers[name]
                        for name, handler in INLINE_HANDLERS.items()
                        if name in self._handlers and (name in _ALWAYS_INLINE
                                                       or self._handlers[name] is HANDLERS[name])}
        self.stats = RequestStats()
        self._ignored = IgnoredParameters(self.stats)

    @property
    def context(self) -> ApiContext:
        """What handlers are given."""
        return self._ctx

    @context.setter
    def context(self, ctx: ApiContext) -> None:
        # One assignment: a request already running keeps the context it started with, the
        # next one gets the new one (a reload's terminology, say).
        self._ctx = ctx

    def handle_xml(self, message: bytes, handlers: Mapping[str, Handler] | None = None,
                   client: str = "") -> bytes:
        """Answer one socket message with its RESULT (UTF-8, one line).

        ``handlers`` take the place of the shared ones for this request: how a transport
        carries out what only it can (a connection's event subscription, media as an HTTP
        body) with the dispatcher's checks and error handling.
        """
        began = time.perf_counter()
        try:
            request = parse_request(message)
        except RequestError as exc:
            refused = ApiRequest(exc.request_type, exc.request_id)
            result = ApiResult(exc.code, exc.message)
            answer = self._render(refused, result)
            self._observe(refused.type, handlers, result, began)
            return answer
        return self._handle(request, handlers, began, client)

    def read_flat(self, message: bytes) -> ApiRequest | None:
        """``message`` parsed here if it is a flat one-line request, as most are (cheap and
        bounded, fit for the event loop); None for anything else, or a request to refuse:
        ``handle_xml`` it."""
        try:
            return parse_flat_request(message)
        except RequestError:
            return None

    def read_bounded(self, message: bytes) -> ApiRequest | None:
        """``message`` parsed here when that is cheap and bounded, fit for the event loop: a
        flat request by its pattern, any other of at most LOOP_PARSE_MAX bytes by lxml. None
        for a longer message, or one to refuse: ``handle_xml`` it."""
        request = self.read_flat(message)
        if request is not None or len(message) > LOOP_PARSE_MAX:
            return request
        try:
            return parse_request(message)
        except RequestError:
            return None

    def handle_params(self, pairs: Iterable[tuple[str, str]],
                      handlers: Mapping[str, Handler] | None = None, client: str = "") -> bytes:
        """Answer a WebAPI call from its (already de-duplicated) name/value pairs."""
        params = {name.upper(): value.strip() for name, value in pairs}
        request_type = params.pop("TYPE", None) or params.pop("REQUESTTYPE", "")
        params.pop("REQUESTTYPE", None)
        request_id = params.pop("REQUESTID", None)
        return self.handle(ApiRequest(request_type.upper(), request_id, params), handlers,
                           client)

    def refuse_xml(self, message: bytes, result: ApiResult) -> bytes:
        """Answer a socket message with ``result`` without running it (a limit refused it),
        echoing its TYPE and REQUESTID when it has them."""
        began = time.perf_counter()
        try:
            request = parse_request(message)
        except RequestError as exc:
            request = ApiRequest(exc.request_type, exc.request_id)
        answer = self._render(request, result)
        self._observe(request.type, None, result, began)
        return answer

    def refuse_params(self, pairs: Iterable[tuple[str, str]], result: ApiResult) -> bytes:
        """Answer a WebAPI call with ``result`` without running it (a limit refused it)."""
        params = {name.upper(): value.strip() for name, value in pairs}
        request_type = params.pop("TYPE", None) or params.pop("REQUESTTYPE", "")
        request = ApiRequest(request_type.upper(), params.get("REQUESTID"))
        answer = self._render(request, result)
        self._observe(request.type, None, result, time.perf_counter())
        return answer

    def handle_inline(self, request: ApiRequest, client: str = "") -> bytes | None:
        """Answer ``request`` (of INLINE_TYPES) on the caller's thread, the event loop, if it
        waits for nothing; None, having done nothing, if it would: ``handle`` it on a
        worker."""
        if request.type not in self._inline:
            return None
        began = time.perf_counter()
        try:
            result = self._dispatch(request, self._inline, client, inline=True)
        except WouldBlock:
            return None
        answer = self._render(request, result)
        self._observe(request.type, None, result, began)
        return answer

    def handle(self, request: ApiRequest, handlers: Mapping[str, Handler] | None = None,
               client: str = "") -> bytes:
        """Answer ``request``; ``client`` names who sent it (for the log of parameters it
        sent that were not used)."""
        return self._handle(request, handlers, time.perf_counter(), client)

    def _handle(self, request: ApiRequest, handlers: Mapping[str, Handler] | None,
                began: float, client: str = "") -> bytes:
        result = self.dispatch(request, handlers, client)
        logger.debug("%s %s -> %d %s", request.type, request.request_id, result.code,
                     result.message)
        answer = self._render(request, result)
        self._observe(request.type, handlers, result, began)
        return answer

    def _observe(self, request_type: str, handlers: Mapping[str, Handler] | None,
                 result: ApiResult, began: float) -> None:
        if not request_type:
            label = NO_TYPE
        elif (request_type in self._handlers or request_type in (handlers or {})
              or request_type in DEPRECATED or request_type in PLANNED):
            label = request_type
        else:
            label = UNKNOWN_TYPE
        try:
            self.stats.observe(label, ResultCode(result.code), time.perf_counter() - began)
        except Exception:
            # Counting must never cost a client its answer.
            logger.exception("%s: could not count the request", request_type[:ECHO_MAX])

    def _render(self, request: ApiRequest, result: ApiResult) -> bytes:
        request_id = request.request_id or ""
        if _request_id_problem(request_id) is not None:
            request_id = request_id[:ECHO_MAX]  # only a valid REQUESTID is echoed whole
        try:
            return render_result(request.type[:ECHO_MAX], request_id, result)
        except ValueError:
            # A value XML cannot carry reached a result; answer rather than drop the request.
            logger.exception("%s (REQUESTID %s): result could not be written as XML",
                             request.type, request.request_id)
            return render_result(request.type[:ECHO_MAX], request_id, ApiResult(
                ResultCode.API_ERROR_PROCESSING_MESSAGE,
                f"{request.type} failed inside the recorder; see its log"))

    def dispatch(self, request: ApiRequest, handlers: Mapping[str, Handler] | None = None,
                 client: str = "") -> ApiResult:
        if request.type not in DIRECTORY_CHANGES:
            return self._dispatch(request, handlers, client)
        ctx = self._ctx
        result: ApiResult | None = None
        try:
            result = self._dispatch(request, handlers, client)
            return result
        finally:
            if result is None or agents_may_have_moved(request, result):
                try:
                    ctx.scheduler.lookup.directory_changed()
                except Exception:
                    logger.exception("%s: the scheduler could not be told of the directory "
                                     "change", request.type)

    def _dispatch(self, request: ApiRequest, handlers: Mapping[str, Handler] | None,
                  client: str = "", *, inline: bool = False) -> ApiResult:
        try:
            problem = _request_id_problem(request.request_id)
            if problem is not None:
                raise RequestError(ResultCode.API_REQUESTID_INVALID, problem)
            handler = (handlers or {}).get(request.type) or self._handler(request.type)
            params = Params(request.params, request.type)
            result = handler(self._ctx, params)
            if result.code == ResultCode.API_OK and request.params:
                self._ignored.note(request.type, params.unread(), client)
            return result
        except ResultError as exc:
            return ApiResult(exc.code, exc.message)
        except WouldBlock:
            if inline:
                raise
            logger.exception("%s (REQUESTID %s) failed", request.type, request.request_id)
            return ApiResult(ResultCode.API_ERROR_PROCESSING_MESSAGE,
                             f"{request.type} failed inside the recorder; see its log")
        except StoreError:
            # The manual's answer to "a range of possible query problems. Check the API logs".
            logger.exception("%s (REQUESTID %s): database error", request.type,
                             request.request_id)
            return ApiResult(ResultCode.API_DATABASE_QUERY_ERROR,
                             f"{request.type} could not read or write the database; see the "
                             "recorder's log")
        except Exception:
            logger.exception("%s (REQUESTID %s) failed", request.type, request.request_id)
            return ApiResult(ResultCode.API_ERROR_PROCESSING_MESSAGE,
                             f"{request.type} failed inside the recorder; see its log")

    def _handler(self, request_type: str) -> Handler:
        if not request_type:
            raise invalid("the request has no TYPE")
        handler = self._handlers.get(request_type)
        if handler is not None:
            return handler
        if request_type in DEPRECATED:
            replacement, version = DEPRECATED[request_type]
            instead = f"; use {replacement}" if replacement else "; it has no replacement"
            raise RequestError(ResultCode.API_COMMAND_NOT_SUPPORTED,
                               f"{request_type} is not supported since version {version}{instead}")
        if request_type in PLANNED:
            raise RequestError(ResultCode.API_COMMAND_NOT_SUPPORTED,
                               f"{request_type} is not available in this release of the recorder")
        raise RequestError(ResultCode.API_UNKNOWN_MESSAGE_TYPE,
                           f"unknown request type {request_type!r}")


def _request_id_problem(raw: str | None) -> str | None:
    """Why ``raw`` is not a REQUESTID (0 to 2147483647), or None if it is one."""
    if raw is None or raw == "":
        return "REQUESTID is required"
    value = parse_int(raw)
    if value is None:
        return f"REQUESTID must be a whole number, not {raw[:40]!r}"
    if raw.startswith("-") or value > REQUESTID_MAX:
        return f"REQUESTID must be between 0 and {REQUESTID_MAX}"
    return None


class IgnoredParameters:
    """Parameters a request sent that its type never used: counted each time, and logged once
    per client and (type, name) so a CTI link sending <USER01> on every call fills no log.

    The clients remembered are bounded (oldest forgotten first): names come from the network.
    """

    REMEMBERED = 4096

    def __init__(self, stats: RequestStats) -> None:
        self._stats = stats
        self._logged: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, request_type: str, names: list[str], client: str) -> None:
        if not names:
            return
        self._stats.ignored.inc(len(names), (request_type,))
        fresh = []
        with self._lock:
            for name in names:
                key = (client, request_type, name)
                if key in self._logged:
                    continue
                self._logged[key] = None
                if len(self._logged) > self.REMEMBERED:
                    self._logged.popitem(last=False)
                fresh.append(name)
        for name in fresh:
            logger.warning("%s sent <%s> in %s, which does not use it: ignored (logged once "
                           "per client and name)", client or "API", name[:ECHO_MAX],
                           request_type[:ECHO_MAX])
