"""What every ``recorderctl`` command shares: exit codes, where the service is (options and the
configuration), requests on the socket API and the web port, and tables, JSON and a progress
bar for output."""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import sys
import urllib.parse
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from lxml import etree

from recorder.config.loader import load_config
from recorder.config.model import Config, resolve_config_path
from recorder.ctl.client import ClientError, send_request
from recorder.errors import ConfigError, StoreError
from recorder.store.evidence import SealState
from recorder.store.sealkey import SealKey, SealKeyError, load_seal_key

if TYPE_CHECKING:
    from recorder.store.factory import Store

EXIT_OK = 0
EXIT_FAILED = 1  # the service answered an error, or a check failed
EXIT_USAGE = 2  # usage or configuration error
EXIT_UNREACHABLE = 3
API_OK = 20

EXIT_CODES = """exit status:
  0  done
  1  the recorder answered with an error (printed)
  2  usage or configuration error
  3  the recorder could not be reached or did not answer"""

SubParsers = argparse._SubParsersAction  # what add_subparsers returns
FORMATTER = argparse.RawDescriptionHelpFormatter


class CtlError(Exception):
    """A command cannot go on: each line of ``message`` is printed after "recorderctl
    COMMAND: ", and ``code`` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def command(commands: SubParsers[argparse.ArgumentParser], name: str, help_text: str,
            epilog: str, run: Callable[[argparse.Namespace], int], *,
            description: str | None = None) -> argparse.ArgumentParser:
    """Add the subcommand ``name``, run by ``run(args)``."""
    parser = commands.add_parser(name, help=help_text, description=description or help_text,
                                 epilog=epilog, formatter_class=FORMATTER)
    parser.set_defaults(run=run)
    return parser


# --- where the service is --------------------------------------------------------------------


def connection_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--host, --port, --web-port, --config, --timeout.

    Accepted before and after the command (``recorderctl send --port 5720 ...``); on the
    command they default to "not given" so they do not undo what came before it.
    """
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--host", default=default(None),
                        help="recorderd's address (default: from the config)")
    parser.add_argument("--port", type=int, default=default(None),
                        help="socket API port (default: from the config)")
    parser.add_argument("--web-port", type=int, default=default(None),
                        help="WebAPI (HTTP) port (default: from the config)")
    parser.add_argument("--config", metavar="FILE", default=default(None),
                        help="read host and ports from this recorderd configuration")
    parser.add_argument("--timeout", type=float, default=default(10.0),
                        help="seconds to wait for an answer (10)")


@dataclass(frozen=True)
class Target:
    """The service to talk to, and the configuration it was found from."""

    host: str
    socket_port: int
    web_port: int
    timeout: float
    config: Config  # the file's, or the embedded defaults when there is none (or it is bad)


def target(args: argparse.Namespace) -> Target:
    """The address from the options, else from the configuration recorderd reads."""
    source = resolve_config_path(args.config)
    config: Config | None = None
    if source is not None:
        try:
            config = load_config(source)
        except ConfigError as exc:
            # Falling back to the default ports would only end in "unreachable" (exit 3), or
            # worse, in talking to another recorderd: the file named is the mistake to report.
            problems = "; ".join(exc.problems)
            raise CtlError(problems if problems.startswith(str(source))
                           else f"{source}: {problems}", EXIT_USAGE) from None
    if config is None:
        config = load_config(None)
    host = config.api.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # the service listens everywhere; talk to it locally
    return Target(
        host=args.host or host,
        socket_port=args.port if args.port is not None else config.api.socket_port,
        web_port=args.web_port if args.web_port is not None else config.api.web_port,
        timeout=args.timeout, config=config)


def offline_config(args: argparse.Namespace) -> Config:
    """The configuration an offline command works on; CtlError (2) listing its problems."""
    source = resolve_config_path(args.config)
    try:
        return load_config(source)
    except ConfigError as exc:
        raise CtlError("\n".join(exc.problems), EXIT_USAGE) from exc


def install_configured_key(config: Config, key_file: Path | None = None) -> None:
    """Have this command read encrypted recordings with ``key_file``, else the configuration's
    storage.key_file (docs/encryption.md); CtlError 2 naming the key when it cannot be used."""
    path = key_file or (Path(config.storage.key_file) if config.storage.key_file else None)
    if path is None:
        return
    from recorder.crypt.access import install  # noqa: PLC0415 - only where recordings are read
    from recorder.crypt.keyring import load_keys  # noqa: PLC0415
    from recorder.crypt.keys import CryptKeyError  # noqa: PLC0415

    try:
        # With a rotation's new key beside it (KEY_FILE.new), both: files may be under either.
        install(load_keys(path)[1])
    except CryptKeyError as exc:
        raise CtlError(f"{'--key-file' if key_file else 'storage.key_file'}: {exc} (under "
                       "systemd the credential exists only while recorderd runs: give "
                       "--key-file)", EXIT_USAGE) from exc


