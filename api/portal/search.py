"""The search page: CALLLIST's filters, within what the user may see (their own calls with
VIEWOWNRECORDS, all with ALLOWVIEWALLRECORDS), sorted and paged, through the store's
``list_recordings`` like CALLLIST itself."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.forms import PAGE_SIZE, TEXT_FILTERS, read_search
from recorder.api.portal.render import duration, iso_time
from recorder.rules.access import VIEW, Scope, agent_filter, record_scope
from recorder.store.audit import AUDIT_SEARCH
from recorder.store.directory import UserQuery
from recorder.store.records import RecordingRow

# Search form fields by label, in the order shown.
LABELS = {"device": "Device", "alias": "Device alias", "ani": "ANI", "dnis": "DNIS",
          "group": "Group", "gate": "Gate", "sys_user": "SYS_USER", "crm_user": "CRM_USER",
          **{f"user{i}": f"USER{i}" for i in range(1, 16)}}


def _cells(row: RecordingRow) -> tuple[str, str, str, str, str, str, str, str, int]:
    """A result's cells as the page shows them, made here rather than in the template: a
    page of 50 rows reads each field once (the template escapes every one)."""
    meta = row.meta
    return (iso_time(row.start_time), duration(row.duration), row.device_id,
            f"{row.agent_first_name} {row.agent_last_name}", meta.get("ANI", ""),
            meta.get("DNIS", ""), meta.get("GROUP", ""), meta.get("USER1", ""), row.ident)


async def home(req: PortalRequest) -> web.StreamResponse:
    if not VIEW.isdisjoint(req.user.granted):
        raise web.HTTPSeeOther("/recordings")
    return req.page("message.html", title="Welcome",
                    message="Your roles give you no page here yet; ask an administrator.")


async def search(req: PortalRequest) -> web.StreamResponse:
    ctx, user = req.ctx, req.user
    form = read_search(req.request.query)
    scope = record_scope(user.granted)
    directory = ctx.store.directory
    if form.agent_name is not None and not form.problems:
        # A name, not a list to pick from: a directory of thousands of agents would make
        # every search page carry them all (and read them all).
        name = form.agent_name
        found = await ctx.run(lambda: directory.find_users(UserQuery(username=name)))
        if len(found) == 1:
            form.agent_id = found[0].user_id
        else:
            form.problems.append(f"agent: no user named {name}")
    anything, agent_id = agent_filter(user.granted, user.user_id, form.agent_id)
    rows: list[RecordingRow] = []
    if not form.problems and anything:
        devices, agents = user.visible()
        query = dataclasses.replace(form.query, agent_id=agent_id, within_devices=devices,
                                    within_agents=agents)
        detail = urlencode({k: v for k, v in form.values.items() if v})

        def run() -> list[RecordingRow]:
            found = ctx.store.recordings.list_recordings(query)
            ctx.audit(req.entry(AUDIT_SEARCH, detail=detail), wait=False)
            return found

        rows = await ctx.run(run)
    more = len(rows) > PAGE_SIZE
    values = form.values
    return req.page(
        "search.html", form=form, results=[_cells(row) for row in rows[:PAGE_SIZE]],
        text_inputs=[(name, LABELS[name], values.get(name, "")) for name in TEXT_FILTERS],
        details_open=any(values.get(name) for name in TEXT_FILTERS),
        pick_agent=scope is Scope.ALL,
        own_only=scope is Scope.OWN,
        previous=urlencode(form.link(form.page - 1)) if form.page > 1 else "",
        following=urlencode(form.link(form.page + 1)) if more else "")
