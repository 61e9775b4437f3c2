"""WebAPI authentication: requests a second, and recorderd's CPU a request, for HTTP Basic
checked in full at every request (``api.basic_auth_cache_seconds = 0``, how it was before the
cache) and remembered (the default, 60 s), with a bearer token beside them as the reference.

    .venv/bin/python benchmarks/webauth.py [--seconds 5] [--rounds 3] [--clients 1,4]
                                           [--json FILE]

Two installed ``recorderd`` run as child processes, with api.require_auth, each on a data
directory of its own holding one user whose password is hashed as IMPORTUSER and ``recorderctl
user`` hash it (scrypt, N=2^14) and whose role grants ALLOWAPIAUTH, and a bearer token of that
user. The one with the cache off serves the "basic, full check" case; the other "basic,
remembered" and "bearer". Each case is ``--clients`` threads of this process, each on one
kept-alive HTTP connection asking TEST (answered from memory) as fast as answers come, for
``--seconds``; the cases take turns within each of ``--rounds`` rounds, so a machine whose load
changes shifts them alike. Figures: the answers (all must be API_OK) a second of wall time, and
recorderd's CPU time (utime + stime from /proc) per answer, summed over the rounds, with the
slowest and fastest round's rate.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from recorder.store.directory import UserFields
from recorder.store.passwords import hash_password
from recorder.store.sqlite import SqliteStore
from recorder.store.tokens import new_token

HOST = "127.0.0.1"
USER, PASSWORD = "poller", "a polling integrator's password"
READY = re.compile(r"recorderd ready")
WEB_PORT = re.compile(r"WebAPI listening on http://[^:]+:(\d+)/")
OK = b"<RESULTCODE>20</RESULTCODE>"
QUERY = "/webAPI.aspx?type=TEST&requestid=1"


@dataclass
class Case:
    name: str
    clients: int
    answers: int = 0
    errors: int = 0
    seconds: float = 0.0
    server_cpu: float = 0.0
    round_rates: tuple[float, ...] = ()

    @property
    def rate(self) -> float:
        return self.answers / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.server_cpu / self.answers if self.answers else float("inf")


class Recorderd:
    """The installed recorderd on a data directory of its own, its log in a file."""

    def __init__(self, directory: Path, cache_seconds: float) -> None:
        directory.mkdir(parents=True)
        self.data = directory / "data"
        self.config = directory / "recorder.toml"
        self.config.write_text(f"""
[storage]
data_dir = "{self.data}"
[api]
socket_port = 0
web_port = 0
require_auth = true
basic_auth_cache_seconds = {cache_seconds}
[[boards]]
driver = "synthetic"
devices = ["1001"]
""", encoding="utf-8")
        self.token = _add_user(self.data)
        self.log = directory / "recorderd.log"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        recorderd = Path(sys.executable).parent / "recorderd"
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen([str(recorderd), "--config", str(self.config)],
                                          stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            port = WEB_PORT.search(text)
            if READY.search(text) and port:
                self.port = int(port.group(1))
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"recorderd exited {self._proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("recorderd was not ready within 90 s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def cpu_seconds(self) -> float:
        assert self._proc is not None
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _add_user(data: Path) -> str:
    """The benchmark's user (real scrypt hash, ALLOWAPIAUTH) and a bearer token of theirs."""
    data.mkdir(parents=True)
    store = SqliteStore(data / "recorder.sqlite3")
    store.open()
    try:
        now = time.time()
        user_id = store.add_user(UserFields(username=USER, first_name=USER, last_name="Bench",
                                            password_hash=hash_password(PASSWORD)), now=now)
        role = store.add_role("integrations", "")
        assert role is not None
        store.set_role_permission(role.role_id, "ALLOWAPIAUTH", True)
        store.set_user_role(user_id, role.role_id, True)
        token = new_token()
        store.add_token(user_id, token, "benchmark", now=now)
        return token
    finally:
        store.close()


def _client(port: int, header: str, until: float, counts: list[int]) -> None:
    """One kept-alive connection asking TEST until ``until``: counts[0] answers, [1] errors."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        while time.perf_counter() < until:
            conn.request("GET", QUERY, headers={"Authorization": header})
            response = conn.getresponse()
            body = response.read()
            counts[0 if response.status == 200 and OK in body else 1] += 1
    finally:
        conn.close()


def run_case(server: Recorderd, case: Case, header: str, seconds: float) -> float:
    """One turn of ``case``; its rate."""
    counts = [[0, 0] for _ in range(case.clients)]
    cpu0, began = server.cpu_seconds(), time.perf_counter()
    until = began + seconds
    threads = [threading.Thread(target=_client, args=(server.port, header, until, c))
               for c in counts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    answers = sum(c[0] for c in counts)
    case.answers += answers
    case.errors += sum(c[1] for c in counts)
    case.seconds += wall
    case.server_cpu += server.cpu_seconds() - cpu0
    case.round_rates = (*case.round_rates, answers / wall)
    return answers / wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each turn of each case")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", default="1,4", help="client counts, comma-separated")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with tempfile.TemporaryDirectory(prefix="webauth-") as tmp:
        full = Recorderd(Path(tmp) / "full-check", 0.0)
        cached = Recorderd(Path(tmp) / "remembered", 60.0)
        servers = (full, cached)
        try:
            for server in servers:
                server.start()
            cases: list[tuple[Recorderd, Case, str]] = []
            for clients in (int(c) for c in args.clients.split(",")):
                cases += [(full, Case("basic, full check", clients), basic),
                          (cached, Case("basic, remembered", clients), basic),
                          (cached, Case("bearer token", clients), f"Bearer {cached.token}")]
            for server, case, header in cases:  # a warm-up turn: connections, first check
                run_case(server, Case(case.name, case.clients), header, 0.5)
            for _ in range(args.rounds):
                for server, case, header in cases:
                    run_case(server, case, header, args.seconds)
        finally:
            for server in servers:
                server.stop()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.seconds:g} s per case")
    print(f"{'case':20} {'clients':>7} {'answers':>8} {'req/s':>9} {'min-max req/s':>15} "
          f"{'server CPU ms/req':>18} {'errors':>6}")
    for _, case, _ in cases:
        spread = f"{min(case.round_rates):.0f}-{max(case.round_rates):.0f}"
        print(f"{case.name:20} {case.clients:7d} {case.answers:8d} {case.rate:9.1f} "
              f"{spread:>15} {case.cpu_ms:18.2f} {case.errors:6d}")
    if args.json is not None:
        args.json.write_text(json.dumps([{**asdict(case), "rate": case.rate,
                                          "cpu_ms": case.cpu_ms} for _, case, _ in cases],
                                         indent=2))
    return 1 if any(case.errors for _, case, _ in cases) else 0


if __name__ == "__main__":
    sys.exit(main())
