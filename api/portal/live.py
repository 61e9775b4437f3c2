"""The live view (ALLOWLIVEMONITOR): boards, channels with their state and level meters, and
the calls being recorded, from the recorder's own status document (what ``/status`` serves),
kept up to date by Server-Sent Events.

A stream lasts ``STREAM_SECONDS`` at most; the browser's EventSource then reconnects through
the server's checks again, so a user deleted or a permission revoked stops seeing it within
that time.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.rules.access import VIEW, permits

INTERVAL_SECONDS = 0.5
STREAM_SECONDS = 60.0
RETRY_MS = 2000
FLOOR_DBFS = -60.0  # the meters' bottom: quieter is shown as silence


def _level(value: Any) -> float:
    """A level for a meter: dBFS, floored (digital silence is -inf, which JSON cannot hold)."""
    if not isinstance(value, int | float) or not math.isfinite(value):
        return FLOOR_DBFS
    return max(FLOOR_DBFS, min(0.0, float(value)))


def live_view(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the live view shows, taken from the status document: nothing else of it (paths,
    counters) reaches the browser."""
    return {
        "boards": [{"name": b.get("name", ""), "driver": b.get("driver", ""),
                    "state": b.get("state", ""), "detail": b.get("detail", "")}
                   for b in status.get("boards", [])],
        "channels": [{"id": c.get("id"), "device": c.get("device", ""),
                      "state": c.get("state", ""), "recording": bool(c.get("recording")),
                      "level": _level(c.get("rms_dbfs")), "peak": _level(c.get("peak_dbfs"))}
                     for c in status.get("channels", [])],
        "calls": [{"recordid": a.get("recordid"), "device": a.get("device", ""),
                   "seconds": a.get("seconds", 0), "paused": bool(a.get("paused"))}
                  for a in status.get("active", [])],
    }


async def _view(req: PortalRequest) -> dict[str, Any]:
    provide = req.ctx.status
    if provide is None:
        raise web.HTTPServiceUnavailable(text="The live view is not available.")
    return live_view(await req.ctx.run(provide))


async def page(req: PortalRequest) -> web.StreamResponse:
    # Listening needs to see the recording too (its route's requirement; the server checks).
    may_listen = permits(req.user.granted, (VIEW,))
    return req.page("live.html", view=await _view(req), floor=FLOOR_DBFS,
                    may_listen=may_listen)


async def stream(req: PortalRequest) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store"})
    await response.prepare(req.request)
    await response.write(f"retry: {RETRY_MS}\n\n".encode())
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    try:
        while loop.time() < ends:
            view = await _view(req)
            await response.write(f"data: {json.dumps(view)}\n\n".encode())
            await asyncio.sleep(INTERVAL_SECONDS)
    except (ConnectionResetError, web.HTTPException):
        return response  # the browser has gone
    await response.write_eof()
    return response
