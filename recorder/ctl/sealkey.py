"""``recorderctl seal-key``: the key that seals the evidence (docs/storage.md, "The seal key"):
make one (``init``), or name it (``id``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    offline_config,
)
from recorder.store.sealkey import SealKeyError, create_seal_key, load_seal_key

EPILOG = """init: 32 random bytes, mode 0600, in --key-file (default: the configuration's
storage.seal_key_file); an existing file is never overwritten. Readable by the service's user
only: under systemd, keep it root's (0400) and hand it over with LoadCredential=
(docs/systemd.md). Once recorderd has started with it, rows' seals and audit entries are HMACs
under it, and `recorderctl verify` and `audit verify` need it. Losing it loses no recording,
but the seals made with it can no longer be checked: keep a copy offline.
id: the key's id (what the audit entry that took it into use names).

exit status:
  0  done
  1  the key file could not be made
  2  usage or configuration error, no key file named, or one that cannot be used"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "seal-key", "make or name the key that seals the evidence",
                     EPILOG, run)
    parser.add_argument("action", choices=("init", "id"))
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the key file (default: the configuration's storage.seal_key_file)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def run(args: argparse.Namespace) -> int:
    path = args.key_file
    if path is None:
        configured = offline_config(args).storage.seal_key_file
        if not configured:
            raise CtlError("no key file: give --key-file, or set storage.seal_key_file",
                           EXIT_USAGE)
        path = Path(configured)
    if args.action == "init":
        try:
            made = create_seal_key(path)
        except SealKeyError as exc:
            raise CtlError(str(exc), EXIT_FAILED) from exc
        print(f"made {path} (seal key {made.id}); recorderd seals with it once "
              "storage.seal_key_file names it and it restarts; keep a copy offline")
        return EXIT_OK
    try:
        print(load_seal_key(path).id)
    except SealKeyError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    return EXIT_OK
