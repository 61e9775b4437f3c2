"""The permission matrix, built from the route table (recorder.api.portal.routes.ROUTES): for
every route and every clause of what it requires, a user lacking that clause is refused (403,
and no audio bytes), and a user holding any one permission of each clause is let through. A
visitor without a session is refused every route that is not public."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from recorder.api.portal.routes import IDENT, ROUTES, Route
from recorder.app import Recorder
from recorder.rules.access import VIEW_OWN
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    PortalClient,
    add_recording,
    add_user,
    call_in_progress,
    portal_fixture,
    portal_port,
)

GUARDED = [r for r in ROUTES if not r.public]


# One user, and one signed-in client, per set of permissions: a sign-in costs a password hash.
_clients: dict[frozenset[str], tuple[PortalClient, int]] = {}
portal = portal_fixture(after=_clients.clear)


def signed_in(recorder: Recorder, permissions: frozenset[str]) -> tuple[PortalClient, int]:
    """A client signed in as a user holding exactly ``permissions``."""
    if permissions not in _clients:
        name = f"u{len(_clients)}-{'-'.join(sorted(permissions)) or 'none'}"[:60]
        user_id = add_user(recorder, name, permissions)
        client = PortalClient(portal_port(recorder))
        assert client.sign_in(name).status == 303
        _clients[permissions] = (client, user_id)
    return _clients[permissions]


def call(client: PortalClient, route: Route, ident: int) -> tuple[int, bytes]:
    path = route.path.replace(IDENT, str(ident))
    if route.live:
        return client.first_bytes(path, 44 + 1600)
    if route.stream:
        return client.first_event(path)
    if route.method == "POST":
        answer = client.post(path, {"csrf": client.csrf("/")})
    else:
        answer = client.get(path)
    return answer.status, answer.body


@contextmanager
def live_call(recorder: Recorder, route: Route, agent: int | None) -> Iterator[int | None]:
    """For a route serving a call in progress (``live``): a call recording on device 1001,
    its agent ``agent`` (the phone theirs while it lasts); its RECORDID. None for others."""
    if not route.live:
        yield None
        return
    assert recorder.api is not None
    assert recorder.store is not None
    directory = recorder.store.directory
    if agent is not None:
        directory.assign_phone(agent, "1001", now=time.time())
    recorder._directory_changed()
    conn = ApiConnection(recorder.api.socket_address[1])
    try:
        conn.request("CALLSTART", 1, DEVICEID="1001")
        yield call_in_progress(recorder, "1001")
    finally:
        conn.request("CALLSTOP", 2, DEVICEID="1001")
        conn.close()
        if agent is not None:
            directory.unassign_phone(agent, "1001")
            recorder._directory_changed()


def _case_id(route: Route, clause: int) -> str:
    return f"{route.method} {route.path} without {'|'.join(sorted(route.requires[clause]))}"


REFUSALS = [(route, n) for route in GUARDED for n in range(len(route.requires))]


@pytest.mark.parametrize(("route", "clause"), REFUSALS,
                         ids=[_case_id(r, n) for r, n in REFUSALS])
def test_a_user_lacking_a_permission_a_route_needs_is_refused(portal: Recorder, route: Route,
                                                              clause: int) -> None:
    # Everything else the route needs, the most generous choice of each, and nothing of this.
    granted = frozenset(_generous(c)
                        for i, c in enumerate(route.requires) if i != clause)
    client, _ = signed_in(portal, granted)
    ident, path = add_recording(portal, agent_id=None)
    with live_call(portal, route, None) as live:
        status, body = call(client, route, live or ident)
    assert status == 403, body[:300]
    assert b"RIFF" not in body
    assert path.exists()


def _generous(clause: frozenset[str]) -> str:
    return "ALLOWVIEWALLRECORDS" if "ALLOWVIEWALLRECORDS" in clause else min(clause)


ALLOWED = [(route, n, permission) for route in GUARDED for n in range(len(route.requires))
           for permission in sorted(route.requires[n])] + \
          [(route, None, None) for route in GUARDED if not route.requires]


@pytest.mark.parametrize(("route", "clause", "permission"), ALLOWED,
                         ids=[f"{r.method} {r.path} with {p}" for r, _, p in ALLOWED])
def test_a_user_holding_what_a_route_needs_is_let_through(
        portal: Recorder, route: Route, clause: int | None, permission: str | None) -> None:
    granted = frozenset(permission if i == clause else _generous(c)
                        for i, c in enumerate(route.requires))
    client, user_id = signed_in(portal, granted)
    # VIEWOWNRECORDS alone sees the calls the user took: give them this one.
    ident, path = add_recording(portal, agent_id=user_id if VIEW_OWN in granted else None)
    with live_call(portal, route, user_id if VIEW_OWN in granted else None) as live:
        status, body = call(client, route, live or ident)
    # A POST sends only its token: the handler may refuse what it lacks (400), but not 403.
    assert status in ((200, 206, 303) if route.method == "GET" else (200, 303, 400)), \
        (status, body[:300])
    if route.live:
        assert body[:4] == b"RIFF"
        assert len(body) == 44 + 1600
    elif route.media:
        assert body == path.read_bytes()


@pytest.mark.parametrize("route", GUARDED, ids=[f"{r.method} {r.path}" for r in GUARDED])
def test_a_visitor_without_a_session_is_refused_every_guarded_route(portal: Recorder,
                                                                    route: Route) -> None:
    client = PortalClient(portal_port(portal))
    ident, path = add_recording(portal, agent_id=None)
    if route.method == "GET":
        with live_call(portal, route, None) as live:
            status, body = call(client, route, live or ident)
    else:  # no session, so no CSRF token either
        answer = client.post(route.path.replace(IDENT, str(ident)), {})
        status, body = answer.status, answer.body
    assert status in (303, 403), status
    assert b"RIFF" not in body
    assert path.exists()


def test_viewownrecords_sees_only_the_calls_the_user_took(portal: Recorder) -> None:
    client, user_id = signed_in(portal, frozenset({VIEW_OWN}))
    mine, _ = add_recording(portal, agent_id=user_id, meta={"ANI": "own-call"})
    theirs, _ = add_recording(portal, agent_id=None, meta={"ANI": "other-call"})
    assert client.get(f"/recordings/{mine}").status == 200
    for path in (f"/recordings/{theirs}", f"/recordings/{theirs}/audio"):
        answer = client.get(path)
        assert answer.status == 404
        assert b"RIFF" not in answer.body
    listing = client.get("/recordings").text
    assert "own-call" in listing
    assert "other-call" not in listing
    # Asking for another agent's calls finds nothing rather than widening the scope.
    assert "own-call" not in client.get("/recordings?agent=999999").text


def test_the_route_table_covers_every_path_the_portal_serves(portal: Recorder,
                                                             tmp_path: Path) -> None:
    assert portal.portal is not None
    app = portal.portal.application()
    served = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    assert served == {(r.method, r.path.replace(IDENT, "{ident}")) for r in ROUTES}
