"""One recording: its page, its audio for the player (HTTP Range, so the browser can seek),
the download of the stored file, and deleting it (with confirmation).

A recording the user may not see answers 404, as one that does not exist: the page does not
tell whether it is there. Playing from the start sets LISTENEDTO and is audited; the Range
requests of a seek are not (one entry per listening, not per chunk).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from recorder.api.portal.context import PortalRequest
from recorder.rules.access import deletion_refused, permits
from recorder.store.audit import AUDIT_DELETE, AUDIT_DOWNLOAD, AUDIT_PLAY
from recorder.store.records import TYPE_AUDIO, USER_FIELDS, RecordingRow

logger = logging.getLogger(__name__)

# What the browser's audio element is given for each stored format. VOX (OKI ADPCM) has no
# browser decoder: it needs a transcoded rendition (docs/portal.md, not yet).
PLAYABLE = {"wav": "audio/wav", "wav-ulaw": "audio/wav", "wav-alaw": "audio/wav",
            "mp3": "audio/mpeg"}
DOWNLOAD_TYPES = {**PLAYABLE, "vox": "application/octet-stream"}
BLACKOUT_SUFFIX = ".blackout.json"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class MediaResponse(web.FileResponse):
    """A recording's file, which the server sends itself, so that its place among
    ``portal.max_clients`` is held until the file has gone; aiohttp's own later prepare is
    then a no-op (FileResponse's would send it again)."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        return await super().prepare(request)


async def _visible(req: PortalRequest) -> RecordingRow:
    """The recording the URL names, if the user may see it; 404 otherwise."""
    ident = int(req.request.match_info["ident"])
    row = await req.ctx.run(lambda: req.ctx.store.recordings.get_recording(ident))
    if row is None or not req.user.may_see(row):
        raise web.HTTPNotFound(text="No such recording.")
    return row


def _stored_file(req: PortalRequest, row: RecordingRow) -> Path:
    """The recording's file, if it has one still and it lies under the recordings directory
    (a row is never trusted to point elsewhere); 404 otherwise."""
    if row.recording_type != TYPE_AUDIO or not row.filename or row.purged_time is not None:
        raise web.HTTPNotFound(text="This recording has no audio file (purged or screen only).")
    root = req.ctx.recordings_dir.resolve()
    path = Path(row.filename).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound(text="The recording's file is missing.")
    return path


async def show(req: PortalRequest) -> web.StreamResponse:
    row = await _visible(req)
    granted = req.user.granted
    return req.page(
        "recording.html", row=row, meta=row.meta, user_fields=USER_FIELDS,
        playable=row.media_format in PLAYABLE and bool(row.filename)
        and row.purged_time is None,
        may_download=permits(granted, ((frozenset({"ALLOWEXPORTDOWNLOAD"}),))),
        may_delete=permits(granted, ((frozenset({"ALLOWFILEDELETE"}),))))


def _from_start(request: web.Request) -> bool:
    """A request for the audio from its first byte (a new listening, not a seek)."""
    spec = request.headers.get("Range", "").replace(" ", "")
    return spec in ("", "bytes=0-") or spec.startswith("bytes=0-")


async def audio(req: PortalRequest) -> web.StreamResponse:
    row = await _visible(req)
    content_type = PLAYABLE.get(row.media_format)
    if content_type is None:
        raise web.HTTPUnsupportedMediaType(
            text=f"{row.media_format} recordings cannot be played in a browser yet; download "
                 "the file instead.")
    path = _stored_file(req, row)
    if _from_start(req.request):
        ctx = req.ctx

        def listened() -> None:
            ctx.store.recordings.mark_listened(row.ident)
            ctx.audit(req.entry(AUDIT_PLAY, str(row.ident)))

        await ctx.run(listened)
    return MediaResponse(path, headers={"Content-Type": content_type,
                                           "Cache-Control": "private, no-store"})


async def download(req: PortalRequest) -> web.StreamResponse:
    row = await _visible(req)
    path = _stored_file(req, row)
    ctx = req.ctx
    await ctx.run(lambda: ctx.audit(req.entry(AUDIT_DOWNLOAD, str(row.ident), path.name)))
    name = _SAFE_NAME.sub("_", f"recording-{row.ident}-{path.name}")
    return MediaResponse(path, headers={
        "Content-Type": DOWNLOAD_TYPES.get(row.media_format, "application/octet-stream"),
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "private, no-store"})


async def confirm_delete(req: PortalRequest) -> web.StreamResponse:
    row = await _visible(req)
    return req.page("delete.html", row=row, refused=deletion_refused(row, req.ctx.clock()))


async def delete(req: PortalRequest) -> web.StreamResponse:
    row = await _visible(req)
    ctx = req.ctx
    refused = deletion_refused(row, ctx.clock())
    if refused is not None:
        return req.page("delete.html", status=409, row=row, refused=refused)

    def remove() -> str | None:
        # The file first: once the page says "deleted", the audio is gone, even if the row
        # cannot be removed after it (the row then lists a recording without a file).
        if row.filename:
            path = Path(row.filename)
            if path.resolve().is_relative_to(ctx.recordings_dir.resolve()):
                try:
                    path.unlink(missing_ok=True)
                    Path(row.filename + BLACKOUT_SUFFIX).unlink(missing_ok=True)
                except OSError as exc:
                    logger.error("portal: cannot delete %s: %s", path, exc)
                    return f"the file cannot be deleted: {exc.strerror or exc}"
        if not ctx.store.recordings.delete_recording(row.ident):
            return "it was locked or changed meanwhile"
        ctx.audit(req.entry(AUDIT_DELETE, str(row.ident), row.filename))
        return None

    problem = await ctx.run(remove)
    if problem is not None:
        return req.page("delete.html", status=409, row=row, refused=problem)
    raise web.HTTPSeeOther(f"/recordings?deleted={row.ident}")
