"""Agents' phones (ALLOWAGENTADMIN): which devices are whose, as IMPORTAGENTPHONE stores them.

A phone is a DEVICEID (or extension) the agent answers on: a call on it is that agent's
(the recording's ``agent_id``, which VIEWOWNRECORDS and the groups go by). A phone belongs to
one live agent at a time; giving it to another is refused until it is taken from the first.
Each change tells the scheduler (its device lookup) and is audited under ``user``.
"""

from __future__ import annotations

import re
import time

from aiohttp import web

from recorder.api.portal.admin import post_form
from recorder.api.portal.context import PortalRequest
from recorder.store.audit import AUDIT_USER
from recorder.store.directory import DirectoryConflict, UserRow

MAX_PHONE = 64
_PHONE = re.compile(r"[^\x00-\x1f\x7f]{1," + str(MAX_PHONE) + "}")  # printable, one line


async def page(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    directory = req.ctx.store.directory
    people = await req.ctx.run(directory.list_users)
    return req.page("admin_phones.html", status=status, message=message,
                    people=[u for u in people if not u.deleted])


async def change(req: PortalRequest) -> web.StreamResponse:
    data = await req.request.post()
    action = str(data.get("action", ""))
    if action not in ("assign", "unassign"):
        raise web.HTTPBadRequest(text="this form assigns or unassigns; nothing was changed")
    form = await post_form(req, action)
    assign = action == "assign"
    phone = form.get("phone").strip()
    try:
        user_id = int(form.get("user_id"))
    except ValueError:
        return await page(req, 400, "Choose a user.")
    if not _PHONE.fullmatch(phone):
        return await page(req, 400, f"A phone is 1 to {MAX_PHONE} printable characters.")
    ctx = req.ctx
    directory = ctx.store.directory

    def apply() -> str | None:
        user: UserRow | None = directory.get_user(user_id)
        if user is None or user.deleted:
            return "No such user."
        try:
            changed = (directory.assign_phone(user_id, phone, now=time.time()) if assign
                       else directory.unassign_phone(user_id, phone))
        except DirectoryConflict as exc:
            return f"Not changed: {exc}."
        if changed:
            ctx.audit(req.entry(AUDIT_USER, user.username,
                                f"phone {phone} {'assigned' if assign else 'taken away'}"))
        return None

    problem = await ctx.run(apply)
    if problem is not None:
        return await page(req, 409, problem)
    ctx.directory_changed()  # the scheduler finds the agent of a device from these
    raise web.HTTPSeeOther("/admin/phones")
