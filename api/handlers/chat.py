"""Screen-capture-only sessions: CHATSTART, CHATSTOP, CHATUPDATE.

A session is keyed by the client's SESSIONID and kept as a recording row with no audio (type
"screen", no file), so CALLLIST lists it with the agent's names and its duration. Sessions live
in the database, not in memory: a CHATSTOP after a restart of the recorder still finds its start.
Each change is published to event subscribers as a CHAT class event (docs/events.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from recorder.api.context import ApiContext
from recorder.api.handlers.common import agent_id, one_user
from recorder.api.handlers.events import chat_event
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.resultcodes import ResultCode
from recorder.store.directory import UserQuery, UserRow
from recorder.store.records import USER_FIELDS, ChatStart

logger = logging.getLogger(__name__)

# CHATUPDATE's metadata parameters (also taken on CHATSTART).
CHAT_FIELDS: tuple[str, ...] = (
    "DEVICEALIAS", "GROUP", "GATE", "ANI", "DNIS", *USER_FIELDS, "CALLDIRECTION", "CALLID")
# KEYNAME -> how its KEYVALUE finds the agent. DEVICEALIAS is the "Phone ID".
KEYNAMES: dict[str, Callable[[str], UserQuery]] = {
    "USERNAME": lambda v: UserQuery(username=v),
    "SYS_USER": lambda v: UserQuery(sys_user=v),
    "EMPLOYEEID": lambda v: UserQuery(employee_id=v),
    "CRM_USER": lambda v: UserQuery(crm_user=v),
    "DEVICEALIAS": lambda v: UserQuery(phone_id=v),
}
# Other spellings a client may send for a KEYNAME (the manual's own elsewhere).
KEYNAME_SPELLINGS: dict[str, str] = {
    "EMPLOYEE_ID": "EMPLOYEEID", "SYSTEMUSERNAME": "SYS_USER", "PHONEID": "DEVICEALIAS",
}


def _session_id(params: Params) -> str:
    session_id = params.text("SESSIONID")
    if not session_id:
        raise RequestError(ResultCode.API_SESSIONID_UNSPECIFIED, "SESSIONID is required")
    return session_id


def _agent(ctx: ApiContext, params: Params) -> tuple[UserRow, str | None]:
    """The agent (by AGENTID, else KEYNAME/KEYVALUE) and the phone it was found by, if any."""
    by_id = agent_id(params)
    keyname_sent, keyvalue = params.text("KEYNAME") or None, params.text("KEYVALUE") or None
    phone: str | None = None
    if by_id is not None:
        user = one_user(ctx.store.directory.find_users(UserQuery(user_id=by_id)),
                        f"with AGENTID {by_id}")
    elif keyname_sent or keyvalue:
        if keyname_sent is None:
            raise invalid("KEYNAME is required with KEYVALUE")
        keyname = keyname_sent.upper()
        keyname = KEYNAME_SPELLINGS.get(keyname, keyname)
        if keyname not in KEYNAMES:
            raise invalid(f"KEYNAME must be one of {', '.join(KEYNAMES)}, not {keyname_sent!r}")
        if keyvalue is None:
            raise invalid("KEYVALUE is required with KEYNAME")
        query = KEYNAMES[keyname](keyvalue)
        user = one_user(ctx.store.directory.find_users(query), f"with {keyname} {keyvalue}")
        phone = keyvalue if keyname == "DEVICEALIAS" else None
    else:
        raise RequestError(ResultCode.API_AGENT_NOT_FOUND,
                           "AGENTID, or KEYNAME and KEYVALUE, is required to find the agent")
    if not user.agent:
        raise RequestError(ResultCode.API_AGENT_NOT_ACTIVE,
                           f"user {user.user_id} is not flagged as an agent (STATUS I)")
    return user, phone


def chat_start(ctx: ApiContext, params: Params) -> ApiResult:
    session_id = _session_id(params)
    agent, phone = _agent(ctx, params)
    meta = params.metadata(CHAT_FIELDS)
    # The agent's accounts go on the row, so CALLLIST's SYS_USER and CRM_USER filters find
    # the session as they find the agent's calls.
    for name, value in (("SYS_USER", agent.sys_user), ("CRM_USER", agent.crm_user),
                        ("DEVICEALIAS", phone or "")):
        if value:
            meta.setdefault(name, value)
    device_id = phone or (agent.phones[0] if agent.phones else "")
    ident, replaced = ctx.store.recordings.start_chat(ChatStart(
        session_id=session_id, agent_id=agent.user_id, device_id=device_id,
        start_time=ctx.clock(), core_ident=ctx.core_ident, meta=meta))
    if replaced is not None:
        logger.info("CHATSTART %r: session RECORDID %d replaced by a new start", session_id,
                    replaced)
        _publish(ctx, "CHATSTOP", replaced, session_id)
    logger.info("CHATSTART %r: agent %d, RECORDID %d", session_id, agent.user_id, ident)
    _publish(ctx, "CHATSTART", ident, session_id)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CHATSTART"))


def chat_stop(ctx: ApiContext, params: Params) -> ApiResult:
    session_id = _session_id(params)
    ident = ctx.store.recordings.stop_chat(session_id, ctx.clock())
    if ident is None:
        raise RequestError(ResultCode.API_SESSIONID_UNSPECIFIED,
                           f"no chat session with SESSIONID {session_id} is open")
    logger.info("CHATSTOP %r: RECORDID %d complete", session_id, ident)
    _publish(ctx, "CHATSTOP", ident, session_id)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CHATSTOP"))


def chat_update(ctx: ApiContext, params: Params) -> ApiResult:
    session_id = _session_id(params)
    ident = ctx.store.recordings.update_chat(session_id, params.metadata(CHAT_FIELDS))
    if ident is None:
        raise RequestError(ResultCode.API_SESSIONID_UNSPECIFIED,
                           f"no chat session with SESSIONID {session_id}; send CHATSTART first")
    _publish(ctx, "CHATUPDATE", ident, session_id)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CHATUPDATE"))


def _publish(ctx: ApiContext, event_type: str, ident: int, session_id: str) -> None:
    """Tell event subscribers; the session has changed whether or not this succeeds."""
    try:
        row = ctx.store.recordings.get_recording(ident)
        if row is not None:
            ctx.events.publish(chat_event(ctx, event_type, row, session_id))
    except Exception:
        logger.exception("%s %r: publishing the event failed", event_type, session_id)
