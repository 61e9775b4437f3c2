"""Signing in and out: the form, the password check (the store's hash, constant-time), the
limits (``throttle``), the session cookie, and the audit entries of each."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import cache
from urllib.parse import urlsplit

from aiohttp import web

from recorder.api.portal.context import PortalContext, PortalRequest
from recorder.api.portal.sessions import (
    PRESESSION_COOKIE,
    SESSION_COOKIE,
    password_mark,
)
from recorder.store.audit import (
    AUDIT_SIGNIN,
    AUDIT_SIGNIN_FAILED,
    AUDIT_SIGNOUT,
    AuditEntry,
)
from recorder.store.directory import UserQuery
from recorder.store.passwords import hash_password, verify_password

logger = logging.getLogger(__name__)

MAX_USERNAME = 255  # IMPORTUSER's USERNAME
MAX_PASSWORD = 1024  # its PASSWORD (docs/api-notes.md)
WRONG = "Wrong user name or password."


@cache
def _decoy_hash() -> str:
    # An unknown user name is checked against this, so it costs the same scrypt as a known one
    # and the answer's timing does not tell which names exist.
    return hash_password("not a password anyone has")


def set_cookie(ctx: PortalContext, response: web.StreamResponse, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="Strict", secure=ctx.secure,
                        path="/")


def _next_page(raw: str) -> str:
    """Where to go after signing in: a path of this site only (never //host or a scheme)."""
    parts = urlsplit(raw)
    if (not raw.startswith("/") or raw.startswith("//") or parts.scheme or parts.netloc
            or "\\" in raw):
        return "/"
    return raw


def _form(req: PortalRequest, status: int = 200, message: str = "", username: str = "",
          next_page: str = "/") -> web.Response:
    cookie, token = req.ctx.sessions.presession()
    response = req.page("signin.html", status=status, signin_csrf=token, message=message,
                        username=username, next_page=next_page)
    set_cookie(req.ctx, response, PRESESSION_COOKIE, cookie)
    return response


async def form(req: PortalRequest) -> web.StreamResponse:
    if req.principal is not None:
        raise web.HTTPSeeOther("/")
    return _form(req, next_page=_next_page(req.request.query.get("next", "/")))


async def submit(req: PortalRequest) -> web.StreamResponse:
    ctx = req.ctx
    data = await req.request.post()
    username = str(data.get("username", "")).strip()[:MAX_USERNAME]
    password = str(data.get("password", ""))
    next_page = _next_page(str(data.get("next", "/")))
    now = ctx.clock()
    if not ctx.throttle.admit(req.address, now):
        return req.page("message.html", status=429, title="Too many attempts",
                        message="Too many sign-in attempts from this address; wait a minute.")
    if not username or not password or len(password) > MAX_PASSWORD:
        return _form(req, 401, WRONG, username, next_page)
    locked = ctx.throttle.locked(username, now)
    if locked:
        await ctx.run(lambda: ctx.audit(_failed(req, username, "locked out")))
        minutes = max(1, round(locked / 60))
        return _form(req, 403, f"Too many failed sign-ins: {username} is locked out for "
                     f"about {minutes} minute(s).", username, next_page)

    def check() -> tuple[int, str, str] | None:
        found = ctx.store.directory.find_users(UserQuery(username=username))
        user = found[0] if len(found) == 1 else None
        stored = ctx.store.directory.password_hash(user.user_id) if user else None
        ok = verify_password(password, stored or _decoy_hash())
        if user is None or stored is None or not ok:
            return None
        return user.user_id, user.username, stored

    async with ctx.password_checks:
        found = await ctx.run(check)
    if found is None:
        if ctx.throttle.failed(username, now):
            logger.warning("portal: %r locked out for %.0f s after %d failed sign-ins from %s",
                           username, ctx.config.lockout_seconds, ctx.config.max_failed_signins,
                           req.address)
        await ctx.run(lambda: ctx.audit(_failed(req, username)))
        return _form(req, 401, WRONG, username, next_page)
    user_id, name, stored = found
    ctx.throttle.succeeded(username)
    _, cookie = ctx.sessions.start(user_id, name, password_mark(stored), now)
    entry = replace(req.entry(AUDIT_SIGNIN, name), user_id=user_id, username=name)
    await ctx.run(lambda: ctx.audit(entry))
    response = web.HTTPSeeOther(next_page)
    set_cookie(ctx, response, SESSION_COOKIE, cookie)
    response.del_cookie(PRESESSION_COOKIE, path="/")
    raise response


def _failed(req: PortalRequest, username: str, detail: str = "") -> AuditEntry:
    # Under the name that was tried (no user id: nobody signed in), so the trail of a user
    # name shows the attempts on it.
    return replace(req.entry(AUDIT_SIGNIN_FAILED, username, detail), username=username)


async def signout(req: PortalRequest) -> web.StreamResponse:
    ctx = req.ctx
    if req.session is not None:
        ctx.sessions.end(req.session.session_id)
    await ctx.run(lambda: ctx.audit(req.entry(AUDIT_SIGNOUT, req.user.username)))
    response = web.HTTPSeeOther("/signin")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
