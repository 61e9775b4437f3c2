"""``recorderctl``: the field engineer's command line for a running recorderd."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from recorder.client import ClientError, send_request
from recorder.config import load_config, resolve_config_path
from recorder.errors import ConfigError

if TYPE_CHECKING:
    from recorder.codecs.cav import CavAudio, CavInfo
    from recorder.retention import PurgeOutcome, PurgeReport

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
API_OK = 20

EPILOG = """exit status:
  0  the recorder answered API_OK (RESULTCODE 20)
  1  the recorder answered with another RESULTCODE (printed)
  2  usage error
  3  the recorder could not be reached or did not answer"""


def _connection_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    # Accepted before and after the command (``recorderctl send --port 5720 ...``); on the
    # command they default to "not given" so they do not undo what came before it.
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--host", default=default(None),
                        help="recorderd's address (default: from the config)")
    parser.add_argument("--port", type=int, default=default(None),
                        help="socket API port (default: from the config)")
    parser.add_argument("--config", metavar="FILE", default=default(None),
                        help="read host and port from this recorderd configuration")
    parser.add_argument("--timeout", type=float, default=default(10.0),
                        help="seconds to wait (10)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recorderctl", description="Talk to a running recorderd.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _connection_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    send = commands.add_parser("send", help="send one XML request and print its RESULT",
                               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    send.add_argument("request", help="the request, e.g. '<REQUEST><TYPE>TEST</TYPE>"
                                      "<REQUESTID>1</REQUESTID></REQUEST>', or - for stdin")
    send.add_argument("--raw", action="store_true", help="print the RESULT as received")
    _connection_options(send, defaults=False)
    _cav_parser(commands)
    _purge_parser(commands)
    return parser


CAV_EPILOG = """The password of an encrypted file is read from --password-file, else from the
environment variable named by --password-env ($RECORDER_CAV_PASSWORD by default), else asked
for on the terminal. No recorder needs to be running.

exit status:
  0  the file is intact (and the password right); for decrypt, the audio was written
  1  wrong password, damaged or truncated file, or the output could not be written
  2  usage error, or an encrypted file and no password given"""
PASSWORD_ENV = "RECORDER_CAV_PASSWORD"


def _cav_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = commands.add_parser("cav", help="inspect or decrypt an exported CAV file",
                                 description="Verify a CAV export (audio and metadata) and "
                                             "show or extract what it holds.",
                                 epilog=CAV_EPILOG, formatter_class=formatter)
    actions = parser.add_subparsers(dest="cav_action", required=True, metavar="ACTION")
    inspect = actions.add_parser("inspect", help="verify the file, print its metadata and audio "
                                 "format", epilog=CAV_EPILOG, formatter_class=formatter)
    inspect.add_argument("file", type=Path, help="the .cav file")
    inspect.add_argument("--xml", action="store_true", help="print the metadata XML as stored")
    decrypt = actions.add_parser("decrypt", help="verify the file and write its audio out",
                                 epilog=CAV_EPILOG, formatter_class=formatter)
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


def _address(args: argparse.Namespace) -> tuple[str, int]:
    source = resolve_config_path(args.config)
    host, port = "127.0.0.1", 5620
    if source is not None:
        try:
            api = load_config(source).api
            host, port = api.host, api.socket_port
        except ConfigError as exc:
            print(f"recorderctl: ignoring {source}: {exc.problems[0]}", file=sys.stderr)
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # the service listens everywhere; talk to it locally
    return args.host or host, args.port if args.port is not None else port


def _send(args: argparse.Namespace) -> int:
    request = sys.stdin.read() if args.request == "-" else args.request
    host, port = _address(args)
    try:
        answer = send_request(host, port, request.encode("utf-8"), args.timeout)
    except ClientError as exc:
        print(f"recorderctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        result = etree.fromstring(answer)
    except etree.XMLSyntaxError:
        print(answer.decode("utf-8", "replace"))
        print("recorderctl: the answer is not XML", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.raw:
        print(answer.decode("utf-8"))
    else:
        for element in result.iter():
            if element.text is None and not len(element):
                element.text = ""  # print <ANI></ANI> as the manual does, not <ANI/>
        etree.indent(result, space="  ")
        print(etree.tostring(result, encoding="unicode"))
    return EXIT_OK if result.findtext("RESULTCODE") == str(API_OK) else EXIT_API_ERROR


class _UsageError(Exception):
    pass


def _password(args: argparse.Namespace) -> str | None:
    """The password for ``args.file`` if it is encrypted (None if it is not)."""
    from recorder.codecs import cav  # noqa: PLC0415 - numpy and lameenc: not for `send`

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


def _cav(args: argparse.Namespace) -> int:
    from recorder.codecs import cav  # noqa: PLC0415 - numpy and lameenc: not for `send`

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
        return EXIT_API_ERROR


PURGE_EPILOG = """Purges now what the daily purge would: the recordings whose retention
([retention] in the configuration, see docs/retention.md) has expired. Their files are deleted
and their rows marked purged (CALLLIST still lists them). It works on the data directory the
configuration names, directly, whether recorderd is running or not.

