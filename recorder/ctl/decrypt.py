"""``recorderctl decrypt``: the plain recording of an encrypted one, for an engineer with the
key (docs/encryption.md)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from recorder.crypt.access import decrypt_file, is_encrypted
from recorder.crypt.keys import CryptKeyError
from recorder.crypt.sealed import SealedError
from recorder.ctl.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CtlError, SubParsers, command
from recorder.ctl.key import key_file_of

EPILOG = """Writes FILE's audio, every chunk authenticated, to OUT (default: standard output).
The key is --key-file, else the configuration's storage.key_file; FILE's wrapped file key is
read from FILE.key beside it. A file altered, cut short or reordered is refused naming its
first bad chunk, and OUT is removed.

exit status:
  0  done
  1  no key, the wrong key, or the file does not authenticate
  2  usage error, or FILE is not an encrypted recording"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "decrypt", "write an encrypted recording's plain audio",
                     EPILOG, run)
    parser.add_argument("file", type=Path, metavar="FILE")
    parser.add_argument("-o", "--output", type=Path, metavar="OUT")
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the master key (default: the configuration's storage.key_file)")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def run(args: argparse.Namespace) -> int:
    from recorder.crypt.keyring import load_keys  # noqa: PLC0415

    source: Path = args.file
    if not source.is_file():
        raise CtlError(f"{source}: no such file", EXIT_USAGE)
    if not is_encrypted(source):
        raise CtlError(f"{source} is not an encrypted recording", EXIT_USAGE)
    try:
        # With a rotation's new key beside it (KEY_FILE.new), both: the file may be under either.
        keys = load_keys(key_file_of(args))[1]
    except CryptKeyError as exc:
        raise CtlError(f"cannot open {source} without its key: {exc}", EXIT_FAILED) from exc
    except CtlError as exc:
        raise CtlError(f"cannot open {source} without its key: {exc.message}",
                       EXIT_FAILED) from exc
    out_path: Path | None = args.output
    try:
        if out_path is None:
            decrypt_file(source, sys.stdout.buffer, keys)
            sys.stdout.buffer.flush()
        else:
            with out_path.open("wb") as out:
                decrypt_file(source, out, keys)
                out.flush()
                os.fsync(out.fileno())
    except (CryptKeyError, SealedError) as exc:
        if out_path is not None:
            out_path.unlink(missing_ok=True)  # never leave half a recording that looks whole
        raise CtlError(str(exc), EXIT_FAILED) from exc
    if out_path is not None:
        print(f"wrote {out_path}", file=sys.stderr)
    return EXIT_OK
