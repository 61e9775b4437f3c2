"""``recorderctl``: the field engineer's command line for recorderd.

One module per command (or group); ``common`` holds what they share. Commands that talk to the
service find it from --host/--port/--web-port, else from the configuration recorderd reads;
offline commands (purge, recover, check-config, cav, devices, user, token, audit, verify,
key, decrypt, seal-key) work on this machine directly.
docs/recorderctl.md describes every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Collection

from recorder.ctl.client import ClientError
from recorder.ctl.common import EXIT_UNREACHABLE, FORMATTER, CtlError, connection_options

EPILOG = """commands that talk to recorderd find it from --host, --port (socket API) and
--web-port (WebAPI), else from the configuration (--config, else $RECORDER_CONFIG, else
/etc/recorder/recorder.toml, else the defaults 127.0.0.1, 5620 and 2012). `recorderctl COMMAND
--help` describes each command and its exit status.

exit status (every command; details in its --help):
  0  done (for status: healthy; for selftest: PASS)
  1  the recorder answered with an error, or a check failed
  2  usage or configuration error
  3  the recorder could not be reached or did not answer"""

# In --help's order: looking, then doing, then offline work. Each command's module is imported
# only when that command runs (a module brings the libraries of its work: numpy, lxml, the
# store, cryptography), so a command starts in a fraction of the time; its one-line help is
# repeated here for --help, and tests/test_ctl_help.py checks it against the module's.
# (command, module under recorder.ctl, one-line help)
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("status", "status", "health, boards, channels, disk, database, active recordings"),
    ("channels", "channels", "show every channel: state, trigger, levels, lost audio"),
    ("levels", "levels", "live level meters for a few seconds"),
    ("calls", "calls", "list stored recordings (CALLLIST)"),
    ("events", "events", "print the recorder's events as they happen"),
    ("export", "export", "write one recording to a file, in any format"),
    ("send", "send", "send one XML request and print its RESULT"),
    ("selftest", "selftest", "record, export and decode a test call: PASS/FAIL"),
    ("devices", "devices", "list sound input devices and serial ports"),
    ("check-config", "checkconfig", "validate a configuration and open its boards"),
    ("recover", "recover", "complete the recordings a crash left in progress"),
    ("purge", "purge", "purge the recordings whose retention has expired"),
    ("cav", "cav", "inspect or decrypt an exported CAV file"),
    ("user", "user", "add a portal user, or set a password"),
    ("token", "token", "add, list or revoke WebAPI bearer tokens"),
    ("audit", "audit", "read the audit trail (portal sign-ins, plays, ...)"),
    ("verify", "verify", "check the stored recordings against their hashes"),
    ("key", "key", "make, name or rotate the recordings' master key"),
    ("decrypt", "decrypt", "write an encrypted recording's plain audio"),
    ("seal-key", "sealkey", "make or name the key that seals the evidence"),
)


def _parser(chosen: Collection[str] = ()) -> argparse.ArgumentParser:
    """recorderctl's parser: the commands in ``chosen`` in full, every other one by its name
    and one-line help only (enough for --help and to tell which command was asked for)."""
    parser = argparse.ArgumentParser(
        prog="recorderctl", description="Field diagnostics for recorderd: talk to a running "
        "service, or work on its data directory.", epilog=EPILOG, formatter_class=FORMATTER)
    connection_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        if name in chosen:
            importlib.import_module(f"recorder.ctl.{module}").register(commands)
        else:
            # Takes no arguments of its own: the first parse only finds the command's name.
            commands.add_parser(name, help=help_text, add_help=False)
    return parser


def parse(argv: list[str] | None) -> argparse.Namespace:
    """``argv`` parsed in two steps: which command (top-level --help and usage errors end
    here, as before), then with only that command's module imported."""
    command = _parser().parse_known_args(argv)[0].command
    return _parser((command,)).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # Library modules log through the root logger; a command shows errors, not chatter.
    logging.basicConfig(level=logging.ERROR, format="recorderctl: %(levelname)s: %(message)s")
    try:
        code: int = args.run(args)
    except CtlError as exc:
        for line in exc.message.splitlines() or [""]:
            print(f"recorderctl {args.command}: {line}", file=sys.stderr)
        return exc.code
    except ClientError as exc:
        print(f"recorderctl {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130  # as a shell reports a command Ctrl-C ended
    except BrokenPipeError:
        # `recorderctl events | head -3`: the reader has gone, which is not an error here.
        # Python's own flush at exit would complain about the closed pipe; point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