def require_database(config: Config) -> None:
    """CtlError (2) unless the configuration's data directory has a database (a PostgreSQL
    one, storage.database, is the server's to have: opening it says if it cannot)."""
    if config.storage.postgresql:
        return
    database = config.storage.database_path
    if not database.is_file():
        raise CtlError(f"no database at {database} (is storage.data_dir right?)", EXIT_USAGE)


# The seal key for the offline commands, where the configuration's cannot be read (under
# systemd, storage.seal_key_file names a credential only the running service sees).
SEAL_KEY_ENV = "RECORDER_SEAL_KEY_FILE"


def seal_key_path(config: Config, given: Path | None = None) -> tuple[Path | None, str]:
    """The seal key file to use (``given``: --seal-key-file, else $RECORDER_SEAL_KEY_FILE,
    else storage.seal_key_file; None: none), and where it was named."""
    if given is not None:
        return given, "--seal-key-file"
    if os.environ.get(SEAL_KEY_ENV):
        return Path(os.environ[SEAL_KEY_ENV]), f"${SEAL_KEY_ENV}"
    if config.storage.seal_key_file:
        return Path(config.storage.seal_key_file), "storage.seal_key_file"
    return None, ""


def seal_key_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seal-key-file", type=Path, metavar="PATH", help="the seal key "
                        f"(default: ${SEAL_KEY_ENV}, else the configuration's "
                        "storage.seal_key_file)")


def checking_seal_key(config: Config, given: Path | None, state: SealState) -> SealKey | None:
    """The seal key a check of evidence in ``state`` uses: the one ``seal_key_path`` names
    (None: none); CtlError 2 when it cannot be read, when the evidence is keyed and no key
    is named, or when the key is not the one the evidence names."""
    path, named = seal_key_path(config, given)
    key: SealKey | None = None
    if path is not None:
        try:
            key = load_seal_key(path)
        except SealKeyError as exc:
            raise CtlError(f"{named}: {exc} (under systemd the credential exists only for the "
                           "running service: give --seal-key-file)", EXIT_USAGE) from exc
    if state.keyed and key is None:
        which = f" ({state.key_id})" if state.key_id else ""
        raise CtlError(f"this data directory's evidence is sealed with a seal key{which}, "
                       "which its checks need: give --seal-key-file (or "
                       f"${SEAL_KEY_ENV}, or storage.seal_key_file)", EXIT_USAGE)
    if key is not None and state.key_id is not None and state.key_id != key.id:
        raise CtlError(f"{named}: seal key {key.id} is not the one this data directory is "
                       f"sealed with ({state.key_id}, since audit entry {state.since_entry})",
                       EXIT_USAGE)
    return key


def open_offline_store(config: Config, *, seal_key_file: Path | None = None,
                       seals: bool = False) -> Store:
    """The store of the configuration's data directory, opened here rather than through the
    service; CtlError 2 when there is no database, 1 when it cannot be opened. It seals with
    the seal key of ``seal_key_path``; ``seals``: the command adds seals or audit entries, so
    a store sealed with a key it cannot read is refused now (2) rather than half-way."""
    from recorder.store.factory import (  # noqa: PLC0415 - only the offline commands need it
        open_store,
    )

    require_database(config)
    path, _ = seal_key_path(config, seal_key_file)
    try:
        store = open_store(config.storage, offline=True,
                           seal_key_file=str(path) if path is not None else "")
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    if seals and store.evidence is not None and store.sealing is not None:
        try:
            store.sealing.key_for(store.evidence.seal_state().keyed)
        except StoreError as exc:
            store.close()
            raise CtlError(str(exc), EXIT_USAGE) from exc
    return store


# --- the socket API --------------------------------------------------------------------------


def request_xml(request_type: str, **params: str | int) -> bytes:
    """A one-line ``<REQUEST>`` (TYPE, REQUESTID 1, then ``params``), values escaped."""
    root = etree.Element("REQUEST")
    etree.SubElement(root, "TYPE").text = request_type
    etree.SubElement(root, "REQUESTID").text = "1"
    for name, value in params.items():
        etree.SubElement(root, name.upper()).text = str(value)
    return etree.tostring(root)


def parse_line(line: bytes, what: str) -> etree._Element:
    """One answer line as XML; CtlError (3) if the other end does not speak the API."""
    try:
        return etree.fromstring(line)
    except etree.XMLSyntaxError as exc:
        raise CtlError(f"the answer to {what} is not XML: {line[:80]!r}",
                       EXIT_UNREACHABLE) from exc


def api_call(where: Target, request_type: str, **params: str | int) -> etree._Element:
    """Send one request on a new connection and return its RESULT, whatever its code."""
    try:
        answer = send_request(where.host, where.socket_port,
                              request_xml(request_type, **params), where.timeout)
    except ClientError as exc:
        raise CtlError(str(exc), EXIT_UNREACHABLE) from exc
    return parse_line(answer, request_type)


