"""Blackouts (ALLOWBLACKOUT), as the API's blackout requests do them: BLACKOUTSTART and
BLACKOUTSTOP on a call in progress, AGENTBLACKOUTSTART and AGENTBLACKOUTSTOP for an agent (every
call on their phones, also the calls that start before it is stopped), each with the manual's
TIMEOFFSET: seconds added to now, negative to reach back into what was already recorded (the
sessions silence it in the file), positive for a moment ahead. The audio is silence from there
(RECORDINGPAUSED and RECORDINGRESUMED are sent; a listener hears silence too) and each recording
keeps the range (its page marks it). Audited as ``blackout``.
"""

from __future__ import annotations

import re

from aiohttp import web

from recorder.api.portal.admin import Form, post_form
from recorder.api.portal.context import PortalRequest
from recorder.api.portal.live import live_view
from recorder.calls.requests import DeviceQuery
from recorder.errors import ResultError
from recorder.store.audit import AUDIT_BLACKOUT
from recorder.store.directory import UserRow

_DEVICE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
# TIMEOFFSET's range here: an hour either way (a look-back never reaches before a call's
# start; a stop an hour ahead is as far as a form is worth).
MAX_OFFSET = 3600
ACTIONS = ("start", "stop", "agent-start", "agent-stop")


async def page(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    ctx = req.ctx
    provide, control = ctx.status, ctx.blackouts
    if provide is None or control is None:
        raise web.HTTPServiceUnavailable(text="Blackouts are not available.")
    calls = live_view(await ctx.run(provide))["calls"]
    people = await ctx.run(ctx.store.directory.list_users)
    running = control.running_agents()
    agents = [{"user": u, "phones": list(u.phones),
               "running": any(p in running for p in u.phones)}
              for u in people if not u.deleted]
    return req.page("admin_blackouts.html", status=status, message=message, calls=calls,
                    agents=agents, max_offset=MAX_OFFSET)


def offset_of(form: Form) -> int:
    """TIMEOFFSET as typed (empty: 0); ValueError outside the page's range."""
    text = form.get("offset").strip() or "0"
    if not re.fullmatch(r"[+-]?\d{1,5}", text) or abs(int(text)) > MAX_OFFSET:
        raise ValueError(text)
    return int(text)


def _when(offset: int) -> str:
    return "" if offset == 0 else f" (TIMEOFFSET {offset:+d} s)"


async def change(req: PortalRequest) -> web.StreamResponse:
    data = await req.request.post()
    action = str(data.get("action", ""))
    if action not in ACTIONS:
        raise web.HTTPBadRequest(text="this form starts or stops a blackout; nothing changed")
    form = await post_form(req, action)
    control = req.ctx.blackouts
    if control is None:
        raise web.HTTPServiceUnavailable(text="Blackouts are not available.")
    try:
        offset = offset_of(form)
    except ValueError:
        return await page(req, 400, f"The time offset is whole seconds from -{MAX_OFFSET} to "
                                    f"{MAX_OFFSET} (negative reaches back).")
    start = action.endswith("start")
    if action.startswith("agent"):
        return await _agent(req, form, start, offset)
    device = form.get("device")
    if not _DEVICE.fullmatch(device):
        return await page(req, 400, "Choose a call's device.")

    def apply() -> str | None:
        try:
            (control.start if start else control.stop)(
                DeviceQuery(device_id=device), None, offset)
        except ResultError as exc:
            return f"Not changed: {exc.message}."
        req.ctx.audit(req.entry(AUDIT_BLACKOUT, device,
                                f"{'started' if start else 'stopped'}{_when(offset)}"))
        return None

    problem = await req.ctx.run(apply)
    if problem is not None:
        return await page(req, 409, problem)
    raise web.HTTPSeeOther("/admin/blackouts")


async def _agent(req: PortalRequest, form: Form, start: bool, offset: int
                 ) -> web.StreamResponse:
    """AGENTBLACKOUTSTART/STOP for a user: their phones as the directory holds them."""
    ctx, control = req.ctx, req.ctx.blackouts
    assert control is not None
    try:
        user_id = int(form.get("user_id"))
    except ValueError:
        return await page(req, 400, "Choose an agent.")

    def apply() -> str | None:
        user: UserRow | None = ctx.store.directory.get_user(user_id)
        if user is None or user.deleted:
            return "No such agent."
        phones = list(user.phones)
        if not phones:
            return f"Not changed: {user.username} has no phone to black out."
        try:
            (control.agent_start if start else control.agent_stop)(phones, offset)
        except ResultError as exc:
            return f"Not changed: {exc.message}."
        ctx.audit(req.entry(AUDIT_BLACKOUT, user.username,
                            f"agent blackout {'started' if start else 'stopped'} on "
                            f"{', '.join(phones)}{_when(offset)}"))
        return None

    problem = await ctx.run(apply)
    if problem is not None:
        return await page(req, 409, problem)
    raise web.HTTPSeeOther("/admin/blackouts")
