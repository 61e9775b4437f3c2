"""What the directory and administration handlers share: required values, ACTION, agents.

The manual names the code for a missing parameter per function: those whose "Possible error
returns" list API_INVALID_MESSAGE_FORMAT ("parameters are missing") answer 16; the others
(IMPORTAGENTPHONE, MODIFYGROUPPERMISSION, AGENTWINDOW) answer 26 API_BLANK_REQUIRED_VALUE. A
parameter sent blank counts as missing. Either way the message names what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence

from recorder.api.context import ApiContext
from recorder.api.protocol.params import Params
from recorder.api.request import RequestError
from recorder.resultcodes import ResultCode
from recorder.store.directory import UserQuery, UserRow

MISSING = ResultCode.API_INVALID_MESSAGE_FORMAT
BLANK = ResultCode.API_BLANK_REQUIRED_VALUE


def required(params: Params, name: str, code: ResultCode = MISSING) -> str:
    """The value of a parameter the request cannot do without."""
    value = params.text(name)
    if not value:
        raise RequestError(code, f"{name} is required")
    return value


def required_int(params: Params, name: str, code: ResultCode = MISSING) -> int:
    value = params.integer(name)
    if value is None:
        raise RequestError(code, f"{name} is required")
    return value


def action(params: Params, allowed: Sequence[str], code: ResultCode = MISSING) -> str:
    """ACTION, upper case; missing → ``code``, not one of ``allowed`` → 21."""
    raw = params.text("ACTION")
    if not raw:
        raise RequestError(code, f"ACTION is required ({_either(allowed)})")
    value = raw.upper()
    if value not in allowed:
        raise RequestError(ResultCode.API_ERROR_INVALID_ACTION,
                           f"ACTION must be {_either(allowed)}, not {raw!r}")
    return value


def agent_id(params: Params) -> int | None:
    """AGENTID, or USERID ("the field used to identify the agent is USERID").

    0 counts as not sent: the manual's own IMPORTAGENTPHONE example sends AGENTID 0 together
    with the agent's names, and no agent has the ID 0.
    """
    by_agent, by_user = params.integer("AGENTID"), params.integer("USERID")
    if by_agent and by_user and by_agent != by_user:
        raise RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT,
                           f"AGENTID {by_agent} and USERID {by_user} name different agents")
    return by_agent or by_user or None


def one_user(users: Sequence[UserRow], described: str,
             not_found: ResultCode = ResultCode.API_AGENT_NOT_FOUND) -> UserRow:
    """The only user found; none → ``not_found``, several → 22 API_ERROR_KEYS_NOT_UNIQUE."""
    if not users:
        raise RequestError(not_found, f"no {_who(not_found)} {described}")
    if len(users) > 1:
        ids = ", ".join(str(u.user_id) for u in users)
        raise RequestError(ResultCode.API_ERROR_KEYS_NOT_UNIQUE,
                           f"{len(users)} users {described} (USERID {ids}); name one by its ID")
    return users[0]


def _who(code: ResultCode) -> str:
    return "user" if code is ResultCode.API_USER_NOT_FOUND else "agent"


def _either(choices: Sequence[str]) -> str:
    if len(choices) == 1:
        return choices[0]
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def find_agent(ctx: ApiContext, params: Params, *, names_first: bool,
               missing: ResultCode) -> UserRow:
    """The agent a request names by AGENTID (or USERID) or by FIRSTNAME and LASTNAME.

    IMPORTAGENTPHONE tries the ID first and then ignores the names; MODIFYGROUPPERMISSION looks
    the names up first ("the textual representation"), as the manual says of each.
    """
    by_id = agent_id(params)
    first, last = params.text("FIRSTNAME") or "", params.text("LASTNAME") or ""
    if first and last and (names_first or by_id is None):
        return one_user(ctx.store.directory.find_users(UserQuery(first_name=first, last_name=last)),
                        f"named {first} {last}")
    if by_id is not None:
        return one_user(ctx.store.directory.find_users(UserQuery(user_id=by_id)),
                        f"with AGENTID {by_id}")
    if first or last:
        given, absent = ("FIRSTNAME", "LASTNAME") if first else ("LASTNAME", "FIRSTNAME")
        raise RequestError(missing, f"{absent} is required with {given}")
    raise RequestError(missing, "AGENTID, or FIRSTNAME and LASTNAME, is required")
