"""``recorderctl user``: portal users on this machine's database: ``add`` (the first
administrator, since there is no default password) and ``passwd`` (a new password, which also
ends that user's portal sessions)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time

from recorder.api.protocol.permissions import PERMISSIONS
from recorder.config.model import Config
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    offline_config,
    open_offline_store,
)
from recorder.errors import StoreError
from recorder.store.directory import DirectoryConflict, DirectoryStore, UserFields, UserQuery
from recorder.store.passwords import hash_password

ADMIN_ROLE = "Administrator"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024

EPILOG = f"""Works on the database of the configuration's data directory (--config), whether
recorderd runs or not; recorderd creates the database on its first start.

  recorderctl user add --admin alice        the first administrator: role {ADMIN_ROLE!r},
                                            every permission of MODIFYROLEPERMISSION's table
  recorderctl user passwd alice             a new password (her portal sessions end)

The password is asked for twice on a terminal, or read as one line from stdin with
--password-stdin. At least {MIN_PASSWORD} characters. Other users and roles are managed with the
API's IMPORTUSER, MODIFYROLE, MODIFYUSERROLE and MODIFYROLEPERMISSION.

exit status:
  0  done
  1  the user exists already (add) or does not (passwd), or the database failed
  2  usage or configuration error, no database, or an unusable password"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "user", "add a portal user, or set a password", EPILOG, run)
    parser.add_argument("action", choices=("add", "passwd"))
    parser.add_argument("username", help="the portal user name (IMPORTUSER's USERNAME)")
    parser.add_argument("--admin", action="store_true",
                        help=f"give the user the role {ADMIN_ROLE!r} (every permission)")
    parser.add_argument("--first-name", default=None, help="first name (default: the user "
                        "name)")
    parser.add_argument("--last-name", default="", help="last name")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the password as one line from stdin")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        if not sys.stdin.isatty():
            raise CtlError("no terminal to ask for the password on: use --password-stdin",
                           EXIT_USAGE)
        password = getpass.getpass(f"password for {args.username}: ")
        if getpass.getpass("again: ") != password:
            raise CtlError("the two passwords differ", EXIT_USAGE)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CtlError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters",
                       EXIT_USAGE)
    return password


def run(args: argparse.Namespace) -> int:
    config = offline_config(args)
    username = args.username.strip()
    if not username or len(username) > 255:
        raise CtlError("a user name has 1 to 255 characters", EXIT_USAGE)
    store = open_offline_store(config)
    try:
        directory = store.directory
        found = directory.find_users(UserQuery(username=username))
        if args.action == "add" and found:
            raise CtlError(f"user {username} exists already (USERID {found[0].user_id}); "
                           f"set a password with: recorderctl user passwd {username}",
                           EXIT_FAILED)
        if args.action == "passwd" and not found:
            raise CtlError(f"no user {username}", EXIT_FAILED)
        password_hash = hash_password(_password(args))
        now = time.time()
        if args.action == "passwd":
            directory.modify_user(found[0].user_id, UserFields(password_hash=password_hash),
                                  now=now)
            print(f"user {username}: password changed; their portal sessions end")
            return EXIT_OK
        user_id = directory.add_user(UserFields(
            username=username, first_name=args.first_name or username,
            last_name=args.last_name, password_hash=password_hash), now=now)
        role = ""
        if args.admin:
            role = _grant_admin(store.directory, user_id)
        print(f"user {username} added (USERID {user_id}){role}")
        print(_where(config))
        return EXIT_OK
    except DirectoryConflict as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()


def _grant_admin(directory: DirectoryStore, user_id: int) -> str:
    role = directory.find_role(name=ADMIN_ROLE) or directory.add_role(
        ADMIN_ROLE, "every permission (made by recorderctl user add --admin)")
    assert role is not None
    for permission in PERMISSIONS:
        directory.set_role_permission(role.role_id, permission, True)
    directory.set_user_role(user_id, role.role_id, True)
    return f", role {ADMIN_ROLE}"


def _where(config: Config) -> str:
    portal = config.portal
    if not portal.enabled:
        return ("the portal is off: set [portal] enabled = true in the configuration and "
                "restart recorderd (docs/portal.md)")
    scheme = "https" if portal.tls_cert else "http"
    return f"sign in at {scheme}://{portal.host}:{portal.port}/"
