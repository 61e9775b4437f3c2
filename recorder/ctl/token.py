"""``recorderctl token``: the WebAPI's bearer tokens (``api.require_auth``) on this machine's
database: ``add`` (a new token for a user, shown once), ``list`` and ``revoke``."""

from __future__ import annotations

import argparse
import time

from recorder.ctl.audit import printable
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
    print_table,
)
from recorder.errors import StoreError
from recorder.store.audit import AUDIT_TOKEN, AuditEntry
from recorder.store.directory import UserQuery
from recorder.store.factory import Store
from recorder.store.tokens import new_token

MAX_LABEL = 255

EPILOG = """Works on the database of the configuration's data directory (--config), whether
recorderd runs or not. A token acts as its user, with the permissions of the user's roles at
each request (ALLOWAPIAUTH, and ALLOWEXPORTDOWNLOAD or ALLOWEXPORTEMAIL for media):

  recorderctl token add alice --label crm       a new token for alice, printed once
  recorderctl token list [alice]                 tokens (never the token itself: its start)
  recorderctl token revoke alice [--id N]        revoke token N of alice, or all of hers

Send it as the header "Authorization: Bearer <token>". Only its SHA-256 is kept: a lost
token cannot be shown again; revoke it and add another.

exit status:
  0  done
  1  no such user, no such token in force, or the database failed
  2  usage or configuration error, or no database"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "token", "add, list or revoke WebAPI bearer tokens", EPILOG,
                     run)
    parser.add_argument("action", choices=("add", "list", "revoke"))
    parser.add_argument("username", nargs="?", default=None,
                        help="the user the token acts as (optional for list)")
    parser.add_argument("--label", default="", help="what the token is for (add)")
    parser.add_argument("--id", type=int, default=None, metavar="N",
                        help="revoke only token N (see list)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def _user(store: Store, username: str) -> tuple[int, str]:
    found = store.directory.find_users(UserQuery(username=username))
    if len(found) != 1:
        raise CtlError(f"no user {username}", EXIT_FAILED)
    return found[0].user_id, found[0].username


def run(args: argparse.Namespace) -> int:
    username = (args.username or "").strip()
    if args.action != "list" and not username:
        raise CtlError(f"token {args.action} needs a USERNAME", EXIT_USAGE)
    if len(args.label) > MAX_LABEL:
        raise CtlError(f"--label: at most {MAX_LABEL} characters", EXIT_USAGE)
    store = open_offline_store(offline_config(args), seals=args.action != "list")
    try:
        tokens = store.tokens
        if tokens is None:
            raise CtlError("this store keeps no tokens", EXIT_FAILED)
        if args.action == "list":
            user_id = _user(store, username)[0] if username else None
            print_table(["ID", "USER", "TOKEN", "LABEL", "CREATED", "REVOKED"], [
                [str(t.token_id), printable(t.username), t.hint + "...", printable(t.label),
                 local_time(t.created), local_time(t.revoked) if t.revoked else ""]
                for t in tokens.list_tokens(user_id)])
            return EXIT_OK
        user_id, name = _user(store, username)
        now = time.time()
        if args.action == "add":
            token = new_token()
            token_id = tokens.add_token(user_id, token, args.label, now=now)
            _audit(store, user_id, name, now, f"added token {token_id}")
            print(token)
            print(f"token {token_id} of {name}: shown this once; send it as "
                  "\"Authorization: Bearer <token>\"")
            return EXIT_OK
        revoked = tokens.revoke_tokens(user_id, args.id, now=now)
        if not revoked:
            which = f"token {args.id}" if args.id is not None else "token"
            raise CtlError(f"{name} has no {which} in force", EXIT_FAILED)
        _audit(store, user_id, name, now,
               f"revoked token {args.id}" if args.id is not None else f"revoked {revoked} "
               "token(s)")
        print(f"{name}: {revoked} token(s) revoked")
        return EXIT_OK
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()


def _audit(store: Store, user_id: int, name: str, now: float, detail: str) -> None:
    # The action is the administrator's at this machine's shell: no portal user did it.
    if store.audit is not None:
        store.audit.append_audit(AuditEntry(time=now, user_id=None, username="",
                                            action=AUDIT_TOKEN, target=name,
                                            detail=f"recorderctl: {detail} (USERID {user_id})",
                                            address="local"))
