"""The user's own account and the audit trail: changing one's password (ALLOWCHANGEPASSWORD)
and reading the trail (AUDITREPORTING), on a page or as CSV."""

from __future__ import annotations

import csv
import io
import time

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.forms import parse_time
from recorder.api.portal.sessions import password_mark
from recorder.store.audit import AUDIT_PASSWORD, AuditEntry, AuditQuery
from recorder.store.directory import UserFields
from recorder.store.passwords import hash_password, verify_password

MIN_PASSWORD = 10  # as recorderctl user asks
MAX_PASSWORD = 1024
AUDIT_PAGE = 200
CSV_ROWS = 100_000
# A spreadsheet runs a cell that starts with one of these as a formula; a user name typed into
# the sign-in form must not become one in the auditor's spreadsheet.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


async def password_form(req: PortalRequest) -> web.StreamResponse:
    return req.page("password.html", message="", done=False)


async def change_password(req: PortalRequest) -> web.StreamResponse:
    ctx, session = req.ctx, req.session
    assert session is not None
    data = await req.request.post()
    current = str(data.get("current", ""))
    new, again = str(data.get("new", "")), str(data.get("again", ""))
    if new != again:
        return req.page("password.html", status=400, message="The new passwords differ.",
                        done=False)
    if not MIN_PASSWORD <= len(new) <= MAX_PASSWORD:
        return req.page("password.html", status=400, done=False,
                        message=f"A password has {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    directory = ctx.store.directory
    user_id = req.user.user_id

    def change() -> str | None:
        stored = directory.password_hash(user_id)
        if stored is None or len(current) > MAX_PASSWORD or not verify_password(current, stored):
            return None
        made = hash_password(new)
        directory.modify_user(user_id, UserFields(password_hash=made), now=time.time())
        ctx.audit(req.entry(AUDIT_PASSWORD, req.user.username))
        return made

    async with ctx.password_checks:
        made = await ctx.run(change)
    if made is None:
        return req.page("password.html", status=403, done=False,
                        message="The current password is wrong.")
    # This session goes on; the user's other sessions end at their next request.
    session.password_mark = password_mark(made)
    return req.page("password.html", message="", done=True)


def _audit_query(req: PortalRequest, limit: int) -> tuple[AuditQuery, dict[str, str], list[str]]:
    raw = req.request.query
    values = {k: raw.get(k, "").strip()[:255] for k in ("user", "action", "from", "to", "tz")}
    problems: list[str] = []
    tz = int(values["tz"]) if values["tz"].lstrip("-").isdigit() else 0
    bounds: dict[str, float | None] = {"from": None, "to": None}
    for name in bounds:
        if values[name]:
            try:
                bounds[name] = parse_time(values[name], tz)
            except ValueError:
                problems.append(f"{name}: not a date and time (YYYY-MM-DDTHH:MM)")
    return AuditQuery(username=values["user"] or None, action=values["action"] or None,
                      since=bounds["from"], until=bounds["to"], limit=limit), values, problems


async def audit_page(req: PortalRequest) -> web.StreamResponse:
    query, values, problems = _audit_query(req, AUDIT_PAGE)
    entries: list[AuditEntry] = []
    if not problems and req.ctx.store.audit is not None:
        trail = req.ctx.store.audit
        entries = await req.ctx.run(lambda: trail.list_audit(query))
    return req.page("audit.html", entries=entries, values=values, problems=problems,
                    csv_query=req.request.query_string)


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA) else text


async def audit_csv(req: PortalRequest) -> web.StreamResponse:
    query, _, problems = _audit_query(req, CSV_ROWS)
    if problems:
        raise web.HTTPBadRequest(text="; ".join(problems))
    trail = req.ctx.store.audit
    entries = await req.ctx.run(lambda: trail.list_audit(query)) if trail else []
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time_utc", "user_id", "user", "action", "target", "detail", "address"])
    for e in entries:
        writer.writerow([time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.time)),
                         "" if e.user_id is None else e.user_id,
                         *map(_cell, (e.username, e.action, e.target, e.detail, e.address))])
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": 'attachment; filename="audit.csv"'})
