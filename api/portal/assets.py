"""The static files the pages load (``static/``: CSS, the script that shows times in the
browser's local time), served by name from the package: no CDN, no build step."""

from __future__ import annotations

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.render import STATIC_DIR

_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
# The files there are, read once: a name from the URL is looked up here, never joined to a
# path, so no request can reach outside the directory.
_FILES = {p.name: p for p in STATIC_DIR.iterdir() if p.suffix in _TYPES} \
    if STATIC_DIR.is_dir() else {}


async def static_file(req: PortalRequest) -> web.StreamResponse:
    path = _FILES.get(req.request.match_info["name"])
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": _TYPES[path.suffix],
                                           "Cache-Control": "max-age=3600"})
