"""Group administration (ALLOWGROUPADMIN): groups, their agents and devices
(MODIFYGROUPPERMISSION's), and which roles they narrow (MODIFYROLEGROUPPERMISSION's).

A role's groups narrow what its ALLOWVIEWALLRECORDS shows, and taking a role's last group
widens it to every recording: so only an administrator holding every permission of a role
may change its groups (``recorder.rules.access.ungrantable``). Forms name their ``action``.
"""

from __future__ import annotations

from aiohttp import web

from recorder.api.portal.admin import MAX_NAME, post_form
from recorder.api.portal.context import PortalRequest
from recorder.rules.access import ungrantable
from recorder.store.audit import AUDIT_GROUP
from recorder.store.directory import GroupRow, RoleRow, UserQuery, UserRow

MAX_DEVICE = 64  # the manual's DEVICEID


async def groups(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    directory = req.ctx.store.directory

    def load() -> tuple[list[GroupRow], list[RoleRow], dict[int, UserRow]]:
        return (directory.list_groups(), directory.list_roles(),
                {u.user_id: u for u in directory.list_users()})

    found, roles, people = await req.ctx.run(load)
    return req.page("admin_groups.html", status=status, message=message, groups=found,
                    roles=roles, people=people)


async def add_group(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "add")
    name = data.get("group_name").strip()
    if not name or len(name) > MAX_NAME:
        return await groups(req, 400, f"a group name has 1 to {MAX_NAME} characters")
    ctx = req.ctx

    def add() -> bool:
        _, made = ctx.store.directory.add_group(name)
        if made:
            ctx.audit(req.entry(AUDIT_GROUP, name, "added"))
        return made

    if not await ctx.run(add):
        return await groups(req, 409, f"a group {name} exists already")
    raise web.HTTPSeeOther("/admin/groups")


async def members(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "members")
    group_id, ctx = int(req.request.match_info["ident"]), req.ctx
    op, username = data.get("op"), data.get("username").strip()
    device = data.get("device").strip() or None
    if op not in ("add", "remove") or not username or \
            (device is not None and len(device) > MAX_DEVICE):
        return await groups(req, 400, "a member is a user name (and a device, optional)")
    directory = ctx.store.directory

    def change() -> tuple[int, str | None]:
        group = directory.find_group(group_id=group_id)
        found = directory.find_users(UserQuery(username=username))
        if group is None or len(found) != 1:
            return 404, "no such group" if group is None else f"no user named {username}"
        directory.set_group_member(group_id, found[0].user_id, device, op == "add")
        ctx.audit(req.entry(AUDIT_GROUP, group.group_name,
                            f"{op} {found[0].username}{' ' + device if device else ''}"))
        return 303, None

    status, problem = await ctx.run(change)
    if problem is not None:
        return await groups(req, status, problem)
    raise web.HTTPSeeOther("/admin/groups")


async def group_roles(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "roles")
    group_id, ctx = int(req.request.match_info["ident"]), req.ctx
    wanted = {int(v) for v in data.getall("role") if v.isascii() and v.isdigit()}
    directory = ctx.store.directory

    def assign() -> tuple[int, str | None]:
        group = directory.find_group(group_id=group_id)
        if group is None:
            return 404, "no such group"
        roles = {r.role_id: r for r in directory.list_roles()}
        current = {rid for rid, r in roles.items() if group_id in r.group_ids}
        changing = (wanted ^ current) & set(roles)
        beyond = ungrantable(req.user.granted,
                             {p for rid in changing for p in roles[rid].permissions})
        if beyond:
            return 403, ("those roles hold permissions you do not, so their groups are not "
                         f"yours to change: {', '.join(sorted(beyond))}")
        for rid in changing:
            directory.set_role_group(rid, group_id, rid in wanted)
        ctx.audit(req.entry(AUDIT_GROUP, group.group_name, "roles " + ",".join(
            roles[r].role_name for r in sorted(wanted & set(roles)))))
        return 303, None

    status, problem = await ctx.run(assign)
    if problem is not None:
        return await groups(req, status, problem)
    raise web.HTTPSeeOther("/admin/groups")
