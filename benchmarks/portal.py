"""Portal benchmark: the search page against the same CALLLIST through the socket API, a
recording page, and the first byte of playback, over a large store.

    .venv/bin/python benchmarks/portal.py [--rows 1000000] [--cache DIR] [--repeats 40]

Uses the data directory of benchmarks/calllist.py (built once, then reused: the same cache
directory by default), adds a portal user who may see everything (ALLOWVIEWALLRECORDS) and one
real WAV file for the playback figure. A real ``Recorder`` serves it in this process with the
portal on; for each filter the search page (a page of 50, the way the portal asks) and CALLLIST
with the same filters and CALLCOUNT 50 are asked in turn (each first every other time, as the
second finds the rows in SQLite's cache), each timed by its client from request to the last
byte of the answer; both clients read only the answer's framing. The process's CPU time per
request (server and client) is shown beside, less moved by other work on the machine. The
search page also audits the search (queued for the audit trail's writer, in the crash journal
before the page is answered), which CALLLIST does not. Target: search page median under
100 ms and within 1.5x of CALLLIST.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import platform
import socket
import sqlite3
import statistics
import sys
import time
import urllib.parse
import wave
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calllist import (
    HOST,
    ApiClient,
    Sample,
    calllist_xml,
    open_cache,
    samples,
)

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.store.directory import UserFields, UserQuery
from recorder.store.passwords import hash_password

USER, PASSWORD = "bench", "benchmark password"
PAGE = 50
TARGET_MS = 100.0
TARGET_RATIO = 1.5


def _utc(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


def _day(t: int) -> tuple[int, int]:
    return t - t % 86400, t - t % 86400 + 86399


# Each filter as CALLLIST parameters and as the portal's search form.
FILTERS: dict[str, tuple[object, object]] = {
    "newest page": (lambda s: {}, lambda s: {}),
    "device + day": (lambda s: {"DEVICEID": s.device, "CALLDATESTART": str(_day(s.time)[0]),
                                "CALLDATEEND": str(_day(s.time)[1])},
                     lambda s: {"device": s.device, "from": _utc(_day(s.time)[0]),
                                "to": _utc(_day(s.time)[1])}),
    "ANI": (lambda s: {"ANI": s.ani}, lambda s: {"ani": s.ani}),
    "USER1 (account)": (lambda s: {"USER1": s.account}, lambda s: {"user1": s.account}),
    "GROUP + 30 days": (lambda s: {"GROUP": s.group, "CALLDATESTART": str(s.time - 30 * 86400),
                                   "CALLDATEEND": str(s.time)},
                        lambda s: {"group": s.group, "from": _utc(s.time - 30 * 86400),
                                   "to": _utc(s.time)}),
    "ANI, no match": (lambda s: {"ANI": "6999999999"}, lambda s: {"ani": "6999999999"}),
}


@dataclass
class Figures:
    name: str
    runs: int
    page_ms: float
    page_p95_ms: float
    api_ms: float
    api_p95_ms: float
    page_cpu_ms: float = 0.0  # the process's CPU time (server and client), median
    api_cpu_ms: float = 0.0

    @property
    def ratio(self) -> float:
        return self.page_ms / self.api_ms if self.api_ms else float("inf")

    @property
    def cpu_ratio(self) -> float:
        return self.page_cpu_ms / self.api_cpu_ms if self.api_cpu_ms else float("inf")


class RawPage:
    """A keep-alive HTTP connection reading only the answer's framing (status, headers to
    Content-Length, body), as thin as ``ApiClient`` reads a RESULT line: the figures are then
    the servers' time and the loopback, not a client library's header parsing."""

    def __init__(self, port: int, cookies: dict[str, str]) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=60)
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        self._head = f"Host: {HOST}:{port}\r\nCookie: {cookie}\r\n\r\n".encode()
        self._buf = b""

    def get(self, path: str) -> tuple[int, bytes]:
        self._sock.sendall(f"GET {path} HTTP/1.1\r\n".encode() + self._head)
        while b"\r\n\r\n" not in self._buf:
            self._read()
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self._buf) < length:
            self._read()
        body, self._buf = self._buf[:length], self._buf[length:]
        return status, body

    def _read(self) -> None:
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the portal closed the connection")
        self._buf += chunk

    def close(self) -> None:
        self._sock.close()


class Browser:
    """One HTTP connection to the portal, signed in."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)
        self.cookies: dict[str, str] = {}

    def get(self, path: str, headers: dict[str, str] | None = None,
            first_byte: bool = False) -> tuple[int, bytes]:
        sent = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                **(headers or {})}
        self.conn.request("GET", path, headers=sent)
        response = self.conn.getresponse()
        body = response.read(1) if first_byte else response.read()
        if first_byte:
            response.read()
        self._keep(response)
        return response.status, body

    def post(self, path: str, form: dict[str, str]) -> int:
        self.conn.request("POST", path, body=urllib.parse.urlencode(form), headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())})
        response = self.conn.getresponse()
        response.read()
        self._keep(response)
        return response.status

    def _keep(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def sign_in(self) -> None:
        _, page = self.get("/signin")
        token = page.split(b'name="csrf" value="', 1)[1].split(b'"', 1)[0].decode()
        status = self.post("/signin", {"username": USER, "password": PASSWORD, "csrf": token})
        if status != 303:
            raise RuntimeError(f"cannot sign in ({status})")


def prepare(recorder: Recorder, cache: Path) -> int:
    """The benchmark's user (made once) and a recording with a real file; its RECORDID."""
    assert recorder.store is not None
    directory = recorder.store.directory
    if not directory.find_users(UserQuery(username=USER)):
        user = directory.add_user(UserFields(username=USER, first_name="Bench", last_name="User",
                                             password_hash=hash_password(PASSWORD)),
                                  now=time.time())
        role = directory.add_role("bench", "") or directory.find_role(name="bench")
        assert role is not None
        directory.set_role_permission(role.role_id, "ALLOWVIEWALLRECORDS", True)
        directory.set_user_role(user, role.role_id, True)
    path = recorder.config.storage.recordings_dir / "bench" / "playback.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(8000 * 2 * 60))
    # Scaffolding, as calllist.py fills its rows: point the newest row at the real file.
    with contextlib.closing(sqlite3.connect(cache / "recorder.sqlite3")) as conn, conn:
        ident = conn.execute("SELECT max(ident) FROM recordings").fetchone()[0]
        conn.execute("UPDATE recordings SET filename = ? WHERE ident = ?", (str(path), ident))
    return int(ident)


def _timed(call: object) -> float:
    began = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - began) * 1000


