"""``recorderctl status``: the service at a glance, from GET /status on the web port."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Mapping
from typing import Any

from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    CtlError,
    SubParsers,
    command,
    connection_options,
    elapsed,
    local_time,
    offline_config,
    print_json,
    print_table,
    size,
    target,
    web_json,
)
from recorder.service.datalock import running_holder

EPILOG = """Reads GET /status on the web port (--web-port, else api.web_port of the
configuration); the document is described in docs/metrics.md.

exit status:
  0  the recorder is healthy
  1  the recorder answered but is unhealthy: a health problem (a hung or dead component), the
     database not answering, free disk space below the floor, or a board not running
  2  usage error
  3  the recorder could not be reached or did not answer"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "status", "health, boards, channels, disk, database, active "
                     "recordings", EPILOG, run)
    parser.add_argument("--json", action="store_true", help="print the /status document")
    connection_options(parser, defaults=False)


def problems(doc: Mapping[str, Any]) -> list[str]:
    """Why the service is unhealthy, one sentence each; empty when it is healthy."""
    found = [str(p) for p in doc.get("health", {}).get("problems", [])]
    if not found and not doc.get("health", {}).get("ok", False):
        found.append("the service reports itself unhealthy")
    database = doc.get("database", {})
    if not database.get("ok", False):
        found.append(f"database not ok: {database.get('detail') or 'no detail'}")
    disk = doc.get("disk", {})
    if not disk.get("ok", False):
        found.append(f"disk: {size(disk.get('free_bytes') or 0)} free in {disk.get('path')}, "
                     f"below the floor of {size(disk.get('min_free_bytes') or 0)}")
    for board in doc.get("boards", []):
        if board.get("state") != "running":
            detail = f" ({board['detail']})" if board.get("detail") else ""
            found.append(f"{board.get('name')} ({board.get('driver')}) is "
                         f"{board.get('state')}{detail}")
    return found


def _show(doc: Mapping[str, Any], found: list[str]) -> None:
    api = doc.get("api", {})
    print(f"recorderd {doc.get('version', '?')}, ident {doc.get('ident', '?')}, pid "
          f"{doc.get('pid', '?')}, up {elapsed(float(doc.get('uptime_seconds', 0)))} "
          f"(since {local_time(doc.get('started'))})")
    print("health:     " + ("ok" if not found else "UNHEALTHY"))
    for problem in found:
        print(f"  - {problem}")
    boards = doc.get("boards", [])
    print(f"boards:     {len(boards)}")
    for board in boards:
        detail = f" ({board['detail']})" if board.get("detail") else ""
        print(f"  {board.get('name')}: {board.get('driver')}, {board.get('sample_rate')} Hz, "
              f"{board.get('channels')} channel(s), {board.get('state')}{detail}")
    channels = doc.get("channels", [])
    states = Counter(str(c.get("state")) for c in channels)
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    print(f"channels:   {len(channels)}" + (f" ({by_state})" if by_state else ""))
    disk = doc.get("disk", {})
    print(f"disk:       {size(disk.get('free_bytes') or 0)} free of "
          f"{size(disk.get('total_bytes') or 0)} in {disk.get('path')} (floor "
          f"{size(disk.get('min_free_bytes') or 0)}), {'ok' if disk.get('ok') else 'LOW'}")
    database = doc.get("database", {})
    stored = database.get("recordings")
    print(f"database:   {database.get('backend')} {database.get('path')}, "
          + (f"ok, {stored} recording(s)" if database.get("ok")
             else f"NOT OK: {database.get('detail')}")
          + (f", {database['errors']} error(s) since start" if database.get("errors") else ""))
    counts = doc.get("recordings", {})
    print(f"recordings: {counts.get('active', 0)} active; since start {counts.get('started', 0)}"
          f" started, {counts.get('completed', 0)} completed, {counts.get('refused', 0)} "
          "refused")
    print(f"API:        socket {api.get('socket')}, web {api.get('web')}"
          + (f", tls {api['tls']}" if api.get("tls") else "")
          + f"; {api.get('requests', 0)} request(s), {api.get('event_subscribers', 0)} event "
            "subscriber(s)")
    active = doc.get("active", [])
    if active:
        print("active recordings:")
        print_table(
            ["  RECORDID", "DEVICE", "STARTED", "SECONDS", "STATE", "FILE"],
            [[f"  {a.get('recordid') or '-'}", str(a.get("device")),
              local_time(a.get("started")), f"{float(a.get('seconds') or 0):.1f}",
              "paused" if a.get("paused") else ("partial" if a.get("partial") else "recording"),
              str(a.get("filename") or "")] for a in active],
            right={0, 3})


def _unreachable_hint(args: argparse.Namespace) -> str:
    """What the data directory says about a service that does not answer."""
    try:
        data_dir = offline_config(args).storage.data_dir
    except CtlError:
        return ""
    pid = running_holder(data_dir)
    if pid is not None:
        return (f"recorderd (pid {pid}) is running on {data_dir} but does not answer: it may "
                f"be starting, stopping or hung; `systemctl status recorder` shows its "
                f"STATUS, `kill -USR1 {pid}` logs every thread's stack")
    return (f"no recorderd is running on {data_dir}: `systemctl status recorder` and "
            "`journalctl -u recorder -p warning` say why; `recorderctl calls --offline` "
            "lists what was recorded")


def run(args: argparse.Namespace) -> int:
    try:
        doc = web_json(target(args), "/status")
    except CtlError as exc:
        if exc.code == EXIT_UNREACHABLE:
            hint = _unreachable_hint(args)
            if hint:
                raise CtlError(f"{exc.message}\n{hint}", exc.code) from exc
        raise
    if not isinstance(doc, dict):
        raise CtlError("/status answered JSON that is not an object", EXIT_FAILED)
    found = problems(doc)
    if args.json:
        print_json(doc)
    else:
        _show(doc, found)
    return EXIT_FAILED if found else EXIT_OK
