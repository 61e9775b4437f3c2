"""AGENTWINDOW: the window in front of an agent, as its desktop agent last reported it.

The manual only defines the question. Desktop agents report with the same request type and
ACTION=UPDATE (an extension, docs/api-notes.md), over the socket or the WebAPI:

    /webAPI.aspx?type=agentwindow&requestid=1&action=update&computername=PC7&username=ceddy
        &domain=example.com&ipaddress=10.0.0.7&status=AVAILABLE&applicationtitle=Inbox
"""

from __future__ import annotations

import logging

from recorder.api.context import ApiContext
from recorder.api.handlers.common import BLANK, action
from recorder.api.protocol.datetimes import window_datetime
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, Node, RequestError
from recorder.resultcodes import ResultCode
from recorder.store.directory import AgentWindow

logger = logging.getLogger(__name__)

ACTIONS = ("GET", "UPDATE")


def agent_window(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, ACTIONS) if params.text("ACTION") else "GET"
    computer = params.text("COMPUTERNAME") or None
    user = params.text("USERNAME") or None
    if computer is None and user is None:
        raise RequestError(BLANK, "COMPUTERNAME or USERNAME is required")
    if verb == "UPDATE":
        return _report(ctx, params, computer or "", user or "")
    window = ctx.store.directory.latest_agent_window(computer_name=computer, user_name=user)
    if window is None:
        which = " or ".join(f"{label} {value}" for label, value in (
            ("COMPUTERNAME", computer), ("USERNAME", user)) if value is not None)
        raise RequestError(ResultCode.API_AGENT_NOT_FOUND, f"no window reported for {which}")
    body: list[Node] = [
        ("DOMAIN", window.domain),
        ("IPADDRESS", window.ip_address),
        ("STATUS", window.status),
        ("APPLICATIONTITLE", window.application_title),
        ("LASTUPDATE", window_datetime(window.last_update)),
        ("COMPUTERNAME", window.computer_name),
        ("USERNAME", window.user_name),
    ]
    return ApiResult(ResultCode.API_OK, "API_OK", body)


def _report(ctx: ApiContext, params: Params, computer: str, user: str) -> ApiResult:
    window = AgentWindow(
        computer_name=computer,
        user_name=user,
        domain=params.text("DOMAIN") or "",
        ip_address=params.text("IPADDRESS") or "",
        status=params.text("STATUS") or "",
        application_title=params.text("APPLICATIONTITLE") or "",
        last_update=ctx.clock(),
    )
    ctx.store.directory.report_agent_window(window)
    logger.debug("AGENTWINDOW report from %r/%r: %s", computer, user, window.status)
    return ApiResult(ResultCode.API_OK, "API_OK",
                     [("LASTUPDATE", window_datetime(window.last_update))])
