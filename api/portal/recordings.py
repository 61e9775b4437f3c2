"""One recording: its page, its audio for the player (HTTP Range, so the browser can seek),
the download of the stored file, and deleting it (with confirmation).

A recording the user may not see answers 404, as one that does not exist: the page does not
tell whether it is there. Playing from the start sets LISTENEDTO and is audited; the Range
requests of a seek are not (one entry per listening, not per chunk).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.plainmedia import Run, open_plain_media
from recorder.api.portal.renditions import DOWNLOAD_FORMATS, MAIL_FORMATS, SIDES
from recorder.archive.export import MEDIA_TYPES, export_name
from recorder.codecs.convert import probe
from recorder.codecs.stored import is_encrypted
from recorder.errors import CodecError, ResultError
from recorder.resultcodes import ResultCode
from recorder.rules.access import deletion_refused, permits
from recorder.store.audit import AUDIT_DELETE, AUDIT_DOWNLOAD, AUDIT_PLAY
from recorder.store.bookmarks import Bookmark
from recorder.store.records import TYPE_AUDIO, USER_FIELDS, RecordingRow

logger = logging.getLogger(__name__)

# The stored file as downloaded; other formats are made on request (renditions.download).
DOWNLOAD_TYPES = {**MEDIA_TYPES, "vox": "application/octet-stream"}
BLACKOUT_SUFFIX = ".blackout.json"
KEY_SUFFIX = ".key"  # an encrypted recording's wrapped file key (recorder/crypt/keys.py)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
MIN_CAV_PASSWORD = 8  # an encrypted CAV's password (its scrypt makes each guess slow, not few)
MAX_CAV_PASSWORD = 1024


class MediaResponse(web.FileResponse):
    """A recording's file, which the server sends itself, so that its place among
    ``portal.max_clients`` is held until the file has gone; aiohttp's own later prepare is
    then a no-op (FileResponse's would send it again)."""

    def __init__(self, path: Path, headers: dict[str, str], *, temporary: bool = False
                 ) -> None:
        super().__init__(path, headers=headers)
        self._temporary = path if temporary else None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        try:
            return await super().prepare(request)
        finally:
            if self._temporary is not None:  # a download made for this response alone
                self._temporary.unlink(missing_ok=True)


async def visible(req: PortalRequest) -> RecordingRow:
    """The recording the URL names, if the user may see it; 404 otherwise."""
    ident = int(req.request.match_info["ident"])
    row = await req.ctx.run(lambda: req.ctx.store.recordings.get_recording(ident))
    if row is None or not req.user.may_see(row):
        raise web.HTTPNotFound(text="No such recording.")
    return row


def stored_file(req: PortalRequest, row: RecordingRow) -> Path:
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
    row = await visible(req)
    granted = req.user.granted
    store = req.ctx.store
    playable = (row.recording_type == TYPE_AUDIO and bool(row.filename)
                and row.purged_time is None)

    def read() -> tuple[list[Bookmark], tuple[tuple[float, float], ...], int]:
        trail = store.bookmarks
        channels = 1
        if playable:
            # A stereo recording offers its sides; one unreadable here, the player reports.
            with contextlib.suppress(OSError, CodecError):
                channels = probe(Path(row.filename)).channels
        return (trail.list_bookmarks(row.ident) if trail else [],
                store.recordings.recording_blackouts(row.ident), channels)

    marks, blackouts, channels = await req.ctx.run(read)
    return req.page(
        "recording.html", row=row, meta=row.meta, user_fields=USER_FIELDS, bookmarks=marks,
        blackouts=blackouts, timeline=timeline(row.duration, blackouts), stereo=channels == 2,
        may_comment=permits(granted, ((frozenset({"ALLOWCOMMENT"}),))),
        playable=playable, formats=DOWNLOAD_FORMATS, mail_formats=MAIL_FORMATS,
        min_password=MIN_CAV_PASSWORD,
        may_download=permits(granted, ((frozenset({"ALLOWEXPORTDOWNLOAD"}),))),
        may_email=permits(granted, ((frozenset({"ALLOWEXPORTEMAIL"}),))),
        may_delete=permits(granted, ((frozenset({"ALLOWFILEDELETE"}),))))


def timeline(duration: float | None, blackouts: Sequence[tuple[float, float]]
             ) -> dict[str, Any] | None:
    """The player's timeline: its length in milliseconds (the SVG's units, so the marks need
    no inline style, which the Content-Security-Policy forbids) and each blackout's place."""
    if not duration or duration <= 0:
        return None
    width = max(1, round(duration * 1000))
    return {"width": width,
            "blackouts": [{"x": round(a * 1000), "width": max(1, round((b - a) * 1000)),
                           "start": a, "end": b} for a, b in blackouts]}


def _from_start(request: web.Request) -> bool:
    """A request for the audio from its first byte (a new listening, not a seek)."""
    spec = request.headers.get("Range", "").replace(" ", "")
    return spec in ("", "bytes=0-") or spec.startswith("bytes=0-")


async def audio(req: PortalRequest) -> web.StreamResponse:
    """The audio the player plays; ``?side=left|right``: one side of a stereo recording."""
    row = await visible(req)
    stored = stored_file(req, row)
    ctx = req.ctx
    side = req.request.query.get("side", "")
    if side and side not in SIDES:
        raise web.HTTPBadRequest(text=f"side: one of {', '.join(SIDES)}")
    encrypted = await ctx.run(lambda: is_encrypted(stored))

    def play() -> tuple[Path, str]:
        if side:
            return ctx.renditions.side(row, stored, side), "audio/wav"
        return ctx.renditions.playable(row, stored)

    # An encrypted WAV is decrypted (and a G.711 one converted) as it is sent, with no
    # rendition at all; other encrypted audio plays from its stored file (MP3) or from a
    # rendition (VOX, a side) that is an encrypted work file, decrypted as it is sent too.
    streamed = encrypted and not side and stored.suffix.lower() == ".wav"
    try:
        path, content_type = (stored, "audio/wav") if streamed else await ctx.run(play)
    except ValueError as exc:
        raise web.HTTPBadRequest(text="This recording is not stereo.") from exc
    except ResultError as exc:
        return no_room(req, exc, "played")
    except (OSError, CodecError) as exc:
        logger.error("portal: cannot make recording %d playable: %s", row.ident, exc)
        raise web.HTTPInternalServerError(text="The recording cannot be played.") from exc
    if _from_start(req.request):

        def listened() -> None:
            ctx.store.recordings.mark_listened(row.ident)
            ctx.audit(req.entry(AUDIT_PLAY, str(row.ident)))

        await ctx.run(listened)
    headers = {"Content-Type": content_type, "Cache-Control": "private, no-store"}
    if encrypted:
        return await _decrypting(row, path, headers, ctx.run, played=streamed)
    return MediaResponse(path, headers=headers)


async def _decrypting(row: RecordingRow, path: Path, headers: dict[str, str], run: Run, *,
                      played: bool = False, temporary: Path | None = None
                      ) -> web.StreamResponse:
    """An encrypted recording's (or work file's) plain bytes (``played``: a WAV as a browser
    plays it); 500 if it cannot be opened (no key, altered). ``temporary`` is deleted once
    sent."""
    try:
        return await open_plain_media(path, headers, run, played=played, temporary=temporary)
    except (OSError, CodecError) as exc:
        if temporary is not None:
            await run(lambda: temporary.unlink(missing_ok=True))
        logger.error("portal: cannot play recording %d: %s", row.ident, exc)
        raise web.HTTPInternalServerError(text="The recording cannot be played.") from exc


def no_room(req: PortalRequest, refused: ResultError, what: str) -> web.Response:
    """The page for a file the work area would not take (recorder.archive.workspace): 507 if
    there is no room for it, 503 while others are being made; nothing was written."""
    full = refused.code == ResultCode.API_ERROR_OUT_OF_DISK_SPACE
    return req.page("message.html", status=507 if full else 503,
                    title="Not enough room" if full else "Busy",
                    message=f"The recording cannot be {what} now: {refused.message}.",
                    back=f"/recordings/{req.request.match_info['ident']}")


async def download(req: PortalRequest) -> web.StreamResponse:
    """The stored file, or with ``?format=`` the recording converted (an export format; CAV
    as a plain one, its audio checked by a SHA-256)."""
    fmt = req.request.query.get("format", "").strip().lower()
    if fmt and fmt not in DOWNLOAD_FORMATS:
        raise web.HTTPBadRequest(text=f"format: one of {', '.join(DOWNLOAD_FORMATS)}")
    return await _download(req, fmt)


async def download_sealed(req: PortalRequest) -> web.StreamResponse:
    """The recording as a CAV encrypted with a password typed twice (the API's EXPORT with
    MEDIA_FORMAT CAV, ENCRYPT=Y and PASSWORD; docs/cav.md). A form, not a link: the password
    must not be in a URL, a log or the browser's history."""
    data = await req.request.post()
    password = str(data.get("password", ""))
    if len(password) < MIN_CAV_PASSWORD or len(password) > MAX_CAV_PASSWORD:
        raise web.HTTPBadRequest(text=f"password: {MIN_CAV_PASSWORD} to {MAX_CAV_PASSWORD} "
                                      "characters")
    if password != str(data.get("repeat", "")):
        raise web.HTTPBadRequest(text="password: the two passwords differ")
    return await _download(req, "cav", password)


async def _download(req: PortalRequest, fmt: str, password: str | None = None
                    ) -> web.StreamResponse:
    row = await visible(req)
    path = stored_file(req, row)
    ctx = req.ctx
    if fmt:
        try:
            made = await ctx.run(lambda: ctx.renditions.download(row, fmt, password=password))
        except ResultError as exc:
            return no_room(req, exc, f"converted to {fmt}")
        except (OSError, CodecError) as exc:
            logger.error("portal: cannot export recording %d as %s: %s", row.ident, fmt, exc)
            raise web.HTTPInternalServerError(text="The recording cannot be converted.") from exc
        name, content_type = export_name(row, fmt), MEDIA_TYPES.get(fmt, "audio/wav")
    else:
        made = path
        name = f"recording-{row.ident}-{path.name}"
        content_type = DOWNLOAD_TYPES.get(row.media_format, "application/octet-stream")
    sealed = " (encrypted)" if password else ""
    await ctx.run(lambda: ctx.audit(req.entry(AUDIT_DOWNLOAD, str(row.ident),
                                              f"{fmt or 'stored'}{sealed} {name}")))
    headers = {"Content-Type": content_type,
               "Content-Disposition": f'attachment; filename="{_SAFE_NAME.sub("_", name)}"',
               "Cache-Control": "private, no-store"}
    if await ctx.run(lambda: is_encrypted(made)):
        # The stored recording as the engineer would decrypt it, never its ciphertext; a
        # conversion of it is an encrypted work file, decrypted as it is sent, then deleted.
        return await _decrypting(row, made, headers, ctx.run,
                                 temporary=made if made != path else None)
    return MediaResponse(made, temporary=made != path, headers=headers)


async def confirm_delete(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    return req.page("delete.html", row=row, refused=deletion_refused(row, req.ctx.clock()))


async def delete(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    ctx = req.ctx
    refused = deletion_refused(row, ctx.clock())
    if refused is not None:
        return req.page("delete.html", status=409, row=row, refused=refused)

    def remove() -> str | None:
        # In the trail before anything is gone (docs/security.md); a deletion that then
        # fails is a second entry saying why.
        ctx.audit(req.entry(AUDIT_DELETE, str(row.ident), row.filename))
        problem = _remove(row)
        if problem is not None:
            ctx.audit(req.entry(AUDIT_DELETE, str(row.ident), f"not deleted: {problem}"))
        return problem

    def _remove(row: RecordingRow) -> str | None:
        # The file first: once the page says "deleted", the audio is gone, even if the row
        # cannot be removed after it (the row then lists a recording without a file).
        if row.filename:
            path = Path(row.filename)
            if path.resolve().is_relative_to(ctx.recordings_dir.resolve()):
                try:
                    path.unlink(missing_ok=True)
                    Path(row.filename + BLACKOUT_SUFFIX).unlink(missing_ok=True)
                    Path(row.filename + KEY_SUFFIX).unlink(missing_ok=True)
                except OSError as exc:
                    logger.error("portal: cannot delete %s: %s", path, exc)
                    return f"the file cannot be deleted: {exc.strerror or exc}"
        if not ctx.store.recordings.delete_recording(row.ident):
            return "it was locked or changed meanwhile"
        return None

    problem = await ctx.run(remove)
    if problem is not None:
        return req.page("delete.html", status=409, row=row, refused=problem)
    raise web.HTTPSeeOther(f"/recordings?deleted={row.ident}")
