"""``recorderctl`` imports only the command it runs: its --help is still the one every command's
module would give, and a command's process loads neither the other commands nor numpy."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from recorder.ctl import COMMANDS, _parser, parse
from tests.helpers.ctl import ctl_env
from tests.helpers.net import closed_port

EVERY = tuple(name for name, _, _ in COMMANDS)


def test_the_help_lists_every_command_as_its_own_module_describes_it() -> None:
    # The table in recorder.ctl repeats each module's one-line help: a changed one shows here.
    assert _parser().format_help() == _parser(EVERY).format_help()


def _command_help(parser: argparse.ArgumentParser, name: str) -> str:
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub: argparse.ArgumentParser = commands.choices[name]
    return sub.format_help()


@pytest.mark.parametrize("name", EVERY)
def test_a_command_reached_in_two_steps_is_its_modules_parser(name: str) -> None:
    assert _command_help(_parser((name,)), name) == _command_help(_parser(EVERY), name)
    assert "exit status:" in _command_help(_parser((name,)), name)


def test_options_before_and_after_the_command_still_count() -> None:
    args = parse(["--port", "5720", "send", "--timeout", "2", "<REQUEST/>"])
    assert (args.command, args.port, args.timeout, args.request) == ("send", 5720, 2.0,
                                                                     "<REQUEST/>")
    with pytest.raises(SystemExit) as exited:
        parse(["--bogus", "status"])
    assert exited.value.code == 2


PROBE = """
import sys
from recorder.ctl import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("MODULES", __import__("json").dumps(sorted(sys.modules)), file=sys.stderr)
"""


def test_a_command_imports_neither_the_other_commands_nor_numpy() -> None:
    with closed_port() as port:
        done = subprocess.run(
            [sys.executable, "-c", PROBE, "--port", str(port), "--timeout", "2", "status"],
            capture_output=True, text=True, env=ctl_env(None), timeout=60, check=False)
    assert "127.0.0.1" in done.stderr, done.stderr  # it did try to reach the service
    modules = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    commands = {m for m in modules if m.startswith("recorder.ctl.")}
    assert commands <= {"recorder.ctl.status", "recorder.ctl.common", "recorder.ctl.client"}
    assert "recorder.ctl.status" in commands
    assert "numpy" not in modules
    assert not [m for m in modules if m.startswith("recorder.drivers.")
                and m not in ("recorder.drivers.registry", "recorder.drivers.settings")]
