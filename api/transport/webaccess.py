"""The WebAPI's side of ``access``: an HTTP request admitted by its address (403 otherwise),
its user found from its Authorization header when ``api.require_auth`` (401 without one that
holds, 403 for credentials sent in clear from another machine or a user not allowed), each
refusal in the manual's result format, and its audit entry once answered."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import partial

from aiohttp import web

from recorder.api.protocol.webparams import lookup
from recorder.api.protocol.xmlcodec import render_result
from recorder.api.request import ApiResult
from recorder.api.transport.access import (
    CREDENTIALS_REQUIRED,
    REQUEST_LOG,
    ApiAccess,
    Denied,
    log_request,
)
from recorder.api.transport.httpguard import request_address
from recorder.api.transport.loadlimits import Lanes, QueueFull
from recorder.resultcodes import ResultCode
from recorder.rules.access import Principal
from recorder.rules.addresses import is_loopback

REALM = 'Basic realm="recorder WebAPI", charset="UTF-8"'


class WebAccess:
    """Admission and users of the WebAPI's requests (``ApiAccess`` on the event loop)."""

    def __init__(self, access: ApiAccess, lanes: Lanes) -> None:
        self.access = access
        self._lanes = lanes

    async def admit(self, request: web.BaseRequest) -> Principal | web.Response | None:
        """The request's user (None when require_auth is off), or the refusal to answer."""
        access = self.access
        address = request_address(request)
        if not access.admits(address):
            access.web_refusals.note(address)
            who = address or "this client"
            return refused(request, Denied(403, f"the WebAPI does not serve {who}: not in "
                                                "api.allow"))
        if not access.require_auth:
            return None
        header = request.headers.get("Authorization", "")
        if not header:
            return refused(request, CREDENTIALS_REQUIRED)  # not logged: clients try this first
        if not request.secure and not is_loopback(address):
            # The credentials have crossed the network in clear already; refusing them tells
            # the integrator at once, before they are relied on.
            return logged(request, Denied(403, "credentials are accepted only over HTTPS "
                                               "(api.tls_port) from another machine"))
        try:
            found = await self._lanes.general.run(partial(access.authenticate, header))
        except QueueFull:
            return xml(request, ApiResult(ResultCode.API_COMMAND_QUEUE_FULL,
                                          self._lanes.general.full_message()), 200)
        if isinstance(found, Denied):
            return logged(request, found)
        denied = access.permits(found, "", {})  # ALLOWAPIAUTH, whatever the request
        return logged(request, denied) if denied is not None else found

    def check(self, request: web.BaseRequest, principal: Principal | None,
              params: list[tuple[str, str]]) -> web.Response | None:
        """The request logged; None if its user may make it, else the 403 to answer."""
        request_type = (lookup(params, "TYPE") or lookup(params, "REQUESTTYPE") or "")
        request_type = request_type.strip().upper()
        log_request("WebAPI", request_address(request), principal, request_type,
                    lookup(params, "REQUESTID"))
        if principal is None:
            return None
        denied = self.access.permits(principal, request_type, upper(params))
        return None if denied is None else refused(request, denied, params)

    async def audit(self, request: web.BaseRequest, principal: Principal | None,
                    params: list[tuple[str, str]], answer: bytes) -> None:
        """The audit entry of a change or an e-mail, written on a worker."""
        named = upper(params)
        request_type = (named.get("TYPE") or named.get("REQUESTTYPE") or "").upper()
        if not self.access.audited(request_type, named):
            return
        await asyncio.get_running_loop().run_in_executor(None, partial(
            self.access.audit_request, principal, request_address(request), via="WebAPI",
            request_type=request_type, params=named, answer=answer))


def logged(request: web.BaseRequest, denied: Denied) -> web.Response:
    """``refused``, with a line in the request log (a wrong password, a revoked token)."""
    REQUEST_LOG.info("WebAPI %s: refused (HTTP %d): %s", request_address(request),
                     denied.status, denied.message)
    return refused(request, denied)


def upper(params: list[tuple[str, str]]) -> dict[str, str]:
    return {name.upper(): value.strip() for name, value in params}


def refused(request: web.BaseRequest, denied: Denied,
            params: list[tuple[str, str]] | None = None) -> web.Response:
    """Code 44 with the reason, under HTTP 401 (and how to authenticate) or 403."""
    response = xml(request, denied.result(), denied.status, params)
    if denied.status == 401:
        response.headers["WWW-Authenticate"] = REALM
    return response


def xml(request: web.BaseRequest, result: ApiResult, status: int,
        params: list[tuple[str, str]] | None = None) -> web.Response:
    """``result`` as the manual's RESULT, echoing the TYPE and REQUESTID of the query."""
    pairs = params if params is not None else list(request.query.items())
    named: Mapping[str, str] = upper(pairs)
    request_type = (named.get("TYPE") or named.get("REQUESTTYPE") or "").upper()
    body = render_result(request_type[:64], named.get("REQUESTID", "")[:64], result)
    return web.Response(body=body, status=status, content_type="text/xml", charset="utf-8")
