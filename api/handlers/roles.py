"""Roles: MODIFYROLE, and what a role holds (MODIFYROLEGROUPPERMISSION, MODIFYUSERROLE,
MODIFYROLEPERMISSION)."""

from __future__ import annotations

import logging

from recorder.api.context import ApiContext
from recorder.api.handlers.common import action, one_user, required
from recorder.api.protocol.params import Params
from recorder.api.protocol.permissions import REQUIRES, permission_name
from recorder.api.request import ApiResult, Node, RequestError, invalid
from recorder.resultcodes import ResultCode
from recorder.store.directory import RoleRow, UserQuery

logger = logging.getLogger(__name__)

ROLE_ACTIONS = ("ADD", "MODIFY", "DELETE")
ASSIGN_ACTIONS = ("ADD", "DELETE")


def find_role(ctx: ApiContext, params: Params) -> RoleRow:
    """The role by ROLEID if given, else by ROLENAME; 52 API_ROLE_NOT_FOUND if there is none."""
    role_id = params.integer("ROLEID")
    name = params.text("ROLENAME") or None
    if role_id is None and name is None:
        raise invalid("ROLEID or ROLENAME is required")
    role = ctx.store.directory.find_role(role_id=role_id, name=name)
    if role is None:
        which = f"with ROLEID {role_id}" if role_id is not None else f"named {name}"
        raise RequestError(ResultCode.API_ROLE_NOT_FOUND, f"no role {which}")
    return role


def _role_body(verb: str, role: RoleRow) -> list[Node]:
    return [("ACTION", verb), ("ROLEID", str(role.role_id)), ("ROLENAME", role.role_name)]


def modify_role(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, ROLE_ACTIONS)
    description = params.text("DESCRIPTION")
    if verb == "ADD":
        name = required(params, "ROLENAME")
        added = ctx.store.directory.add_role(name, description or "")
        if added is None:
            raise RequestError(ResultCode.API_ROLE_ALREADY_EXISTS, f"role {name} already exists")
        logger.info("MODIFYROLE: role %d %r added", added.role_id, added.role_name)
        return ApiResult(ResultCode.API_OK, "Role Added",
                         [*_role_body(verb, added), ("DESCRIPTION", added.description)])
    role = find_role(ctx, params)
    if verb == "MODIFY":
        if description is None:
            raise invalid("DESCRIPTION is required to MODIFY a role (it is all a role has to "
                          "change)")
        ctx.store.directory.modify_role(role.role_id, description)
        logger.info("MODIFYROLE: role %d modified", role.role_id)
        return ApiResult(ResultCode.API_OK, "Role Modified",
                         [*_role_body(verb, role), ("DESCRIPTION", description)])
    ctx.store.directory.delete_role(role.role_id)
    logger.info("MODIFYROLE: role %d %r deleted", role.role_id, role.role_name)
    return ApiResult(ResultCode.API_OK, "Role Deleted",
                     [*_role_body(verb, role), ("DESCRIPTION", role.description)])


def modify_role_group_permission(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, ASSIGN_ACTIONS)
    role = find_role(ctx, params)
    group_name = required(params, "GROUPNAME")
    body = _role_body(verb, role)
    group = ctx.store.directory.find_group(name=group_name)
    if group is None:
        # The manual's own example answers an unknown group this way: API_OK, nothing changed.
        return ApiResult(ResultCode.API_OK,
                         f"Group {group_name} does not exist or it is not active",
                         [*body, ("GROUPNAME", group_name)])
    adding = verb == "ADD"
    if ctx.store.directory.set_role_group(role.role_id, group.group_id, adding):
        logger.info("MODIFYROLEGROUPPERMISSION: group %d %s role %d", group.group_id,
                    "added to" if adding else "removed from", role.role_id)
    link = "is assigned to" if adding else "is no longer assigned to"
    return ApiResult(ResultCode.API_OK, f"Group {group.group_name} {link} role {role.role_name}",
                     [*body, ("GROUPNAME", group.group_name), ("GROUPID", str(group.group_id))])


def modify_user_role(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, ASSIGN_ACTIONS)
    role = find_role(ctx, params)
    system_user = params.text("SYSTEMUSERNAME") or None
    sys_user = params.text("SYS_USER") or None
    if system_user and sys_user and system_user.casefold() != sys_user.casefold():
        raise invalid("SYSTEMUSERNAME and SYS_USER name different users; send one of them")
    query = UserQuery(
        user_id=params.integer("USERID"),
        username=params.text("USERNAME") or None,
        first_name=params.text("FIRSTNAME") or None,
        last_name=params.text("LASTNAME") or None,
        sys_user=system_user or sys_user,
    )
    if not query:
        raise invalid("one of USERID, USERNAME, SYSTEMUSERNAME, FIRSTNAME or LASTNAME is "
                      "required")
    user = one_user(ctx.store.directory.find_users(query), f"matching {_described(query)}",
                    ResultCode.API_USER_NOT_FOUND)
    adding = verb == "ADD"
    if ctx.store.directory.set_user_role(user.user_id, role.role_id, adding):
        logger.info("MODIFYUSERROLE: user %d %s role %d", user.user_id,
                    "given" if adding else "relieved of", role.role_id)
    link = "is assigned role" if adding else "is no longer assigned role"
    return ApiResult(ResultCode.API_OK, f"User {user.user_id} {link} {role.role_name}",
                     [*_role_body(verb, role), ("USERID", str(user.user_id)),
                      ("USERNAME", user.username)])


def _described(query: UserQuery) -> str:
    parts = [(label, value) for label, value in (
        ("USERID", query.user_id), ("USERNAME", query.username),
        ("SYSTEMUSERNAME", query.sys_user), ("FIRSTNAME", query.first_name),
        ("LASTNAME", query.last_name)) if value is not None]
    return " and ".join(f"{label} {value}" for label, value in parts)


def modify_role_permission(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, ASSIGN_ACTIONS)
    role = find_role(ctx, params)
    raw = required(params, "PERMISSIONNAME")
    permission = permission_name(raw)
    if permission is None:
        raise RequestError(ResultCode.API_PERMISSIONIDENT_NOT_FOUND,
                           f"PERMISSIONNAME {raw!r} is not a permission the manual lists")
    granting = verb == "ADD"
    if granting and permission in REQUIRES and REQUIRES[permission] not in role.permissions:
        raise RequestError(ResultCode.API_COMMAND_NOT_ALLOWED,
                           f"{permission} cannot be granted unless role {role.role_name} also "
                           f"has {REQUIRES[permission]}")
    if not granting:
        needing = sorted(p for p, needed in REQUIRES.items()
                         if needed == permission and p in role.permissions)
        if needing:
            raise RequestError(ResultCode.API_COMMAND_NOT_ALLOWED,
                               f"{permission} cannot be removed while role {role.role_name} "
                               f"has {', '.join(needing)}, which needs it")
    body = [*_role_body(verb, role), ("PERMISSIONNAME", permission)]
    if ctx.store.directory.set_role_permission(role.role_id, permission, granting):
        logger.info("MODIFYROLEPERMISSION: role %d %s %s", role.role_id,
                    "granted" if granting else "revoked", permission)
        return ApiResult(ResultCode.API_OK,
                         "Permission Added" if granting else "Permission Removed", body)
    state = "already has" if granting else "does not have"
    return ApiResult(ResultCode.API_OK, f"Role {role.role_name} {state} {permission}", body)
