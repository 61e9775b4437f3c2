"""``recorderctl``: the field engineer's command line for a running recorderd."""

from __future__ import annotations

import argparse
import sys

from lxml import etree

from recorder.client import ClientError, send_request
from recorder.config import load_config, resolve_config_path
from recorder.errors import ConfigError

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
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "send":
        return _send(args)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
