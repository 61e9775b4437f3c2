"""Load on a recorder as a hostile or a busy client makes it, bounded in count and time: a CTI
link timing its calls, floods of IMPORTUSER, idle connections, HTTP requests whose body (or
header) trickles in a byte at a time; and a real recorderd's figures from /proc.

Every client here runs on 127.0.0.0/8; ``source`` picks the client's own address in it, so
one machine plays several clients (127.0.0.2 is another client than 127.0.0.1)."""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from tests.helpers.api import ApiConnection, request_xml, result_code


def rss_kb(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    found = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def percentile(values: list[float], share: float) -> float:
    """The value ``share`` (0-1) of the way up ``values`` sorted (nearest rank)."""
    assert values, "no values"
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered) + 0.5) - 1))]


@dataclass
class CtiTally:
    """What a CTI link saw: each request's code and how long its answer took (seconds)."""

    codes: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    calls: int = 0

    def add(self, other: CtiTally) -> None:
        self.codes += other.codes
        self.latencies += other.latencies
        self.calls += other.calls


def cti_calls(conn: ApiConnection, devices: tuple[str, ...], calls: int, deadline: float, *,
              pause: float = 0.0, tag: str = "cti") -> CtiTally:
    """CALLSTART then CALLSTOP on ``devices`` in turn, ``calls`` of them or until
    ``deadline`` (time.monotonic()), ``pause`` seconds between calls; each answer timed."""
    tally = CtiTally()
    for n in range(calls):
        if time.monotonic() >= deadline:
            break
        device = devices[n % len(devices)]
        for request_type in ("CALLSTART", "CALLSTOP"):
            began = time.perf_counter()
            result = conn.request(request_type, n, deviceid=device, callinstance=f"{tag}-{n}")
            tally.latencies.append(time.perf_counter() - began)
            tally.codes[result_code(result)] += 1
        tally.calls += 1
        if pause:
            time.sleep(pause)
    return tally


class ImportUserFlood(threading.Thread):
    """IMPORTUSER ADD with a password, one after another on each of ``connections`` socket
    connections spread over ``sources``, from one thread, until stopped or ``deadline``.

    ``codes`` counts the answers; a connection the recorder closes (48, say) is not opened
    again.
    """

    def __init__(self, port: int, sources: tuple[str, ...], connections: int,
                 deadline: float, *, tag: str = "flood") -> None:
        super().__init__(name=f"import-flood-{tag}", daemon=True)
        self._port = port
        self._sources = sources
        self._connections = connections
        self._deadline = deadline
        self._tag = tag
        self.codes: Counter[int] = Counter()
        self.refused = 0  # connections closed by the recorder
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def _request(self, conn: int, n: int) -> bytes:
        return request_xml("IMPORTUSER", n, action="ADD", firstname=f"F{self._tag}{conn}",
                           lastname=f"L{n}", password=f"pw-{conn}-{n}-{'x' * 20}") + b"\r\n"

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        buffers: dict[socket.socket, tuple[int, bytearray, list[int]]] = {}
        try:
            for conn in range(self._connections):
                source = self._sources[conn % len(self._sources)]
                sock = socket.create_connection(("127.0.0.1", self._port), timeout=10,
                                                source_address=(source, 0))
                sock.setblocking(False)
                sent = [0]
                sock.sendall(self._request(conn, 0))
                buffers[sock] = (conn, bytearray(), sent)
                selector.register(sock, selectors.EVENT_READ)
            while buffers and not self._halt.is_set() and time.monotonic() < self._deadline:
                for key, _ in selector.select(0.1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    conn, buffer, sent = buffers[sock]
                    try:
                        chunk = sock.recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        chunk = b""
                    if not chunk:
                        self.refused += 1
                        selector.unregister(sock)
                        sock.close()
                        del buffers[sock]
                        continue
                    buffer += chunk
                    while b"\r\n" in buffer:
                        line, _, rest = bytes(buffer).partition(b"\r\n")
                        buffer[:] = rest
                        self.codes[result_code(etree.fromstring(line))] += 1
                        sent[0] += 1
                        if time.monotonic() < self._deadline:
                            with contextlib.suppress(OSError):
                                sock.sendall(self._request(conn, sent[0]))
        finally:
            for sock in buffers:
                sock.close()
            selector.close()


def hold_connections(port: int, source: str, count: int) -> list[socket.socket]:
    """``count`` socket connections from ``source`` that send nothing (the caller closes
    them)."""
    held = []
    for _ in range(count):
        held.append(socket.create_connection(("127.0.0.1", port), timeout=10,
                                             source_address=(source, 0)))
    return held


def answer_or_open(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent on ``sock`` within ``wait`` seconds until it closed it (b"" for a
    plain close); None if it is still open with nothing to say."""
    sock.settimeout(wait)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except TimeoutError:
        return data or None
    except ConnectionError:
        return data


class SlowHttpBodies(threading.Thread):
    """``count`` WebAPI POSTs from ``source`` whose headers arrive at once and whose form body
    then comes one byte every ``interval`` seconds, until the recorder closes the connection
    or ``deadline``. ``closed_after`` holds, per connection the recorder ended, the seconds
    from its headers to the end; ``answers`` what it said first."""

    BODY = b"user1=" + b"z" * 400

    def __init__(self, port: int, count: int, deadline: float, *, source: str = "127.0.0.1",
                 interval: float = 0.5, headers_too: bool = False) -> None:
        super().__init__(name="slow-http", daemon=True)
        self._port = port
        self._count = count
        self._deadline = deadline
        self._source = source
        self._interval = interval
        self._headers_too = headers_too  # the request line and headers trickle too
        self.closed_after: list[float] = []
        self.answers: list[bytes] = []
        self.opened = 0
        self.connect_failures = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def _head(self) -> bytes:
        return (b"POST /webAPI.aspx?type=TEST&requestid=7 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(self.BODY))

    def run(self) -> None:
        live: dict[socket.socket, tuple[float, bytes]] = {}
        try:
            for _ in range(self._count):
                try:
                    sock = socket.create_connection(("127.0.0.1", self._port), timeout=10,
                                                    source_address=(self._source, 0))
                except OSError:
                    self.connect_failures += 1
                    continue
                self.opened += 1
                if self._headers_too:
                    pending = self._head() + self.BODY
                else:
                    sock.sendall(self._head())
                    pending = self.BODY
                sock.setblocking(False)
                live[sock] = (time.monotonic(), pending)
            while live and not self._halt.is_set() and time.monotonic() < self._deadline:
                for sock, (began, pending) in list(live.items()):
                    ended = self._ended(sock)
                    if ended is None and pending:
                        try:
                            sock.send(pending[:1])
                            live[sock] = (began, pending[1:])
                            continue
                        except OSError:
                            ended = b""
                    if ended is not None:
                        self.closed_after.append(time.monotonic() - began)
                        self.answers.append(ended)
                        sock.close()
                        del live[sock]
                self._halt.wait(self._interval)
        finally:
            for sock in live:
                sock.close()

    @staticmethod
    def _ended(sock: socket.socket) -> bytes | None:
        """What the server sent before closing ``sock``; None while it is open."""
        data = b""
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (BlockingIOError, InterruptedError):
            # Open. An answer before the close (a 408, a 503) is kept for when it closes.
            if data:
                sock.setblocking(True)
                sock.settimeout(5)
                rest = answer_or_open(sock, 5)
                return data + (rest or b"")
            return None
        except ConnectionError:
            return data
