"""The WebAPI: every request type over HTTP, at /webAPI.aspx and /webAPI.php in any case.

Parameters come from the query string and, for POST, a form body; names are case-insensitive.
The answer is the same RESULT the socket API gives, through the same dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from aiohttp import web

from recorder.api.dispatcher import Dispatcher
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.api.webparams import lookup, merge_params
from recorder.api.xmlcodec import render_result

logger = logging.getLogger(__name__)

PAGES = frozenset({"/webapi.aspx", "/webapi.php"})
# On shutdown, connections still busy after this long (a client that stopped reading) are cut.
SHUTDOWN_TIMEOUT = 2.0
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
MAX_BODY = 1 << 20


class WebApi:
    """Serves the WebAPI over HTTP on one port."""

    def __init__(self, dispatcher: Dispatcher, executor: Executor) -> None:
        self._dispatcher = dispatcher
        self._executor = executor
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=SHUTDOWN_TIMEOUT)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        address = self._runner.addresses[0]
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.lower() not in PAGES:
            raise web.HTTPNotFound(text="the WebAPI is at /webAPI.aspx or /webAPI.php\n")
        if request.method not in ("GET", "POST", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST", "HEAD"])
        pairs = list(request.query.items())
        try:
            if request.method == "POST" and request.content_type in FORM_TYPES:
                for name, value in (await request.post()).items():
                    if not isinstance(value, str):
                        raise invalid(f"{name[:40]}: file uploads are not WebAPI parameters")
                    pairs.append((name, value))
            params = merge_params(pairs)
        except RequestError as exc:
            return self._xml(self._refused(pairs, exc))
        loop = asyncio.get_running_loop()
        body = await loop.run_in_executor(self._executor, self._dispatcher.handle_params, params)
        return self._xml(body)

    @staticmethod
    def _refused(pairs: list[tuple[str, str]], exc: RequestError) -> bytes:
        request_type = (lookup(pairs, "TYPE") or lookup(pairs, "REQUESTTYPE") or "").upper()
        return render_result(request_type[:64], (lookup(pairs, "REQUESTID") or "")[:64],
                             ApiResult(exc.code, exc.message))

    @staticmethod
    def _xml(body: bytes) -> web.Response:
        return web.Response(body=body, content_type="text/xml", charset="utf-8")
