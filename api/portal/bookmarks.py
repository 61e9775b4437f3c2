"""Bookmarks on a recording (ALLOWCOMMENT): a comment at a time offset, listed on the
recording's page for everyone who may see the recording; its author may edit the comment or
remove the bookmark. Each change is audited as ``bookmark``."""

from __future__ import annotations

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.forms import parse_duration
from recorder.api.portal.recordings import visible
from recorder.api.portal.render import duration
from recorder.rules.access import bookmark_refused
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


async def change(req: PortalRequest) -> web.StreamResponse:
    """A bookmark's comment edited (``action=edit``) or the bookmark removed
    (``action=delete``), by its author (``rules.access.bookmark_refused``)."""
    row = await visible(req)
    ctx, user = req.ctx, req.user
    data = await req.request.post()
    action = str(data.get("action", ""))
    if action not in ("edit", "delete"):
        raise web.HTTPBadRequest(text="this form edits or deletes a bookmark; nothing changed")
    try:
        bookmark_id = int(str(data.get("bookmark", "")))
    except ValueError:
        raise web.HTTPBadRequest(text="bookmark: which one") from None
    comment: str | None = None
    if action == "edit":
        comment = str(data.get("comment", "")).strip()
        if not comment or len(comment) > MAX_COMMENT:
            raise web.HTTPBadRequest(text=f"comment: 1 to {MAX_COMMENT} characters")
    trail = ctx.store.bookmarks
    if trail is None:
        raise web.HTTPServiceUnavailable(text="This store keeps no bookmarks.")

    def apply() -> tuple[int, str] | None:
        mark = trail.get_bookmark(row.ident, bookmark_id)
        if mark is None:
            return 404, "no such bookmark on this recording"
        refused = bookmark_refused(user.user_id, user.granted, mark.user_id)
        if refused is not None:
            return 403, refused
        if not trail.change_bookmark(row.ident, bookmark_id, comment):
            return 404, "no such bookmark on this recording"
        what = f"edited {duration(mark.offset)} {comment}" if comment is not None else \
            f"deleted {duration(mark.offset)} {mark.comment}"
        ctx.audit(req.entry(AUDIT_BOOKMARK, str(row.ident), what[:1024]))
        return None

    problem = await ctx.run(apply)
    if problem is not None:
        status, why = problem
        return req.page("message.html", status=status, title="Not changed",
                        message=f"The bookmark was not changed: {why}.",
                        back=f"/recordings/{row.ident}#bookmarks")
    raise web.HTTPSeeOther(f"/recordings/{row.ident}#bookmarks")
