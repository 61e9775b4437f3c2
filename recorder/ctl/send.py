"""``recorderctl send``: one raw XML request on the socket API, its RESULT printed."""

from __future__ import annotations

import argparse
import ssl
import sys
from pathlib import Path

from lxml import etree

from recorder.ctl.client import ClientError, client_context, send_request
from recorder.ctl.common import (
    API_OK,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    Target,
    command,
    connection_options,
    target,
)

EPILOG = """--tls sends it over TLS to the socket API's TLS port (api.socket_tls): --port, else the
configuration's api.socket_tls_port (5621). With api.socket_tls_client_ca the server wants a
client certificate: --cert (PEM; its key in --key, or in the same file). The server's
certificate is checked against --ca (PEM CA certificates, and the server's name against
--host); without --ca, against the certificate the configuration's api.tls_cert names when
this machine can read it (that certificate alone is trusted), else the system's CAs.

exit status:
  0  the recorder answered API_OK (RESULTCODE 20)
  1  the recorder answered with another RESULTCODE (printed)
  2  usage error, or a certificate or key file that cannot be used
  3  the recorder could not be reached or did not answer, or the TLS handshake failed (a
     client certificate refused, a server certificate not trusted)"""



def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "send", "send one XML request and print its RESULT", EPILOG, run)
    parser.add_argument("request", help="the request, e.g. '<REQUEST><TYPE>TEST</TYPE>"
                                        "<REQUESTID>1</REQUESTID></REQUEST>', or - for stdin")
    parser.add_argument("--raw", action="store_true", help="print the RESULT as received")
    parser.add_argument("--tls", action="store_true",
                        help="over TLS, to the socket API's TLS port (api.socket_tls_port)")
    parser.add_argument("--cert", type=Path, metavar="FILE",
                        help="with --tls: the client certificate (PEM) to present")
    parser.add_argument("--key", type=Path, metavar="FILE",
                        help="with --cert: its private key (PEM; default: in --cert)")
    parser.add_argument("--ca", type=Path, metavar="FILE", help="with --tls: the CA "
                        "certificates (PEM) to check the server's certificate against")
    connection_options(parser, defaults=False)


def tls_of(args: argparse.Namespace, where: Target) -> tuple[ssl.SSLContext | None, int]:
    """The TLS context and port --tls, --cert, --key and --ca ask for (None: plain TCP)."""
    if not args.tls:
        if args.cert or args.key or args.ca:
            raise CtlError("--cert, --key and --ca go with --tls", EXIT_USAGE)
        return None, where.socket_port
    if args.key is not None and args.cert is None:
        raise CtlError("--key goes with --cert", EXIT_USAGE)
    api = where.config.api
    pinned = Path(api.tls_cert) if api.tls_cert and args.ca is None else None
    if pinned is not None and not _readable(pinned):
        pinned = None  # another machine's path, or root's file: the system's CAs then
    try:
        context = client_context(args.cert, args.key, args.ca, pinned)
    except ValueError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    return context, args.port if args.port is not None else api.socket_tls_port


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False


def run(args: argparse.Namespace) -> int:
    request = sys.stdin.read() if args.request == "-" else args.request
    where = target(args)
    tls, port = tls_of(args, where)
    try:
        answer = send_request(where.host, port, request.encode("utf-8"), where.timeout, tls)
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
