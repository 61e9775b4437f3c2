"""``recorderctl audit``: the audit trail (who signed in, searched, played, downloaded,
deleted what, when, from where), read from this machine's database."""

from __future__ import annotations

import argparse
import dataclasses

from recorder.ctl.calls import parse_time
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    local_time,
    offline_config,
    open_offline_store,
    print_json,
    print_table,
)
from recorder.errors import StoreError
from recorder.store.audit import AuditQuery

EPILOG = """Newest first. Reads the database of the configuration's data directory (--config)
directly, whether recorderd runs or not; it never changes it (nothing can: the trail is
append-only). Times (--since, --until) as for `recorderctl calls`: UNIX seconds, an ISO 8601
date or date and time in local time, or a time ago (90s, 15m, 2h, 7d).

exit status:
  0  done
  1  the database failed
  2  usage or configuration error, or no database"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "audit", "read the audit trail (portal sign-ins, plays, ...)",
                     EPILOG, run)
    parser.add_argument("--user", help="only this user name's entries")
    parser.add_argument("--action", help="only this action (signin, signin-failed, signout, "
                        "search, play, download, delete, export, email, api-change, token)")
    parser.add_argument("--since", metavar="TIME", help="at or after TIME")
    parser.add_argument("--until", metavar="TIME", help="at or before TIME")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="at most N entries (default 100)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def printable(text: str) -> str:
    """``text`` safe for a terminal: a name typed into the sign-in form may hold escape
    sequences meant for whoever reads the trail."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def run(args: argparse.Namespace) -> int:
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until, end=True) if args.until else None
    except ValueError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    if args.limit < 1:
        raise CtlError("--limit: at least 1", EXIT_USAGE)
    store = open_offline_store(offline_config(args))
    try:
        if store.audit is None:
            raise CtlError("this store keeps no audit trail", EXIT_FAILED)
        entries = store.audit.list_audit(AuditQuery(
            username=args.user, action=args.action, since=since, until=until,
            limit=args.limit))
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    if args.json:
        print_json([dataclasses.asdict(e) for e in entries])
    else:
        print_table(["TIME", "USER", "ACTION", "TARGET", "ADDRESS", "DETAIL"],
                    [[local_time(e.time), *map(printable, (e.username, e.action, e.target,
                                                           e.address, e.detail))]
                     for e in entries])
    return EXIT_OK
