"""Load on a recorder as a hostile or a busy client makes it, bounded in count and time: a CTI
link timing its calls, floods of IMPORTUSER, idle connections, HTTP requests whose body (or
header) trickles in a byte at a time, and the three at once in a process of their own
(``flood``); and a real recorderd's figures from /proc.

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
from typing import Any

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
        self.connected = threading.Event()  # every connection made
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
            self.connected.set()
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


class IdleFlood(threading.Thread):
    """``per_source`` socket connections from each of ``sources`` that never send a byte, each
    one the recorder closes (or refuses) opened again, until stopped or ``deadline``.
    ``opened`` counts the connections made, ``closed`` those the recorder ended."""

    def __init__(self, port: int, sources: tuple[str, ...], per_source: int,
                 deadline: float, *, every: float = 0.2) -> None:
        super().__init__(name="idle-flood", daemon=True)
        self._port = port
        self._sources = sources
        self._per_source = per_source
        self._deadline = deadline
        self._every = every
        self.opened = 0
        self.closed = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(30)

    def run(self) -> None:
        held: dict[str, list[socket.socket]] = {source: [] for source in self._sources}
        try:
            while not self._halt.is_set() and time.monotonic() < self._deadline:
                for source, socks in held.items():
                    for sock in list(socks):
                        if _closed_by_peer(sock):
                            self.closed += 1
                            socks.remove(sock)
                            sock.close()
                    while len(socks) < self._per_source:
                        try:
                            sock = socket.create_connection(
                                ("127.0.0.1", self._port), timeout=5,
                                source_address=(source, 0))
                        except OSError:
                            break
                        sock.setblocking(False)
                        socks.append(sock)
                        self.opened += 1
                self._halt.wait(self._every)
        finally:
            for socks in held.values():
                for sock in socks:
                    sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (non-blocking; what it said is dropped)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True


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
    """``count`` WebAPI POSTs from ``source`` (or each of several in turn) whose headers arrive
    at once and whose form body then comes one byte every ``interval`` seconds, until the
    recorder answers or closes the connection, or ``deadline``; with ``reopen``, each one ended
    is opened again. ``closed_after`` holds, per connection the recorder ended, the seconds from
    its opening to its end; ``answers`` what it said."""

    BODY = b"user1=" + b"z" * 400

    def __init__(self, port: int, count: int, deadline: float, *,
                 source: str | tuple[str, ...] = "127.0.0.1", interval: float = 0.5,
                 headers_too: bool = False, reopen: bool = False) -> None:
        super().__init__(name="slow-http", daemon=True)
        self._port = port
        self._count = count
        self._deadline = deadline
        self._sources = (source,) if isinstance(source, str) else source
        self._interval = interval
        self._headers_too = headers_too  # the request line and headers trickle too
        self._reopen = reopen  # each connection the recorder ends is opened again
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

    def _open(self, n: int, live: dict[socket.socket, tuple[float, bytes]]) -> None:
        source = self._sources[n % len(self._sources)]
        try:
            sock = socket.create_connection(("127.0.0.1", self._port), timeout=10,
                                            source_address=(source, 0))
        except OSError:
            self.connect_failures += 1
            return
        self.opened += 1
        if self._headers_too:
            pending = self._head() + self.BODY
        else:
            sock.sendall(self._head())
            pending = self.BODY
        sock.setblocking(False)
        live[sock] = (time.monotonic(), pending)

    def run(self) -> None:
        live: dict[socket.socket, tuple[float, bytes]] = {}
        try:
            for n in range(self._count):
                self._open(n, live)
            while ((live or self._reopen) and not self._halt.is_set()
                   and time.monotonic() < self._deadline):
                if self._reopen:
                    for n in range(self._count - len(live)):
                        self._open(self.opened + n, live)
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
            # Open; but an answer (a 408, a 503: one small write) ends the request, and the
            # recorder closes the connection after it.
            return data or None
        except ConnectionError:
            return data


@dataclass(frozen=True)
class FloodPlan:
    """The floods one process makes at once, each from addresses of its own (none the CTI's):
    IMPORTUSER on ``import_connections`` connections, ``idle_per_source`` idle socket
    connections from each idle source, ``slow_bodies`` HTTP requests trickling in."""

    socket_port: int
    web_port: int
    seconds: float  # the longest the floods run, stopped or not
    import_sources: tuple[str, ...] = ("127.0.0.10", "127.0.0.11", "127.0.0.12", "127.0.0.13")
    import_connections: int = 64
    idle_sources: tuple[str, ...] = tuple(f"127.0.0.{20 + n}" for n in range(6))
    idle_per_source: int = 32
    slow_sources: tuple[str, ...] = ("127.0.0.30", "127.0.0.31", "127.0.0.32", "127.0.0.33")
    slow_bodies: int = 128
    slow_interval: float = 0.5


@dataclass
class FloodReport:
    """What the floods of a FloodPlan saw."""

    import_codes: Counter[int] = field(default_factory=Counter)
    idle_opened: int = 0
    idle_closed: int = 0
    slow_opened: int = 0
    slow_statuses: Counter[str] = field(default_factory=Counter)  # "408", "503", "closed"


def flood(plan: FloodPlan, commands: Any) -> None:
    """Serve flood phases on ``commands`` (a multiprocessing Connection) until told "quit" or
    left without a command for ``plan.seconds``: on "start", the floods of ``plan`` begin and
    "started" is sent once every flood has opened its connections; on "stop" (or after
    ``plan.seconds``) they end, and their FloodReport is sent.

    Run in a process of its own: the floods' client threads would otherwise take the CTI
    client's interpreter lock, and a latency the recorder did not cause would be measured.
    One process serves every phase, so that a phase starts in well under a second.
    """
    phase = 0
    while commands.poll(plan.seconds) and commands.recv() == "start":
        phase += 1
        deadline = time.monotonic() + plan.seconds
        # The IMPORTUSER connections first: once the idle flood has taken every other
        # place, they would be answered 48. Each phase's users have names of their own (a
        # name taken is answered 54 before any hashing).
        imports = ImportUserFlood(plan.socket_port, plan.import_sources,
                                  plan.import_connections, deadline, tag=f"p{phase}")
        imports.start()
        imports.connected.wait(10.0)
        idle = IdleFlood(plan.socket_port, plan.idle_sources, plan.idle_per_source, deadline)
        slow = SlowHttpBodies(plan.web_port, plan.slow_bodies, deadline,
                              source=plan.slow_sources, interval=plan.slow_interval,
                              reopen=True)
        idle.start()
        slow.start()
        time.sleep(0.5)  # each flood opens its connections in well under that
        commands.send("started")
        if commands.poll(max(0.0, deadline - time.monotonic())):
            commands.recv()  # "stop"
        for thread in (slow, idle, imports):
            thread.stop()
        statuses: Counter[str] = Counter()
        for answer in slow.answers:
            statuses[answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else
                     "closed"] += 1
        commands.send(FloodReport(imports.codes, idle.opened, idle.closed, slow.opened,
                                  statuses))