def result_failure(result: etree._Element) -> str | None:
    """None for API_OK, else "CODE RESULTTYPE: RESULTMSG"."""
    code = result.findtext("RESULTCODE") or "?"
    if code == str(API_OK):
        return None
    return (f"{code} {result.findtext('RESULTTYPE') or ''}: "
            f"{result.findtext('RESULTMSG') or ''}")


def require_ok(result: etree._Element) -> etree._Element:
    """``result`` if it is API_OK; CtlError (1) with its code and message otherwise."""
    failure = result_failure(result)
    if failure is not None:
        raise CtlError(f"{result.findtext('REQUESTTYPE') or 'the request'} answered {failure}",
                       EXIT_FAILED)
    return result


def fields(element: etree._Element) -> dict[str, str]:
    """The text children of ``element`` by tag."""
    return {str(child.tag): child.text or "" for child in element if not len(child)}


# --- the web port ----------------------------------------------------------------------------


TOKEN_VARIABLE = "RECORDER_API_TOKEN"


def web_get(where: Target, path: str,
            query: Mapping[str, str] | None = None) -> http.client.HTTPResponse:
    """GET ``path`` on the web port; the response is open for reading (close it).

    CtlError (3) if the port cannot be reached or does not answer HTTP.
    """
    url = path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    conn = http.client.HTTPConnection(where.host, where.web_port, timeout=where.timeout)
    # api.require_auth: a bearer token from the environment, never from the command line,
    # where every user of the machine could read it (ps).
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", url, headers=headers)
        return conn.getresponse()
    except TimeoutError as exc:
        conn.close()
        raise CtlError(f"no answer from {where.host}:{where.web_port} within "
                       f"{where.timeout:g} s", EXIT_UNREACHABLE) from exc
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CtlError(f"cannot reach the WebAPI at {where.host}:{where.web_port}: {detail}",
                       EXIT_UNREACHABLE) from exc


def web_json(where: Target, path: str) -> Any:
    """GET ``path`` on the web port as JSON; CtlError (1) for an HTTP error or other body."""
    response = web_get(where, path)
    try:
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        raise CtlError(f"{path}: the answer broke off: {exc}", EXIT_UNREACHABLE) from exc
    finally:
        response.close()
    if response.status != 200:
        raise CtlError(f"GET {path} on {where.host}:{where.web_port} answered HTTP "
                       f"{response.status} {response.reason}", EXIT_FAILED)
    try:
        return json.loads(body)
    except ValueError as exc:
        raise CtlError(f"GET {path} answered something that is not JSON", EXIT_FAILED) from exc


# --- output ----------------------------------------------------------------------------------


def print_json(doc: Any, *, indent: int | None = 2) -> None:
    print(json.dumps(doc, indent=indent), flush=True)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                right: Collection[int] = ()) -> None:
    """Columns as wide as their widest cell; columns in ``right`` (numbers) right-aligned.
    The last column is not padded (a file name may be long)."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w)
               for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        if headers and len(headers) - 1 not in right:
            out[-1] = cells[-1]
        return "  ".join(out).rstrip()

    print(line(headers))
    for row in rows:
        print(line(row))


def finite(value: float | None) -> float | None:
    """``value`` for JSON, which has no infinity: -inf dBFS (digital silence) becomes null."""
    return value if value is not None and math.isfinite(value) else None


def dbfs(value: float | None) -> str:
    if value is None or value == -math.inf:
        return "-inf"
    return f"{value:.1f}"


def local_time(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def clock(seconds: float) -> str:
    """A duration as H:MM:SS, or M:SS under an hour."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def elapsed(seconds: float) -> str:
    """A long span in words, to the two largest units: "16 s", "5 min 3 s", "2 h 5 min",
    "3 d 4 h" (an uptime; ``clock`` is for call durations)."""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def size(count: float) -> str:
    """Bytes in the units of `ls -h` (1024-based)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns


def counted(done: int, total: int) -> str:
    return f"{done}/{total}"


def sized(done: int, total: int) -> str:
    return f"{size(done)} of {size(total)}" if total else size(done)


class ProgressBar:
    """``[#####-----] 50/100`` redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None,
                 describe: Callable[[int, int], str] = counted) -> None:
        self._stream = stream
        self._describe = describe
        self._drawn = ""

    @property
    def stream(self) -> TextIO:
        # Looked up when drawing, so a bar made before stdout is redirected still finds it.
        return self._stream or sys.stdout

    def update(self, done: int, total: int) -> None:
        filled = self.WIDTH * min(done, total) // total if total else self.WIDTH
        text = f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {self._describe(done, total)}"
        if text != self._drawn:  # redraw only what changed: a purge may visit millions
            pad = " " * max(0, len(self._drawn) - len(text))
            self._drawn = text
            self.stream.write("\r" + text + pad)
            self.stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * len(self._drawn) + "\r")
            self.stream.flush()

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = ""
