"""The portal's listener: an aiohttp application on an event loop of its own (``portal-loop``)
with worker threads of its own (``portal-N``), so the portal never takes the WebAPI's
connections, workers or the CTI's places, and the WebAPI's never take the portal's.

Every route of ``routes.ROUTES`` is served through ``_guarded``, which, before the handler:
finds the session (a signed cookie; the user still there, not deleted, password unchanged),
reads the user's permissions afresh, refuses what the route's requirement is not met by (403,
no body of the route's), and refuses a POST without its CSRF token (403). Every answer gets
headers that keep pages out of frames, caches and other origins' scripts.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from recorder.api.portal.context import PortalContext, PortalRequest
from recorder.api.portal.recordings import MediaResponse
from recorder.api.portal.render import Templates
from recorder.api.portal.renditions import Renditions
from recorder.api.portal.routes import ROUTES, Route
from recorder.api.portal.sessions import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    Sessions,
    Signer,
    load_key,
)
from recorder.api.portal.throttle import SignInThrottle
from recorder.api.transport.access import AddressRefusals
from recorder.archive.mailer import Mailer
from recorder.archive.workspace import ExportWorkspace
from recorder.calls.blackouts import BlackoutControl
from recorder.config.portal import PortalConfig
from recorder.errors import StartupError, StoreError
from recorder.recording.session import RecordingSession
from recorder.rules.access import missing
from recorder.rules.addresses import Networks
from recorder.store.factory import Store
from recorder.tls import server_context
from recorder.worker import Worker

logger = logging.getLogger(__name__)

START_TIMEOUT = 30.0
HEARTBEAT_INTERVAL = 0.25
MAX_FORM_BYTES = 64 * 1024  # the portal's forms are small; nothing is uploaded
SHUTDOWN_TIMEOUT = 2.0
SECURITY_HEADERS = {
    # Scripts and styles from the portal only, never inline; no frames; forms post here only.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def tls_context(config: PortalConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    return server_context("portal.tls_cert", config.tls_cert, config.tls_key)


class PortalServer(Worker):
    """The portal; ``start`` returns once it listens (``address``), or raises StartupError."""

    def __init__(self, config: PortalConfig, store: Store, data_dir: Path,
                 recordings_dir: Path, *, clock: Callable[[], float] = time.time,
                 status: Callable[[], Mapping[str, Any]] | None = None,
                 directory_changed: Callable[[], None] | None = None,
                 live_session: Callable[[int], RecordingSession | None] | None = None,
                 mailer: Mailer | None = None,
                 blackouts: BlackoutControl | None = None,
                 exports: ExportWorkspace | None = None) -> None:
        super().__init__("portal-loop")
        self._config = config
        self._executor = ThreadPoolExecutor(config.workers, thread_name_prefix="portal")
        self._tls = tls_context(config)
        self.ctx = PortalContext(
            config=config, store=store,
            sessions=Sessions(Signer(load_key(data_dir)), config.session_idle_seconds,
                              config.session_max_seconds),
            throttle=SignInThrottle(config.signin_attempts_per_minute,
                                    config.max_failed_signins, config.lockout_seconds),
            templates=Templates(), executor=self._executor, recordings_dir=recordings_dir,
            renditions=Renditions(data_dir / "tmp" / "portal", workspace=exports),
            secure=self._tls is not None,
            clock=clock, status=status, live_session=live_session, mailer=mailer,
            blackouts=blackouts)
        if directory_changed is not None:
            self.ctx.directory_changed = directory_changed
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._in_flight = 0
        self._allowed = Networks(config.allow)
        self._refusals = AddressRefusals("portal", "portal.allow")
        self.address: tuple[str, int] = ("", 0)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"{'https' if self._tls else 'http'}://{host}:{port}/"

    def start(self) -> None:
        super().start()
        if not self._ready.wait(START_TIMEOUT):
            raise StartupError(f"the portal did not start within {START_TIMEOUT:.0f} s")
        if self._error is not None:
            super().join()
            self._executor.shutdown(wait=False)
            raise self._error
        logger.info("portal listening on %s", self.url)

    def stop(self) -> None:
        super().stop()
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def join(self, timeout: float | None = None) -> bool:
        ended = super().join(timeout)
        self._executor.shutdown(wait=True)
        return ended

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
            else:
                logger.exception("portal event loop failed")

    def application(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM_BYTES)
        for route in ROUTES:
            app.router.add_route(route.method, route.path, self._guarded(route))
        app.on_response_prepare.append(_secure_headers)
        return app

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self.application(), access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        config = self._config
        try:
            site = web.TCPSite(runner, config.host, config.port, ssl_context=self._tls)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            self._error = StartupError(f"portal.port: cannot listen on {config.host}:"
                                       f"{config.port}: {exc.strerror or exc}",
                                       port_busy=exc.errno == errno.EADDRINUSE)
            self._ready.set()
            return
        server = site._server  # aiohttp keeps the bound socket there (port 0 picks one)
        sockets = getattr(server, "sockets", None) or []
        self.address = sockets[0].getsockname()[:2] if sockets else (config.host, config.port)
        self._beat()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()
        assert self._loop is not None
        self._loop.call_later(HEARTBEAT_INTERVAL, self._beat)

    def _guarded(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        ctx = self.ctx

        async def handle(request: web.Request) -> web.StreamResponse:
            address = request.remote or ""
            if address not in self._allowed:
                self._refusals.note(address)
                return web.Response(status=403, text="The portal does not serve this address "
                                    "(portal.allow).")
            if self._in_flight >= self._config.max_clients:
                return web.Response(status=503, text="The portal is busy; try again shortly.")
            self._in_flight += 1
            try:
                try:
                    response = await self._serve(route, request, ctx)
                except StoreError as exc:
                    # The database away (a disk, a lock held too long): a page saying so,
                    # not a traceback; recording goes on regardless (the outage spool).
                    logger.error("portal: %s %s: the database failed: %s", request.method,
                                 request.path, exc)
                    return web.Response(status=503, text="The recorder's database cannot be "
                                        "read just now; try again shortly.")
                if isinstance(response, MediaResponse):
                    # Sent here, so the place is held until the file has gone (or the client
                    # has): a stream is a client as much as a page is.
                    await response.prepare(request)
                    await response.write_eof()
                return response
            finally:
                self._in_flight -= 1

        return handle

    async def _serve(self, route: Route, request: web.Request, ctx: PortalContext
                     ) -> web.StreamResponse:
        req = PortalRequest(request, ctx, request.remote or "")
        if route.identify:
            await self._identify(req)
        if not route.public:
            if req.principal is None:
                if request.method == "GET" and not route.media:
                    raise web.HTTPSeeOther(
                        "/signin?" + urlencode({"next": request.path_qs})
                        if request.path != "/" else "/signin")
                return req.page("message.html", status=403, title="Not signed in",
                                message="Sign in first.")
            lacking = missing(req.user.granted, route.requires)
            if lacking:
                names = " and ".join(" or ".join(sorted(clause)) for clause in lacking)
                return req.page("message.html", status=403, title="Not allowed",
                                message=f"This page needs the permission {names}.")
        if request.method == "POST" and not await self._csrf_ok(route, req):
            return req.page("message.html", status=403, title="Form expired",
                            message="The form was not sent from this portal's page, or has "
                                    "expired; go back, reload it and send it again.")
        return await route.handler(req)

    async def _identify(self, req: PortalRequest) -> None:
        """The request's session and principal, if its cookie names a live session of a user
        still there, not deleted, whose password has not changed since."""
        ctx = req.ctx
        cookie = req.request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return
        session = ctx.sessions.find(cookie, ctx.clock())
        if session is None:
            return
        directory, cache = ctx.store.directory, ctx.access
        # The directory's version without waiting for the connection (on this loop): the
        # user's access as kept if it has not changed, else read on a worker.
        access = cache.get(session.user_id, directory.directory_version(wait=False))
        if access is None:
            access = await ctx.run(lambda: cache.load(directory, session.user_id))
        principal = access.principal(session)
        if principal is None:
            logger.info("portal: ended the session of %s (user deleted or password changed)",
                        session.username)
            ctx.sessions.end_user(session.user_id)
            return
        req.session = session
        req.principal = principal

    async def _csrf_ok(self, route: Route, req: PortalRequest) -> bool:
        data = await req.request.post()
        token = str(data.get("csrf", ""))
        if route.csrf == "signin":
            cookie = req.request.cookies.get(PRESESSION_COOKIE, "")
            return bool(token) and req.ctx.sessions.signin_token_ok(cookie, token)
        return (req.session is not None and bool(token)
                and hmac.compare_digest(token.encode(), req.session.csrf.encode()))


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Cache-Control", "no-store")
