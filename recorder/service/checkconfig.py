"""``--check-config``: validate a configuration, open every board, and summarise what it sets up.

Shared by ``recorderd --check-config`` and ``recorderctl check-config``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from recorder.config.loader import load_config
from recorder.config.model import Config
from recorder.crypt.keys import key_file_problem
from recorder.drivers.registry import create_driver
from recorder.errors import ConfigError, DriverError
from recorder.service.portcheck import busy_port_warnings
from recorder.store.sealkey import seal_key_problem


def print_problems(program: str, source: Path | None, problems: list[str]) -> None:
    """The problems of an invalid configuration on stderr, one a line, under a heading."""
    print(f"{program}: invalid configuration ({source or 'embedded defaults'}):",
          file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def check_config(source: Path | None) -> tuple[list[str], str]:
    """(problems, summary) of the configuration at ``source`` (None: the embedded defaults).

    Opens every board's device or files too, without starting capture: a board that cannot
    open would stop recorderd from starting. No problems means the summary is meaningful.
    """
    try:
        config = load_config(source)
    except ConfigError as exc:
        return list(exc.problems), ""
    problems = []
    key = key_problem(config)
    if key is not None:
        problems.append(key)
    seal = seal_problem(config)
    if seal is not None:
        problems.append(seal)
    for i, board in enumerate(config.boards):
        try:
            create_driver(f"boards[{i}]", board)
        except DriverError as exc:
            problems.append(str(exc))
    if problems:
        return problems, ""
    # Facts of this host at this moment, not of the file: warnings, after the summary.
    warnings = busy_port_warnings(config)
    data_dir = _data_dir_problem(config.storage.data_dir)
    if data_dir:
        warnings.append(data_dir)
    return [], "\n".join([summary(config, source)] + [f"  warning: {w}" for w in warnings])


def key_problem(config: Config) -> str | None:
    """Why recorderd, with storage.encrypt, could not use storage.key_file (None: it can)."""
    if not config.storage.encrypt or not config.storage.key_file:
        return None
    problem = key_file_problem(Path(config.storage.key_file))
    return None if problem is None else f"storage.key_file: {problem}"


def seal_problem(config: Config) -> str | None:
    """Why recorderd could not use storage.seal_key_file (None: it can, or none is set)."""
    if not config.storage.seal_key_file:
        return None
    problem = seal_key_problem(Path(config.storage.seal_key_file))
    return None if problem is None else f"storage.seal_key_file: {problem}"


def _data_dir_problem(data_dir: Path) -> str | None:
    """Why recorderd could not create or write ``data_dir``, as this user sees it (the
    service may run as another: a warning, not a refusal)."""
    existing = data_dir
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"storage.data_dir: {existing} is not a directory, so {data_dir} cannot be created"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "written" if existing == data_dir else "created"
        return (f"storage.data_dir: {data_dir} cannot be {what} by this user "
                f"({existing} is not writable); recorderd would exit 78")
    return None


def summary(config: Config, source: Path | None) -> str:
    channels = sum(len(board.devices) for board in config.boards)
    api = config.api
    lines = [
        f"configuration OK ({source or 'embedded defaults'})",
        f"  data_dir:   {config.storage.data_dir}",
        f"  socket API: {api.host}:{api.socket_port}",
        f"  WebAPI:     {api.host}:{api.web_port}"
        + (f", HTTPS {api.host}:{api.tls_port}" if api.tls_cert else ""),
        f"  recording:  {_policy_summary(config, channels)}",
        f"  retention:  {_retention_summary(config)}",
        f"  e-mail:     {_smtp_summary(config)}",
        f"  boards:     {len(config.boards)} with {channels} channel(s)",
    ]
    lines += [f"    boards[{i}]: {b.driver}, devices {', '.join(b.devices)}"
              for i, b in enumerate(config.boards)]
    if not config.boards:
        lines.append("  warning: no boards, so nothing can be recorded")
    lines += [f"  warning: {warning}" for i, board in enumerate(config.boards)
              for warning in board.host_warnings(f"boards[{i}]")]
    return "\n".join(lines)


def _policy_summary(config: Config, channels: int) -> str:
    rec = config.recording
    schedules = (f"{len(rec.schedules)} schedule(s), first match decides" if rec.schedules
                 else "every call (no schedules)")
    limit = rec.max_concurrent or channels
    return (f"{schedules}; {len(rec.blocked)} blocked filter(s); at most {limit} at once")


def _retention_summary(config: Config) -> str:
    ret = config.retention
    keep = f"{ret.default_keep_days} day(s)" if ret.default_keep_days else "forever"
    floor = (f"new recordings need {ret.min_free_mb} MB free" if ret.min_free_mb
             else "no free-space floor")
    return (f"kept {keep} by default, {len(ret.archive_actions)} archive action(s), purge "
            f"daily at {ret.purge_time}; {floor}")


def _smtp_summary(config: Config) -> str:
    smtp = config.smtp
    if not smtp.configured:
        return "not configured (EMAIL answers 31)"
    return f"{smtp.host}:{smtp.effective_port} ({smtp.security})"
