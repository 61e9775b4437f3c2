"""Every path the portal serves and what it needs, in one table: a newcomer finds any page in
one hop, and the tests walk it to build the permission matrix (tests/test_portal_access.py).

``requires`` is checked by the server before the handler runs (``recorder.rules.access``):
each clause is met by any one of its permissions, the manual's names. ``public`` routes are
served to anyone; every other route needs a signed-in user, and every POST the form's CSRF
token (the sign-in form's is bound to its pre-session cookie, ``csrf="signin"``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from recorder.api.portal import (
    account,
    admin,
    assets,
    blackouts,
    bookmarks,
    groups,
    listen,
    live,
    mail,
    phones,
    recordings,
    search,
    signin,
    stations,
    system,
    waveform,
)
from recorder.api.portal.context import PortalRequest
from recorder.rules.access import REQUEST_PERMISSIONS, SIGNED_IN, VIEW, Requirement, needs

PortalHandler = Callable[[PortalRequest], Awaitable[web.StreamResponse]]

# A RECORDID in a path: at most 18 digits, so it is always a 64-bit integer for the store.
IDENT = r"{ident:\d{1,18}}"
RECORDING = "/recordings/" + IDENT


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # an aiohttp route pattern
    handler: PortalHandler
    requires: Requirement = SIGNED_IN
    public: bool = False
    csrf: str = "session"  # POST only: "session" (the session's token) or "signin"
    # Answers with recording audio (the permission matrix checks no media bytes leak).
    media: bool = False
    # An event stream that stays open (tests read its first event only).
    stream: bool = False
    # The audio of a call in progress (the matrix starts a call for it and reads its start).
    live: bool = False
    # Whether the server looks up the request's session first (static files need none).
    identify: bool = True


ROUTES: tuple[Route, ...] = (
    Route("GET", "/signin", signin.form, public=True),
    Route("POST", "/signin", signin.submit, public=True, csrf="signin"),
    Route("POST", "/signout", signin.signout),
    Route("GET", "/", search.home),
    Route("GET", "/recordings", search.search, needs(VIEW)),
    Route("GET", RECORDING, recordings.show, needs(VIEW)),
    Route("GET", RECORDING + "/audio", recordings.audio, needs(VIEW), media=True),
    Route("GET", RECORDING + "/peaks", waveform.peaks, needs(VIEW)),
    Route("GET", RECORDING + "/download", recordings.download,
          needs(VIEW, "ALLOWEXPORTDOWNLOAD"), media=True),
    # An encrypted CAV: its password is posted, never in a URL. (Not ``media``: it answers
    # no audio a player could use without the password, and a form without one is a 400.)
    Route("POST", RECORDING + "/download", recordings.download_sealed,
          needs(VIEW, "ALLOWEXPORTDOWNLOAD")),
    Route("POST", RECORDING + "/bookmarks", bookmarks.add, needs(VIEW, "ALLOWCOMMENT")),
    Route("POST", RECORDING + "/bookmarks/change", bookmarks.change,
          needs(VIEW, "ALLOWCOMMENT")),
    Route("POST", RECORDING + "/email", mail.send, needs(VIEW, "ALLOWEXPORTEMAIL")),
    Route("GET", RECORDING + "/delete", recordings.confirm_delete,
          needs(VIEW, "ALLOWFILEDELETE")),
    Route("POST", RECORDING + "/delete", recordings.delete, needs(VIEW, "ALLOWFILEDELETE")),
    Route("GET", "/live", live.page, needs("ALLOWLIVEMONITOR")),
    Route("GET", "/live/stream", live.stream, needs("ALLOWLIVEMONITOR"), stream=True),
    Route("GET", RECORDING + "/live", listen.live, listen.REQUIRES, media=True, live=True),
    Route("GET", "/system", system.page, needs("ALLOWSYSTEMCONFIG")),
    Route("GET", "/password", account.password_form, needs("ALLOWCHANGEPASSWORD")),
    Route("POST", "/password", account.change_password, needs("ALLOWCHANGEPASSWORD")),
    Route("GET", "/audit", account.audit_page, needs("AUDITREPORTING")),
    Route("GET", "/audit.csv", account.audit_csv, needs("AUDITREPORTING")),
    Route("GET", "/admin/users", admin.users, needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/users", admin.add_user, needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/users/" + IDENT + "/roles", admin.user_roles,
          needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/users/" + IDENT + "/delete", admin.delete_user,
          needs("ALLOWAGENTADMIN")),
    Route("GET", "/admin/roles", admin.roles, needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/roles", admin.add_role, needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/roles/" + IDENT + "/permissions", admin.role_permissions,
          needs("ALLOWAGENTADMIN")),
    Route("GET", "/admin/phones", phones.page, needs("ALLOWAGENTADMIN")),
    Route("POST", "/admin/phones", phones.change, needs("ALLOWAGENTADMIN")),
    # IMPORTWORKSTATION's data, under the permission the API asks for it.
    Route("GET", "/admin/stations", stations.page, REQUEST_PERMISSIONS["IMPORTWORKSTATION"]),
    Route("POST", "/admin/stations", stations.change,
          REQUEST_PERMISSIONS["IMPORTWORKSTATION"]),
    Route("GET", "/admin/blackouts", blackouts.page, needs("ALLOWBLACKOUT")),
    Route("POST", "/admin/blackouts", blackouts.change, needs("ALLOWBLACKOUT")),
    Route("GET", "/admin/groups", groups.groups, needs("ALLOWGROUPADMIN")),
    Route("POST", "/admin/groups", groups.add_group, needs("ALLOWGROUPADMIN")),
    Route("POST", "/admin/groups/" + IDENT + "/members", groups.members,
          needs("ALLOWGROUPADMIN")),
    Route("POST", "/admin/groups/" + IDENT + "/roles", groups.group_roles,
          needs("ALLOWGROUPADMIN")),
    Route("GET", "/static/{name}", assets.static_file, public=True, identify=False),
)