def _both(call: object) -> tuple[float, float]:
    """Wall-clock and process CPU milliseconds of ``call()``."""
    cpu, began = time.process_time(), time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - began) * 1000, (time.process_time() - cpu) * 1000


def measure(name: str, page: RawPage, api: ApiClient, picks: list[Sample]) -> Figures:
    calllist, form = FILTERS[name]
    page_ms, api_ms, page_cpu, api_cpu = [], [], [], []
    for n, pick in enumerate(picks):
        query = urllib.parse.urlencode(form(pick))  # type: ignore[operator]
        params = {**calllist(pick), "CALLCOUNT": str(PAGE)}  # type: ignore[operator]
        asks = [(page_ms, page_cpu, lambda q=query: _ok(page.get(f"/recordings?{q}"))),
                (api_ms, api_cpu, lambda p=params, n=n: api.ask(calllist_xml(n, p)))]
        # Each first every other time: the second finds the database's pages the first
        # read in SQLite's cache.
        for walls, cpus, ask in asks if n % 2 else asks[::-1]:
            wall, cpu = _both(ask)
            walls.append(wall)
            cpus.append(cpu)
    return Figures(name, len(picks), statistics.median(page_ms),
                   float(np.percentile(page_ms, 95)), statistics.median(api_ms),
                   float(np.percentile(api_ms, 95)), statistics.median(page_cpu),
                   statistics.median(api_cpu))


