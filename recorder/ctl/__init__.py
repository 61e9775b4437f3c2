"""``recorderctl``: the field engineer's command line for recorderd.

One module per command (or group); ``common`` holds what they share. Commands that talk to the
service find it from --host/--port/--web-port, else from the configuration recorderd reads;
offline commands (purge, recover, check-config, cav, devices, user, token, audit, verify,
key, decrypt, seal-key) work on this machine directly.
docs/recorderctl.md describes every command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from recorder.ctl import (
    audit,
    calls,
    cav,
    channels,
    checkconfig,
    decrypt,
    devices,
    events,
    export,
    key,
    levels,
    purge,
    recover,
    sealkey,
    selftest,
    send,
    status,
    token,
    user,
    verify,
)
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

# In --help's order: looking, then doing, then offline work.
COMMANDS = (status, channels, levels, calls, events, export, send, selftest, devices,
            checkconfig, recover, purge, cav, user, token, audit, verify, key, decrypt,
            sealkey)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recorderctl", description="Field diagnostics for recorderd: talk to a running "
        "service, or work on its data directory.", epilog=EPILOG, formatter_class=FORMATTER)
    connection_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
