"""System status (ALLOWSYSTEMCONFIG): health, disk, database, boards and the recording counts,
from the recorder's status document (what ``/status`` serves to monitoring)."""

from __future__ import annotations

from aiohttp import web

from recorder.api.portal.context import PortalRequest


def _size(count: object) -> str:
    if not isinstance(count, int | float):
        return ""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return ""


async def page(req: PortalRequest) -> web.StreamResponse:
    provide = req.ctx.status
    if provide is None:
        raise web.HTTPServiceUnavailable(text="The system status is not available.")
    status = await req.ctx.run(provide)
    return req.page("system.html", doc=status, size=_size)