def _ok(answer: tuple[int, bytes]) -> None:
    if answer[0] != 200:
        raise RuntimeError(f"the search page answered {answer[0]}: {answer[1][:200]!r}")


def run(args: argparse.Namespace) -> tuple[list[Figures], dict[str, float]]:
    open_cache(args.cache, args.rows)
    doc = {"storage": {"data_dir": str(args.cache)},
           "api": {"host": HOST, "socket_port": 0, "web_port": 0},
           "portal": {"enabled": True, "host": HOST, "port": 0}, "boards": []}
    recorder = Recorder(config_from_dict(doc))
    recorder.start()
    try:
        assert recorder.api is not None
        assert recorder.portal is not None
        playable = prepare(recorder, args.cache)
        browser = Browser(recorder.portal.address[1])
        browser.sign_in()
        api = ApiClient(recorder.api.socket_address[1])
        uri = f"file:{args.cache / 'recorder.sqlite3'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as direct:
            picks = samples(direct, args.repeats, seed=11)
            idents = [r[0] for r in direct.execute(
                "SELECT ident FROM recordings ORDER BY random() LIMIT ?", (args.repeats,))]
        page = RawPage(recorder.portal.address[1], browser.cookies)
        results = []
        for name in FILTERS:
            figures = measure(name, page, api, picks)
            report(figures)
            results.append(figures)
        page.close()
        pages = [_timed(lambda i=i: browser.get(f"/recordings/{i}")) for i in idents]
        first = [_timed(lambda: browser.get(f"/recordings/{playable}/audio",
                                            {"Range": "bytes=0-"}, first_byte=True))
                 for _ in range(args.repeats)]
        other = {"recording_page_ms": statistics.median(pages),
                 "recording_page_p95_ms": float(np.percentile(pages, 95)),
                 "first_byte_ms": statistics.median(first),
                 "first_byte_p95_ms": float(np.percentile(first, 95))}
        print(f"recording page: median {other['recording_page_ms']:.2f} ms, p95 "
              f"{other['recording_page_p95_ms']:.2f} ms; first byte of playback: median "
              f"{other['first_byte_ms']:.2f} ms, p95 {other['first_byte_p95_ms']:.2f} ms")
        api.close()
    finally:
        recorder.stop()
    return results, other


HEADER = (f"{'filter':<18} {'runs':>4} {'page p50':>9} {'page p95':>9} {'API p50':>8} "
          f"{'API p95':>8} {'ratio':>6} {'CPU page':>9} {'CPU API':>8} {'ratio':>6}  target")


def report(f: Figures) -> None:
    verdict = (f"{'ok' if f.page_ms < TARGET_MS else 'MISSED'} < {TARGET_MS:g} ms, "
               f"{'ok' if f.ratio <= TARGET_RATIO else 'MISSED'} <= {TARGET_RATIO:g}x")
    print(f"{f.name:<18} {f.runs:>4} {f.page_ms:>9.2f} {f.page_p95_ms:>9.2f} {f.api_ms:>8.2f} "
          f"{f.api_p95_ms:>8.2f} {f.ratio:>6.2f} {f.page_cpu_ms:>9.2f} {f.api_cpu_ms:>8.2f} "
          f"{f.cpu_ratio:>6.2f}  {verdict}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, default=None,
                        help="data directory kept between runs (default: calllist.py's, "
                             "~/.cache/recorder-bench/calllist-<rows>)")
    parser.add_argument("--repeats", type=int, default=40, help="runs per filter")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    if args.cache is None:
        args.cache = Path.home() / ".cache" / "recorder-bench" / f"calllist-{args.rows}"
    logging.basicConfig(level=logging.ERROR)
    print(f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} CPUs; {args.rows:,} recordings, {args.repeats} runs per filter; "
          "milliseconds, client side, request to last byte")
    print(HEADER)
    results, other = run(args)
    if args.json is not None:
        figures = [{**asdict(f), "ratio": f.ratio, "cpu_ratio": f.cpu_ratio} for f in results]
        args.json.write_text(json.dumps({**other, "filters": figures}, indent=1),
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
