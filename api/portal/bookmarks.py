"""Bookmarks on a recording (ALLOWCOMMENT): a comment at a time offset, listed on the
recording's page for everyone who may see the recording, audited as ``bookmark``."""

from __future__ import annotations

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.forms import parse_duration
from recorder.api.portal.recordings import visible
from recorder.api.portal.render import duration
from recorder.store.audit import AUDIT_BOOKMARK
from recorder.store.bookmarks import Bookmark

MAX_COMMENT = 1024


async def add(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    ctx, user = req.ctx, req.user
    data = await req.request.post()
    comment = str(data.get("comment", "")).strip()
    problem = None
    try:
        offset = float(parse_duration(str(data.get("offset", "")) or "0"))
    except ValueError:
        problem, offset = "offset: a time in the recording (seconds, m:ss or h:mm:ss)", 0.0
    if row.duration is not None and offset > row.duration + 1:
        problem = f"offset: the recording lasts {duration(row.duration)}"
    if not comment or len(comment) > MAX_COMMENT:
        problem = f"comment: 1 to {MAX_COMMENT} characters"
    if problem is not None:
        raise web.HTTPBadRequest(text=problem)
    trail = ctx.store.bookmarks
    if trail is None:
        raise web.HTTPServiceUnavailable(text="This store keeps no bookmarks.")
    mark = Bookmark(ident=row.ident, user_id=user.user_id, username=user.username,
                    offset=offset, comment=comment, time=ctx.clock())

    def store() -> None:
        trail.add_bookmark(mark)
        ctx.audit(req.entry(AUDIT_BOOKMARK, str(row.ident),
                            f"{duration(offset)} {comment}"[:1024]))

    await ctx.run(store)
    raise web.HTTPSeeOther(f"/recordings/{row.ident}#bookmarks")
