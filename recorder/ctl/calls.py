"""``recorderctl calls``: stored recordings, found with CALLLIST's filters."""

from __future__ import annotations

import argparse
import re
import time
from datetime import datetime, timedelta

from lxml import etree

from recorder.ctl.common import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    api_call,
    clock,
    command,
    connection_options,
    fields,
    local_time,
    offline_config,
    open_offline_store,
    parse_line,
    print_json,
    print_table,
    require_ok,
    target,
)

EPILOG = f"""Filters are CALLLIST's (the manual's), combined with AND, each an exact match.
Times (--from, --to) are UNIX seconds, an ISO 8601 date or date and time in local time
(2026-11-23, 2026-11-23T09:30, "2026-11-23 09:30:15", with an offset such as +01:00 if
wanted), or a time ago: 90s, 15m, 2h, 7d. A --to date alone means the end of that day.
Newest first; at most --limit calls (the recorder may allow fewer: api.calllist_max_rows).

--offline reads the database of the configuration's data directory (--config) instead of asking
the service: the same answer, for when recorderd is down. It only reads.

{EXIT_CODES}"""

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])(?:\s+ago)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# option dest -> CALLLIST parameter
FILTERS = {"device": "DEVICEID", "alias": "DEVICEALIAS", "ani": "ANI", "dnis": "DNIS",
           "agent": "SYS_USER", "crm_user": "CRM_USER", "group": "GROUP", "gate": "GATE"}


def parse_time(text: str, *, end: bool = False, now: float | None = None) -> int:
    """``text`` as UNIX seconds (see EPILOG); ValueError saying what is accepted."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    ago = _AGO.match(text.lower())
    if ago:
        return int((time.time() if now is None else now)
                   - float(ago.group(1)) * _UNITS[ago.group(2)])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give UNIX seconds, 2026-11-23, "
                         "2026-11-23T09:30 or a time ago such as 2h") from None
    if end and len(text) == 10:  # a date alone: --to includes the whole day
        moment += timedelta(days=1, seconds=-1)
    return int(moment.timestamp())  # naive: local time


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "calls", "list stored recordings (CALLLIST)", EPILOG, run)
    parser.add_argument("--device", metavar="DEVICEID", help="the device recorded")
    parser.add_argument("--alias", metavar="DEVICEALIAS", help="the device alias")
    parser.add_argument("--ani", help="the caller's number")
    parser.add_argument("--dnis", help="the number called")
    parser.add_argument("--agent", metavar="SYS_USER",
                        help="the agent's network user name (SYS_USER)")
    parser.add_argument("--crm-user", metavar="CRM_USER", help="the agent's CRM user")
    parser.add_argument("--group", help="the ACD group")
    parser.add_argument("--gate", help="the gate (skill set, vector)")
    parser.add_argument("--user", nargs=2, action="append", default=[], metavar=("N", "VALUE"),
                        help="USERn equals VALUE (N from 1 to 15; repeatable)")
    parser.add_argument("--from", dest="start", metavar="TIME",
                        help="recorded at or after TIME")
    parser.add_argument("--to", dest="end", metavar="TIME", help="recorded at or before TIME")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N calls (CALLCOUNT)")
    parser.add_argument("--last", action="store_true",
                        help="only the newest matching call (as --limit 1)")
    parser.add_argument("--files", action="store_true",
                        help="print only the recordings' file names, one a line (for scripts: "
                        'sox --i "$(recorderctl calls --last --files)")')
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of the CALLLIST results, every field")
    parser.add_argument("--offline", action="store_true",
                        help="read the data directory's database directly (recorderd down)")
    connection_options(parser, defaults=False)


def _params(args: argparse.Namespace) -> dict[str, str | int]:
    params: dict[str, str | int] = {
        name: getattr(args, dest) for dest, name in FILTERS.items() if getattr(args, dest)}
    for number, value in args.user:
        if not number.isdigit() or not 1 <= int(number) <= 15:
            raise CtlError(f"--user {number}: USER fields are numbered 1 to 15", EXIT_USAGE)
        params[f"USER{int(number)}"] = value
    try:
        if args.start:
            params["CALLDATESTART"] = parse_time(args.start)
        if args.end:
            params["CALLDATEEND"] = parse_time(args.end, end=True)
    except ValueError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    if args.last:
        if args.limit is not None and args.limit != 1:
            raise CtlError("--last is --limit 1; give one or the other", EXIT_USAGE)
        params["CALLCOUNT"] = 1
    elif args.limit is not None:
        if args.limit < 1:
            raise CtlError("--limit must be 1 or more", EXIT_USAGE)
        params["CALLCOUNT"] = args.limit
    return params


def _offline(args: argparse.Namespace, params: dict[str, str | int]) -> etree._Element:
    """CALLLIST answered from the database itself, as the service would answer it."""
    from recorder.api.handlers.status import stored_calls  # noqa: PLC0415
    from recorder.api.protocol.params import Params  # noqa: PLC0415
    from recorder.api.protocol.xmlcodec import render_result  # noqa: PLC0415
    from recorder.api.request import ApiResult  # noqa: PLC0415
    from recorder.errors import ResultError  # noqa: PLC0415

    config = offline_config(args)
    store = open_offline_store(config)
    try:
        answer = stored_calls(store, Params({k: str(v) for k, v in params.items()}, "CALLLIST"),
                              config.api.calllist_max_rows, time.time())
    except ResultError as exc:
        answer = ApiResult(exc.code, exc.message)
    finally:
        store.close()
    return parse_line(render_result("CALLLIST", "1", answer), "CALLLIST")


def run(args: argparse.Namespace) -> int:
    params = _params(args)
    result = require_ok(_offline(args, params) if args.offline
                        else api_call(target(args), "CALLLIST", **params))
    calls = [fields(found) for found in result.iterfind("SEARCHRESULT")]
    if args.json:
        print_json(calls)
        return EXIT_OK
    if args.files:
        for call in calls:
            print(call.get("FILENAME", ""))
        return EXIT_OK
    message = result.findtext("RESULTMSG") or ""
    if not calls:
        print("no calls match")
        return EXIT_OK

    def started(call: dict[str, str]) -> str:
        stamp = call.get("RECORDINGTIME", "")
        return local_time(int(stamp)) if stamp.isdigit() else ""

    def duration(call: dict[str, str]) -> str:
        value = call.get("DURATION", "")
        return clock(int(value)) if value.isdigit() else value

    print_table(["RECORDID", "START", "DURATION", "DEVICE", "ANI", "DNIS", "FILE"],
                [[c.get("RECORDID", ""), started(c), duration(c), c.get("DEVICEID", ""),
                  c.get("ANI", ""), c.get("DNIS", ""), c.get("FILENAME", "")] for c in calls],
                right={0, 2})
    if message != "API_OK":
        print(message)  # e.g. "showing the newest 100 calls (api.calllist_max_rows)"
    return EXIT_OK
