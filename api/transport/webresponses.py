"""The WebAPI's answers that are not a RESULT: /metrics, /status, and a media file that is
deleted once sent."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from recorder.telemetry.prometheus import CONTENT_TYPE as METRICS_CONTENT_TYPE


def metrics_response(text: str) -> web.Response:
    return web.Response(body=text.encode("utf-8"),
                        headers={"Content-Type": METRICS_CONTENT_TYPE,
                                 "Cache-Control": "no-cache"})


def status_response(document: Mapping[str, Any]) -> web.Response:
    # allow_nan=False: an infinity or NaN that slipped through is a bug to see, not invalid
    # JSON to send.
    body = json.dumps(document, allow_nan=False, indent=1)
    return web.Response(body=(body + "\n").encode("utf-8"),
                        headers={"Content-Type": "application/json; charset=utf-8",
                                 "Cache-Control": "no-cache"})


class TemporaryFileResponse(web.FileResponse):
    """A file sent (whole, or the Range asked for) and then deleted.

    FileResponse sends everything within ``prepare``, which aiohttp calls once the handler has
    returned; the file goes as soon as that is over, sent or not. (One whose client vanished
    before even that is removed from the work directory at the next start.)
    """

    def __init__(self, path: Path, headers: Mapping[str, str]) -> None:
        super().__init__(path, headers=headers)
        self._temporary = path

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        try:
            return await super().prepare(request)
        finally:
            self._temporary.unlink(missing_ok=True)
