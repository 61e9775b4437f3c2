"""Listening live to a call in progress (ALLOWLIVEMONITOR): its audio as a WAV stream of
unknown length, a second or so behind the line. The live page plays it through the Web Audio
API (``static/portal.js`` reads the stream with ``fetch`` and schedules each piece as it comes):
Chromium's ``<audio>`` element buffers a stream of unknown length for many seconds before it
plays (about 14 s of 8 kHz WAV, and longer for a low-rate MP3), far beyond the delay a live
listener accepts. Any player that reads WAV from a URL (ffplay, VLC) plays it too.

The portal copies the audio from the capture ring itself (``RecordingSession.read_span``: no
lock, nothing of the session changed), so the writer and the capture never wait for a listener.
It follows the recording's own commit delay and zeroes the call's blackouts as the file does, so
a blackout is silence here too. A listener that cannot keep up (a slow network, a paused
browser) is dropped once it falls ``MAX_LAG_SECONDS`` behind: its buffers are bounded (a small
socket send buffer, a small write buffer), and nothing waits for it but its own handler.

The stream ends when the recording does, after ``MAX_SECONDS``, or at the first check (every
``SESSION_CHECK_SECONDS``) that the guard would now refuse it: its session ended (sign-out,
expiry), its user deleted or their password changed, a permission it needs revoked.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

import numpy as np
from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.recordings import visible
from recorder.api.portal.sessions import SESSION_COOKIE, password_mark
from recorder.errors import StoreError
from recorder.recording.session import RecordingSession
from recorder.rules.access import VIEW, needs, permits
from recorder.rules.blackout import zero_ranges
from recorder.store.audit import AUDIT_LISTEN

logger = logging.getLogger(__name__)

CHUNK_SECONDS = 0.2  # audio is sent this often
LEAD_SECONDS = 0.5  # a stream starts this far behind live: the browser's first buffer
MAX_LAG_SECONDS = 4.0  # a listener this far behind live is dropped
MAX_SECONDS = 4 * 3600.0  # one stream at most this long (a new one goes through the guard)
SESSION_CHECK_SECONDS = 5.0  # how often a stream checks its session still lives
SEND_BUFFER_BYTES = 32 * 1024  # the socket's send buffer, so a stalled reader backs up fast
WRITE_BUFFER_BYTES = 16 * 1024  # the transport's, beyond which a write waits
REQUIRES = needs(VIEW, "ALLOWLIVEMONITOR")  # the route's (routes.ROUTES), checked again
# A WAV's sizes when its length is unknown: the largest the header holds. Players read on
# until the stream ends.
_UNKNOWN = 0xFFFFFFFF


def wav_header(sample_rate: int, channels: int) -> bytes:
    """A 16-bit PCM WAV header for a stream of unknown length."""
    block = 2 * channels
    return (b"RIFF" + struct.pack("<I", _UNKNOWN) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block,
                          block, 16)
            + b"data" + struct.pack("<I", _UNKNOWN))


def _bound_buffers(req: PortalRequest) -> None:
    transport = req.request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=WRITE_BUFFER_BYTES)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        except OSError as exc:  # not fatal: the lag check still drops a slow listener
            logger.debug("portal: cannot bound a live stream's send buffer: %s", exc)


def _live_end(session: RecordingSession) -> int:
    """How far the file may have the audio by now: capture minus the commit delay, never past
    the recording's end (MAXRECORDTIME's stop)."""
    end = session.channel.position - session.delay_frames
    return min(end, session.stop_at) if session.stop_at is not None else end


def _final_end(session: RecordingSession) -> int:
    """Where a closed recording's audio ends (its file's last frame)."""
    return session.start + session.writer.frames


async def live(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    ctx = req.ctx
    find = ctx.live_session
    session = await ctx.run(lambda: find(row.ident)) if find is not None else None
    if session is None:
        raise web.HTTPNotFound(text="This recording is not in progress.")
    await ctx.run(lambda: ctx.audit(req.entry(AUDIT_LISTEN, str(row.ident))))
    rate = session.channel.sample_rate
    response = web.StreamResponse(headers={"Content-Type": "audio/wav",
                                           "Cache-Control": "private, no-store"})
    await response.prepare(req.request)
    _bound_buffers(req)
    await response.write(wav_header(rate, session.writer.channels))
    await _follow(req, response, session)
    return response


async def _follow(req: PortalRequest, response: web.StreamResponse,
                  session: RecordingSession) -> None:
    """Send the recording's audio as it is captured until it ends or the listener goes."""
    loop = asyncio.get_running_loop()
    rate = session.channel.sample_rate
    pos = max(session.start, session.channel.oldest, _live_end(session) - round(
        LEAD_SECONDS * rate))
    began = checked = loop.time()
    cookie = req.request.cookies.get(SESSION_COOKIE, "")
    max_lag = round(MAX_LAG_SECONDS * rate)
    try:
        while True:
            closed = session.closed
            end = _final_end(session) if closed else _live_end(session)
            if end - pos > max_lag or pos < session.channel.oldest:
                logger.info("portal: dropped a live listener of %s (%s): %.1f s behind",
                            session.path.name, req.address, (end - pos) / rate)
                _drop(req)
                return
            if end > pos:
                samples, _ = session.read_span(pos, end)
                if not session.blackouts.never:
                    zero_ranges(samples, pos, session.blackouts.ranges())
                data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
                # A write waits only while the listener's buffers are full; waiting longer than
                # the lag allowed means it cannot keep up.
                await asyncio.wait_for(response.write(data), MAX_LAG_SECONDS)
                pos = end
            now = loop.time()
            if closed or now - began > MAX_SECONDS:
                break
            if now - checked > SESSION_CHECK_SECONDS:
                checked = now
                if not await _still_allowed(req, cookie):
                    logger.info("portal: ended a live listener of %s (%s): no longer allowed",
                                session.path.name, req.address)
                    _drop(req)
                    return
            await asyncio.sleep(CHUNK_SECONDS)
        await response.write_eof()
    except (ConnectionResetError, TimeoutError):
        logger.info("portal: dropped a live listener of %s (%s): it went or stalled",
                    session.path.name, req.address)
        _drop(req)


async def _still_allowed(req: PortalRequest, cookie: str) -> bool:
    """What the guard checks at a request, again for a stream that outlasts it: the session
    lives, its user is there, not deleted, their password unchanged, and they still hold what
    the route needs (a revoked permission ends the listening within SESSION_CHECK_SECONDS)."""
    ctx = req.ctx
    found = ctx.sessions.find(cookie, ctx.clock())
    if found is None:
        return False
    directory = ctx.store.directory

    def check() -> bool:
        user = directory.get_user(found.user_id)
        stored = directory.password_hash(found.user_id)
        if user is None or user.deleted or stored is None or \
                password_mark(stored) != found.password_mark:
            return False
        return permits(directory.user_permissions(found.user_id), REQUIRES)

    try:
        return await ctx.run(check)
    except StoreError:
        return True  # the database away for a moment: the next check decides


def _drop(req: PortalRequest) -> None:
    """Close the listener's connection without sending what its buffers hold: it is stalled,
    and a graceful close would wait for it."""
    transport = req.request.transport
    if transport is not None:
        transport.abort()
