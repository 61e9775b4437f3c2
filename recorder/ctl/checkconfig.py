"""``recorderctl check-config``: what ``recorderd --check-config`` does, from recorderctl."""

from __future__ import annotations

import argparse

from recorder.config.model import resolve_config_path
from recorder.ctl.common import EXIT_OK, EXIT_USAGE, SubParsers, command
from recorder.service.checkconfig import check_config, print_problems

EPILOG = """Validates the configuration (--config, else $RECORDER_CONFIG, else
/etc/recorder/recorder.toml if it exists, else the embedded defaults), opens every board's
device or files without capturing, and prints a summary. Every problem is listed, each naming
its key. No recorder needs to be running.

exit status:
  0  the configuration is valid and every board opens
  2  usage error, or the configuration has problems (listed on stderr)"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "check-config", "validate a configuration and open its boards",
                     EPILOG, run)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the file to check (default: the one recorderd reads)")


def run(args: argparse.Namespace) -> int:
    source = resolve_config_path(args.config)
    problems, summary = check_config(source)
    if problems:
        print_problems("recorderctl", source, problems)
        return EXIT_USAGE
    print(summary)
    return EXIT_OK
