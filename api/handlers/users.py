"""Import functions for people: IMPORTUSER (ADD, MODIFY, DELETE, LIST) and IMPORTAGENTPHONE."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from recorder.api.context import ApiContext
from recorder.api.handlers.common import BLANK, action, find_agent, required
from recorder.api.protocol.datetimes import parse_user_datetime, user_datetime
from recorder.api.protocol.params import Params, parse_int
from recorder.api.request import ApiResult, Node, RequestError, invalid
from recorder.resultcodes import ResultCode
from recorder.store.directory import PhoneInUse, UserExists, UserFields, UserRow
from recorder.store.passwords import HashingBusy, hash_password

logger = logging.getLogger(__name__)

USER_ACTIONS = ("ADD", "MODIFY", "DELETE", "LIST")
PHONE_ACTIONS = ("ADD", "DELETE")
PHONEID_MAX = 10  # "Import Data Types": PHONEID char(10)
SITEID_MAX = 2147483647


def import_user(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, USER_ACTIONS)
    if verb == "LIST":
        return _list(ctx)
    if verb == "ADD":
        return _add(ctx, params)
    user_id = params.integer("USERID")
    if user_id is None:
        raise invalid(f"USERID is required to {verb} a user")
    now = ctx.clock()
    if verb == "DELETE":
        if not ctx.store.directory.delete_user(user_id, now=now):
            raise RequestError(ResultCode.API_USER_NOT_FOUND, f"no user with USERID {user_id}")
        logger.info("IMPORTUSER: user %d deleted", user_id)
        return ApiResult(ResultCode.API_OK, f"User {user_id} deleted",
                         [("USERID", str(user_id))])
    fields = _fields(ctx, params, adding=False)
    with _conflicts():
        found = ctx.store.directory.modify_user(user_id, fields, now=now)
    if not found:
        raise RequestError(ResultCode.API_USER_NOT_FOUND, f"no user with USERID {user_id}")
    logger.info("IMPORTUSER: user %d modified", user_id)
    return ApiResult(ResultCode.API_OK, f"User {user_id} modified", [("USERID", str(user_id))])


def _add(ctx: ApiContext, params: Params) -> ApiResult:
    # "The field USERID is ignored when the action is ADD." Ignored as documented, so not
    # logged as a parameter that went nowhere.
    params.ignore("USERID")
    fields = _fields(ctx, params, adding=True)
    with _conflicts():
        user_id = ctx.store.directory.add_user(fields, now=ctx.clock(),
                                     allow_duplicate_name=params.flag("ALLOWDUPLICATE") == "Y")
    logger.info("IMPORTUSER: user %d added (%s %s)", user_id, fields.first_name,
                fields.last_name)
    return ApiResult(ResultCode.API_OK, f"User {user_id} added", [("USERID", str(user_id))])


@contextmanager
def _conflicts() -> Iterator[None]:
    """Turns the store's refusals into the manual's codes; the store changed nothing."""
    try:
        yield
    except UserExists as exc:
        raise RequestError(ResultCode.API_USER_ALREADY_EXIST, str(exc)) from exc
    except PhoneInUse as exc:
        raise RequestError(ResultCode.API_PHONEID_IN_USE, str(exc)) from exc


def _fields(ctx: ApiContext, params: Params, *, adding: bool) -> UserFields:
    first, last = params.text("FIRSTNAME"), params.text("LASTNAME")
    for name, value in (("FIRSTNAME", first), ("LASTNAME", last)):
        if adding and not value:
            raise invalid(f"{name} is required to ADD a user")
        if value == "":
            raise invalid(f"{name} cannot be blank")
    password = params.text("PASSWORD")
    return UserFields(
        username=params.text("USERNAME"),
        employee_id=params.text("EMPLOYEEID"),
        first_name=first,
        last_name=last,
        status=params.text("STATUS") or None,
        sys_user=params.text("SYS_USER"),
        domain=params.text("DOMAIN"),
        email=params.text("EMAIL"),
        crm_user=params.text("CRM_USER"),
        site_id=_site_id(params),
        # A blank PASSWORD leaves the password as it is rather than removing it.
        password_hash=_hash(ctx, password) if password else None,
        allow_self_record=params.text("ALLOWSELFRECORD") or None,
        allow_self_download=params.text("ALLOWSELFDOWNLOAD") or None,
        add_time=_time(params, "ADD_TIME"),
        mod_time=_time(params, "MOD_TIME"),
        phones=_phones(params),
    )


def _hash(ctx: ApiContext, password: str) -> str:
    """The password's hash, made on the hashing thread (a flood of IMPORTUSER then costs one
    core, and waits there rather than on every API worker); 47 when too many wait for it."""
    if ctx.passwords is None:
        return hash_password(password)
    try:
        return ctx.passwords.hash(password)
    except HashingBusy as exc:
        raise RequestError(ResultCode.API_COMMAND_QUEUE_FULL, str(exc)) from exc


def _site_id(params: Params) -> int | None:
    raw = params.text("SITEID")
    if not raw:
        return None
    value = parse_int(raw)
    if value is None or not 0 <= value <= SITEID_MAX:
        raise RequestError(ResultCode.API_SITEID_NOT_VALID,
                           f"SITEID must be a whole number from 0 to {SITEID_MAX}, "
                           f"not {raw[:40]!r}")
    return value


def _time(params: Params, name: str) -> float | None:
    raw = params.text(name)
    return parse_user_datetime(name, raw) if raw else None


def _phones(params: Params) -> tuple[str, ...] | None:
    """PHONES as the manual's example sends it: "1123, 3343, 3234"."""
    raw = params.text("PHONES")
    if raw is None:
        return None
    phones = tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))
    for phone in phones:
        if len(phone) > PHONEID_MAX:
            raise invalid(f"PHONES: {phone[:40]!r} is {len(phone)} characters long; a "
                          f"PHONEID's limit is {PHONEID_MAX}")
    return phones


