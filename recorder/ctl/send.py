"""``recorderctl send``: one raw XML request on the socket API, its RESULT printed."""

from __future__ import annotations

import argparse
import sys

from lxml import etree

from recorder.ctl.client import ClientError, send_request
from recorder.ctl.common import (
    API_OK,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    SubParsers,
    command,
    connection_options,
    target,
)

EPILOG = """exit status:
  0  the recorder answered API_OK (RESULTCODE 20)
  1  the recorder answered with another RESULTCODE (printed)
  2  usage error
  3  the recorder could not be reached or did not answer"""



def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "send", "send one XML request and print its RESULT", EPILOG, run)
    parser.add_argument("request", help="the request, e.g. '<REQUEST><TYPE>TEST</TYPE>"
                                        "<REQUESTID>1</REQUESTID></REQUEST>', or - for stdin")
    parser.add_argument("--raw", action="store_true", help="print the RESULT as received")
    connection_options(parser, defaults=False)


def run(args: argparse.Namespace) -> int:
    request = sys.stdin.read() if args.request == "-" else args.request
    where = target(args)
    try:
        answer = send_request(where.host, where.socket_port, request.encode("utf-8"),
                              where.timeout)
    except ClientError as exc:
        print(f"recorderctl send: {exc}", file=sys.stderr)
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
    return EXIT_OK if result.findtext("RESULTCODE") == str(API_OK) else EXIT_FAILED
