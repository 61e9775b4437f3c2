"""Blackouts of calls in progress (ALLOWBLACKOUT), as the API's BLACKOUTSTART and BLACKOUTSTOP
do them: the call's recording goes on as silence from now until the blackout is stopped
(RECORDINGPAUSED and RECORDINGRESUMED are sent; a listener hears silence too), and the
recording keeps the range (its page marks it). Audited as ``blackout``.
"""

from __future__ import annotations

import re

from aiohttp import web

from recorder.api.portal.admin import post_form
from recorder.api.portal.context import PortalRequest
from recorder.api.portal.live import live_view
from recorder.errors import ResultError
from recorder.store.audit import AUDIT_BLACKOUT

_DEVICE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


async def page(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    provide = req.ctx.status
    if provide is None or req.ctx.blackout is None:
        raise web.HTTPServiceUnavailable(text="Blackouts are not available.")
    calls = live_view(await req.ctx.run(provide))["calls"]
    return req.page("admin_blackouts.html", status=status, message=message, calls=calls)


async def change(req: PortalRequest) -> web.StreamResponse:
    data = await req.request.post()
    action = str(data.get("action", ""))
    if action not in ("start", "stop"):
        raise web.HTTPBadRequest(text="this form starts or stops a blackout; nothing changed")
    form = await post_form(req, action)
    device = form.get("device")
    control = req.ctx.blackout
    if control is None:
        raise web.HTTPServiceUnavailable(text="Blackouts are not available.")
    if not _DEVICE.fullmatch(device):
        return await page(req, 400, "Choose a call's device.")

    def apply() -> str | None:
        try:
            control(device, action == "start")
        except ResultError as exc:
            return f"Not changed: {exc.message}."
        req.ctx.audit(req.entry(AUDIT_BLACKOUT, device,
                                "started" if action == "start" else "stopped"))
        return None

    problem = await req.ctx.run(apply)
    if problem is not None:
        return await page(req, 409, problem)
    raise web.HTTPSeeOther("/admin/blackouts")