def _list(ctx: ApiContext) -> ApiResult:
    users = ctx.store.directory.list_users()
    body: list[Node] = [("USERS", [
        ("COUNT", str(len(users))),
        *(("USER", _user(u)) for u in users),
    ])]
    return ApiResult(ResultCode.API_OK, "API_OK", body)


def _user(user: UserRow) -> list[Node]:
    # The manual's LIST example: its 15 fields in its order, SITE_ID -1 when no site is set
    # (as the recorder the example comes from answers). One spelling each, the example's: the
    # parameter text's USERID / EMPLOYEE_ID / FIRST_NAME / LAST_NAME name request parameters
    # (read in either spelling), not answer fields. Then, after all of them, the two the
    # recorder adds (docs/api-notes.md, "Users and phones").
    return [
        ("USER_ID", str(user.user_id)),
        ("USERNAME", user.username),
        ("EMPLOYEEID", user.employee_id),
        ("FIRSTNAME", user.first_name),
        ("LASTNAME", user.last_name),
        ("AGENT", "TRUE" if user.agent else "FALSE"),
        ("STATUS", user.status),
        ("ADD_TIME", user_datetime(user.add_time)),
        ("MOD_TIME", user_datetime(user.mod_time)),
        ("SYS_USER", user.sys_user),
        ("SYS_DOMAIN", user.domain),
        ("EMAIL", user.email),
        ("CRM_USER", user.crm_user),
        ("SITE_ID", "-1" if user.site_id is None else str(user.site_id)),
        ("PHONES", ",".join(user.phones)),
        ("ALLOWSELFRECORD", user.allow_self_record),
        ("ALLOWSELFDOWNLOAD", user.allow_self_download),
    ]


def import_agent_phone(ctx: ApiContext, params: Params) -> ApiResult:
    verb = action(params, PHONE_ACTIONS, BLANK)
    phone = required(params, "PHONEID", BLANK)
    agent = find_agent(ctx, params, names_first=False, missing=BLANK)
    body: list[Node] = [("AGENTID", str(agent.user_id)), ("PHONEID", phone)]
    with _conflicts():
        if verb == "ADD":
            done = ctx.store.directory.assign_phone(agent.user_id, phone, now=ctx.clock())
            message = (f"Phone {phone} assigned to agent {agent.user_id}" if done
                       else f"Phone {phone} was already assigned to agent {agent.user_id}")
        else:
            done = ctx.store.directory.unassign_phone(agent.user_id, phone)
            message = (f"Phone {phone} removed from agent {agent.user_id}" if done
                       else f"Phone {phone} was not assigned to agent {agent.user_id}")
    if done:
        logger.info("IMPORTAGENTPHONE: %s", message)
    return ApiResult(ResultCode.API_OK, message, body)