exit status:
  0  every due recording was purged (with --dry-run: listed)
  1  some files could not be deleted (those recordings are kept), or the database failed
  2  usage error, or the configuration or its database cannot be used"""


def _purge_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "purge", help="purge the recordings whose retention has expired",
        description="Delete the files of expired recordings and mark their rows purged.",
        epilog=PURGE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list what would be purged; delete nothing")
    parser.add_argument("--json", action="store_true",
                        help="print the counts and every recording as one JSON object")


class _ProgressBar:
    """``[#####-----]  50/100`` redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self) -> None:
        self._drawn = ""

    def update(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // total if total else self.WIDTH
        text = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {done}/{total}"
        if text != self._drawn:  # redraw only what changed: a purge may visit millions
            self._drawn = text
            sys.stdout.write("\r" + text)
            sys.stdout.flush()

    def clear(self) -> None:
        if self._drawn:
            sys.stdout.write("\r" + " " * len(self._drawn) + "\r")
            sys.stdout.flush()

    def finish(self) -> None:
        if self._drawn:
            sys.stdout.write("\n")
            self._drawn = ""


_PURGE_LABELS = {"purged": "purged", "would purge": "would purge", "missing": "purged",
                 "failed": "FAILED", "deferred": "deferred", "raced": "skipped"}


def _outcome_line(outcome: PurgeOutcome) -> str:
    size = f"{outcome.bytes} bytes" if outcome.bytes else "-"
    return (f"{_PURGE_LABELS.get(outcome.result, outcome.result)}\tRECORDID {outcome.ident}\t"
            f"{outcome.filename or '(no file)'}\t{size}\t{outcome.detail}")


def _purge_json(report: PurgeReport, outcomes: list[PurgeOutcome]) -> str:
    return json.dumps({
        "dry_run": report.dry_run, "examined": report.examined, "purged": report.purged,
        "bytes_freed": report.bytes_freed, "failures": report.failures,
        "missing": report.missing, "deferred": report.deferred,
        "recordings": [{"recordid": o.ident, "filename": o.filename,
                        "start_time": o.start_time, "result": o.result, "bytes": o.bytes,
                        "detail": o.detail} for o in outcomes],
    }, indent=2)


def _purge(args: argparse.Namespace) -> int:
    # Imported here: retention reaches the codecs (numpy, lameenc), which `send` does not need.
    from recorder.errors import StoreError  # noqa: PLC0415
    from recorder.retention import FAILED, RetentionJob, summary  # noqa: PLC0415
    from recorder.store import open_store  # noqa: PLC0415

    source = resolve_config_path(args.config)
    try:
        config = load_config(source)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"recorderctl purge: {problem}", file=sys.stderr)
        return EXIT_USAGE
    database = config.storage.database_path
    if not database.is_file():
        print(f"recorderctl purge: no database at {database} (is storage.data_dir right?)",
              file=sys.stderr)
        return EXIT_USAGE
    # Everything worth saying is in the lines printed; the log would only repeat it.
    logging.disable(logging.ERROR)
    on_tty = sys.stdout.isatty() and not args.json
    bar = _ProgressBar() if on_tty else None
    outcomes: list[PurgeOutcome] = []

    def on_outcome(outcome: PurgeOutcome) -> None:
        if args.json:
            outcomes.append(outcome)
        elif bar is None:
            print(_outcome_line(outcome))
        elif outcome.result == FAILED:
            bar.clear()
            print(_outcome_line(outcome), file=sys.stderr)

    try:
        store = open_store(config.storage)
    except StoreError as exc:
        print(f"recorderctl purge: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    try:
        job = RetentionJob.from_config(store, config)
        report = job.run_now(bar.update if bar is not None else None, dry_run=args.dry_run,
                             on_outcome=on_outcome)
    except StoreError as exc:
        if bar is not None:
            bar.finish()
        print(f"recorderctl purge: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    finally:
        store.close()
    if bar is not None:
        bar.finish()
    print(_purge_json(report, outcomes) if args.json else summary(report))
    return EXIT_API_ERROR if report.failures else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "send":
        return _send(args)
    if args.command == "cav":
        return _cav(args)
    if args.command == "purge":
        return _purge(args)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
