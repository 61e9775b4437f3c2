"""``recorderctl cav inspect|decrypt``: read a CAV export without a running recorder."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from recorder.ctl.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, FORMATTER, SubParsers

if TYPE_CHECKING:
    from recorder.archive.cav import CavAudio, CavInfo

EPILOG = """The password of an encrypted file is read from --password-file, else from the
environment variable named by --password-env ($RECORDER_CAV_PASSWORD by default), else asked
for on the terminal. No recorder needs to be running.

exit status:
  0  the file is intact (and the password right); for decrypt, the audio was written
  1  wrong password, damaged or truncated file, or the output could not be written
  2  usage error, or an encrypted file and no password given"""
PASSWORD_ENV = "RECORDER_CAV_PASSWORD"


class _UsageError(Exception):
    pass


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("cav", help="inspect or decrypt an exported CAV file",
                                 description="Verify a CAV export (audio and metadata) and "
                                             "show or extract what it holds.",
                                 epilog=EPILOG, formatter_class=FORMATTER)
    parser.set_defaults(run=run)
    actions = parser.add_subparsers(dest="cav_action", required=True, metavar="ACTION")
    inspect = actions.add_parser("inspect", help="verify the file, print its metadata and audio "
                                 "format", epilog=EPILOG, formatter_class=FORMATTER)
    inspect.add_argument("file", type=Path, help="the .cav file")
    inspect.add_argument("--xml", action="store_true", help="print the metadata XML as stored")
    decrypt = actions.add_parser("decrypt", help="verify the file and write its audio out",
                                 epilog=EPILOG, formatter_class=FORMATTER)
    decrypt.add_argument("file", type=Path, help="the .cav file")
    decrypt.add_argument("-o", "--output", type=Path, metavar="AUDIO",
                         help="where to write the audio (default: its original file name, in "
                              "the current directory)")
    decrypt.add_argument("--xml", type=Path, metavar="FILE",
                         help="also write the metadata XML to FILE")
    decrypt.add_argument("--force", action="store_true", help="overwrite existing files")
    for sub in (inspect, decrypt):
        sub.add_argument("--password-file", type=Path, metavar="FILE",
                         help="read the password from the first line of FILE")
        sub.add_argument("--password-env", metavar="VAR", default=None,
                         help=f"read the password from $VAR (default: ${PASSWORD_ENV})")


def _password(args: argparse.Namespace) -> str | None:
    """The password for ``args.file`` if it is encrypted (None if it is not)."""
    from recorder.archive import cav  # noqa: PLC0415 - numpy and lameenc: not for `send`

    if not cav.is_encrypted(args.file):
        return None
    if args.password_file is not None:
        try:
            lines = args.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise _UsageError(f"cannot read the password file: {exc}") from exc
        return lines[0] if lines else ""
    name = args.password_env or PASSWORD_ENV
    if name in os.environ:
        return os.environ[name]
    if args.password_env is not None:
        raise _UsageError(f"${name} is not set")
    if sys.stdin.isatty():
        return getpass.getpass(f"password for {args.file.name}: ")
    raise _UsageError(f"{args.file} is encrypted: give --password-file or ${PASSWORD_ENV}")


def _print_info(path: Path, info: CavInfo) -> None:
    audio = info.audio
    channels = f"{audio.channels} channel" + ("s" if audio.channels != 1 else "")
    print(f"file:       {path}")
    print("encrypted:  " + (f"yes (AES-256-GCM, {info.kdf})" if info.encrypted else "no"))
    print("integrity:  verified")
    print(f"audio:      {audio.format}, {audio.sample_rate} Hz, {channels}, "
          f"{audio.duration:.3f} s ({audio.frames} frames), {audio.bytes} bytes")
    print(f"            {audio.filename}, sha256 {audio.sha256}")
    print("metadata:")
    width = max((len(k) for k in info.metadata), default=0)
    for key, value in info.metadata.items():
        print(f"  {key:<{width}}  {value}")


def run(args: argparse.Namespace) -> int:
    from recorder.archive import cav  # noqa: PLC0415 - numpy and lameenc: not for `send`

    try:
        password = _password(args)
        if args.cav_action == "inspect":
            info = cav.read_cav(args.file, password)
            if args.xml:
                sys.stdout.write(info.xml.decode("utf-8"))
            else:
                _print_info(args.file, info)
            return EXIT_OK
        for target in (args.output, args.xml):
            if target is not None and target.exists() and not args.force:
                raise _UsageError(f"{target} exists (--force to overwrite it)")

        def stored_name(audio: CavAudio) -> Path:
            # The name comes from inside the file: only its last component is used, in the
            # current directory, and nothing existing is replaced unless asked.
            name = Path(Path(audio.filename).name or args.file.stem + ".audio")
            if name.exists() and not args.force:
                raise _UsageError(f"{name} exists (--force to overwrite it, or -o)")
            return name

        info, output = cav.extract_audio(args.file, args.output or stored_name, password)
        if args.xml is not None:
            args.xml.write_bytes(info.xml)
        print(f"{output}: {info.audio.format}, {info.audio.duration:.3f} s, "
              f"{info.audio.bytes} bytes")
        return EXIT_OK
    except _UsageError as exc:
        print(f"recorderctl cav: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (cav.CavError, OSError) as exc:
        print(f"recorderctl cav: {exc}", file=sys.stderr)
        return EXIT_FAILED
