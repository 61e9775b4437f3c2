"""User and role administration (ALLOWAGENTADMIN): users (add, delete, their roles) and roles
(add, their permissions), through the same store calls as IMPORTUSER, MODIFYROLE,
MODIFYUSERROLE and MODIFYROLEPERMISSION.

Nobody hands out more than they hold: a permission the administrator lacks cannot be put in a
role, nor a role holding one given to a user (``recorder.rules.access.ungrantable``). Every
form names what it does (``action``), so a POST carrying only a token changes nothing; no one
deletes themselves. Each change is audited.
"""

from __future__ import annotations

import time

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.protocol.permissions import PERMISSIONS, permission_name
from recorder.rules.access import ungrantable
from recorder.store.audit import AUDIT_ROLE, AUDIT_USER
from recorder.store.directory import DirectoryConflict, RoleRow, UserFields, UserRow
from recorder.store.passwords import hash_password

MIN_PASSWORD = 10
MAX_NAME = 255


class Form:
    """A posted form's text fields."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, [default])[0]

    def getall(self, name: str) -> list[str]:
        return self.fields.get(name, [])


async def post_form(req: PortalRequest, action: str) -> Form:
    data = await req.request.post()
    fields: dict[str, list[str]] = {}
    for name, value in data.items():
        if isinstance(value, str):
            fields.setdefault(name, []).append(value)
    form = Form(fields)
    if form.get("action") != action:
        raise web.HTTPBadRequest(text=f"this form does {action!r}; nothing was changed")
    return form


def _number(req: PortalRequest) -> int:
    return int(req.request.match_info["ident"])  # routes.IDENT: a USERID or ROLEID here


async def users(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    directory = req.ctx.store.directory

    def load() -> tuple[list[UserRow], list[RoleRow], dict[int, set[int]]]:
        roles = directory.list_roles()
        held: dict[int, set[int]] = {}
        for role in roles:
            for user_id in role.user_ids:
                held.setdefault(user_id, set()).add(role.role_id)
        return directory.list_users(), roles, held

    people, roles, held = await req.ctx.run(load)
    return req.page("admin_users.html", status=status, message=message, people=people,
                    roles=roles, held=held)


async def add_user(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "add")
    username = data.get("username").strip()
    first = data.get("first_name").strip() or username
    last = data.get("last_name").strip()
    password = data.get("password")
    if not username or max(len(username), len(first), len(last)) > MAX_NAME:
        return await users(req, 400, f"user name and names: 1 to {MAX_NAME} characters")
    if password and not MIN_PASSWORD <= len(password) <= 1024:
        return await users(req, 400, f"a password has {MIN_PASSWORD} to 1024 characters")
    ctx = req.ctx

    def add() -> str | None:
        made = hash_password(password) if password else None
        try:
            ctx.store.directory.add_user(UserFields(
                username=username, first_name=first, last_name=last, password_hash=made),
                now=time.time())
        except DirectoryConflict as exc:
            return str(exc)
        ctx.audit(req.entry(AUDIT_USER, username, "added"))
        return None

    async with ctx.password_checks:
        problem = await ctx.run(add)
    if problem is not None:
        return await users(req, 409, problem)
    raise web.HTTPSeeOther("/admin/users")


async def delete_user(req: PortalRequest) -> web.StreamResponse:
    await post_form(req, "delete")
    user_id, ctx = _number(req), req.ctx
    if user_id == req.user.user_id:
        return await users(req, 409, "You cannot delete yourself.")

    def delete() -> str | None:
        user = ctx.store.directory.get_user(user_id)
        if user is None or user.deleted:
            return "no such user"
        ctx.store.directory.delete_user(user_id, now=time.time())
        ctx.audit(req.entry(AUDIT_USER, user.username, "deleted"))
        return None

    problem = await ctx.run(delete)
    if problem is not None:
        return await users(req, 404, problem)
    ctx.directory_changed()  # the user's phones were freed
    raise web.HTTPSeeOther("/admin/users")


async def user_roles(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "roles")
    user_id, ctx = _number(req), req.ctx
    wanted = {int(v) for v in data.getall("role") if v.isascii() and v.isdigit()}
    directory = ctx.store.directory

    def assign() -> tuple[int, str | None]:
        user = directory.get_user(user_id)
        if user is None or user.deleted:
            return 404, "no such user"
        roles = {r.role_id: r for r in directory.list_roles()}
        current = {r.role_id for r in directory.user_roles(user_id)}
        changing = (wanted ^ current) & set(roles)
        beyond = ungrantable(req.user.granted,
                             {p for rid in changing for p in roles[rid].permissions})
        if beyond:
            return 403, f"those roles hold permissions you do not: {', '.join(sorted(beyond))}"
        for rid in changing:
            directory.set_user_role(user_id, rid, rid in wanted)
        ctx.audit(req.entry(AUDIT_USER, user.username, "roles " + ",".join(
            roles[r].role_name for r in sorted(wanted & set(roles)))))
        return 303, None

    status, problem = await ctx.run(assign)
    if problem is not None:
        return await users(req, status, problem)
    raise web.HTTPSeeOther("/admin/users")


async def roles(req: PortalRequest, status: int = 200, message: str = "") -> web.Response:
    found = await req.ctx.run(req.ctx.store.directory.list_roles)
    return req.page("admin_roles.html", status=status, message=message, roles=found,
                    permissions=PERMISSIONS)


async def add_role(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "add")
    name = data.get("role_name").strip()
    description = data.get("description").strip()
    if not name or len(name) > MAX_NAME or len(description) > 1024:
        return await roles(req, 400, f"a role name has 1 to {MAX_NAME} characters")
    ctx = req.ctx

    def add() -> bool:
        made = ctx.store.directory.add_role(name, description)
        if made is not None:
            ctx.audit(req.entry(AUDIT_ROLE, name, "added"))
        return made is not None

    if not await ctx.run(add):
        return await roles(req, 409, f"a role {name} exists already")
    raise web.HTTPSeeOther("/admin/roles")


async def role_permissions(req: PortalRequest) -> web.StreamResponse:
    data = await post_form(req, "permissions")
    role_id, ctx = _number(req), req.ctx
    wanted = {name for v in data.getall("permission")
              if (name := permission_name(v)) is not None}
    directory = ctx.store.directory

    def change() -> tuple[int, str | None]:
        role = directory.find_role(role_id=role_id)
        if role is None:
            return 404, "no such role"
        granted = req.user.granted
        beyond = ungrantable(granted, wanted - role.permissions)
        if beyond:
            return 403, f"you do not hold: {', '.join(sorted(beyond))}"
        # What the administrator does not hold is not theirs to take away either: it stays
        # as it was (the page shows it, but cannot send it).
        final = (wanted & granted) | (role.permissions - granted)
        if "ALLOWQAEDIT" in final and "ALLOWQAVIEW" not in final:
            return 409, "ALLOWQAEDIT needs ALLOWQAVIEW (the manual)"
        for name in final ^ role.permissions:
            directory.set_role_permission(role_id, name, name in final)
        ctx.audit(req.entry(AUDIT_ROLE, role.role_name, "permissions " + ",".join(
            sorted(final))[:900]))
        return 303, None

    status, problem = await ctx.run(change)
    if problem is not None:
        return await roles(req, status, problem)
    raise web.HTTPSeeOther("/admin/roles")
