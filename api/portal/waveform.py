"""The recording page's waveform (``/recordings/<id>/peaks``: the peaks of ``peaks.py`` as
JSON, drawn by the page's script on a canvas under the timeline) and its stereo sides (a stereo
recording, a device's two directions or a SIPREC session's two parties, plays both sides or one
alone: ``?side=left|right`` on its audio, a mono rendition of that side)."""

from __future__ import annotations

import logging

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.recordings import no_room, stored_file, visible
from recorder.errors import CodecError, ResultError

logger = logging.getLogger(__name__)


async def peaks(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    stored = stored_file(req, row)
    ctx = req.ctx

    def compute() -> dict[str, object]:
        path, content_type = ctx.renditions.playable(row, stored)
        return ctx.peaks.peaks(path, "mp3" if content_type == "audio/mpeg" else "wav")

    try:
        found = await ctx.run(compute)
    except ResultError as exc:
        return no_room(req, exc, "measured")
    except (OSError, CodecError) as exc:
        logger.error("portal: cannot measure recording %d: %s", row.ident, exc)
        raise web.HTTPInternalServerError(text="The recording cannot be read.") from exc
    return web.json_response(found, headers={"Cache-Control": "private, no-store"})
