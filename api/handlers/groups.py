"""inContact groups: ADDGROUP creates them, MODIFYGROUPPERMISSION puts agents and devices in."""

from __future__ import annotations

import logging

from recorder.api.context import ApiContext
from recorder.api.handlers.common import BLANK, action, find_agent, required
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, Node, RequestError, invalid
from recorder.resultcodes import ResultCode
from recorder.store.directory import GroupRow

logger = logging.getLogger(__name__)

MEMBER_ACTIONS = ("ADD", "DELETE")


def add_group(ctx: ApiContext, params: Params) -> ApiResult:
    name = required(params, "GROUPNAME")
    # "If a group with the same name already exists, the function will still return as normal
    # without modifying any data": same code and body, with a message that says so.
    group, created = ctx.store.directory.add_group(name)
    if created:
        logger.info("ADDGROUP: group %d %r added", group.group_id, group.group_name)
        message = f"group: {group.group_name} has been added"
    else:
        message = f"group: {group.group_name} already exists"
    body: list[Node] = [("GROUPID", str(group.group_id)), ("GROUPNAME", group.group_name)]
    return ApiResult(ResultCode.API_OK, message, body)


def find_group(ctx: ApiContext, params: Params, missing: ResultCode) -> GroupRow:
    """The group a request names: GROUPNAME looked up first, else GROUPID (or GROUPLD)."""
    name = params.text("GROUPNAME") or None
    group_id = params.integer("GROUPID")
    if name is None and group_id is None:
        raise RequestError(missing, "GROUPNAME or GROUPID is required")
    group = ctx.store.directory.find_group(group_id=group_id, name=name)
    if group is None:
        which = f"named {name}" if name is not None else f"with GROUPID {group_id}"
        raise RequestError(ResultCode.API_NO_GROUP, f"no group {which}")
    return group


def modify_group_permission(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, MEMBER_ACTIONS, BLANK)
    group = find_group(ctx, params, BLANK)
    agent = find_agent(ctx, params, names_first=True, missing=BLANK)
    phone, device = params.text("PHONEID") or None, params.text("DEVICEID") or None
    if phone and device and phone != device:
        raise invalid("PHONEID and DEVICEID name different devices; send one of them")
    device_id = phone or device
    adding = verb == "ADD"
    changed = ctx.store.directory.set_group_member(group.group_id, agent.user_id, device_id, adding)
    what = f"Agent {agent.user_id}" + (f" and device {device_id}" if device_id else "")
    if changed:
        logger.info("MODIFYGROUPPERMISSION: %s %s group %d", what,
                    "added to" if adding else "removed from", group.group_id)
        message = f"{what} {'added to' if adding else 'removed from'} group {group.group_name}"
    else:
        message = f"{what} {'already in' if adding else 'not in'} group {group.group_name}"
    # "The result will include all data including the GROUPID and AGENTID if you did not pass
    # them."
    body: list[Node] = [
        ("ACTION", verb),
        ("GROUPID", str(group.group_id)),
        ("GROUPNAME", group.group_name),
        ("AGENTID", str(agent.user_id)),
        ("FIRSTNAME", agent.first_name),
        ("LASTNAME", agent.last_name),
    ]
    if phone is not None:
        body.append(("PHONEID", phone))
    if device is not None:
        body.append(("DEVICEID", device))
    return ApiResult(ResultCode.API_OK, message, body)
