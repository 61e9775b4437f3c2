"""Socket-API benchmark: CALLSTART/CALLSTOP pairs per second and per-request latency.

    .venv/bin/python benchmarks/api.py [--seconds 5] [--clients 1,10,100]
                                       [--server in-process|recorderd|both]

Each case opens N connections to the XML socket API over loopback (127.0.0.1), each a CTI link
for a device of its own, and has each send CALLSTART then CALLSTOP on its device, waiting for
every answer before sending the next request, until ``--seconds`` have passed (or
``--max-pairs`` pairs were made in all). It reports requests per second, pairs per second and
the median and 99th percentile of the per-request latency (from the request's write to its
RESULT line, as the client sees it).

The server is a real recorder: a file board of one channel per client device (a one-second
noise WAV replayed in real time), a SQLite database and recordings in a temporary directory,
logging at INFO to a file as the service logs. ``--server in-process`` runs ``Recorder`` in this
process (as the tests do); ``recorderd`` runs the installed daemon as a child process; ``both``
runs both. Two policies, because users compare both:

- **recorded**: every call is recorded (a WAV file, a row inserted at CALLSTART and completed
  at CALLSTOP, each committed with SQLite's synchronous=FULL);
- **not recorded**: a schedule rule ``record = false`` matches every call, so the request goes
  through the whole API path (parse, dispatch, scheduler, decision, events) without files or rows.

The baseline is a server in a process of its own: asyncio streams (as the recorder's socket
server uses) parsing every CRLF-ended message with lxml (the recorder's hardened parser
settings), reading its TYPE and REQUESTID and answering a RESULT of the recorder's wording. It
is measured with the same client code in the same run, ABAB: for each case the baseline, then
the recorder, ``--rounds`` times in turn; each recorder row's ratio is to the baseline row just
before it. The clients run in a separate process (one asyncio loop, callback-driven
protocols); the CPU of client and server (each its own process, from /proc for recorderd and
the baseline) is printed for every case, and the server's per request.

Client and server share the machine (2 vCPUs, shared with other work), so figures move from
run to run; the ratios are taken in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import soundfile
from lxml import etree

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.safexml import parser
from recorder.service.logsetup import STDERR_FORMAT

HOST = "127.0.0.1"
FIRST_DEVICE = 2001
SAMPLE_RATE = 8000
OK_CODE = b"<RESULTCODE>20</RESULTCODE>"
TARGET_RATE = 10_000  # requests/s at 10 clients
TARGET_RATIO = 0.5  # of the baseline at 10 clients, not recorded
TARGET_RECORDED_RATE = 2_000  # requests/s at 10 clients, recorded
TARGET_P99_MS = 10.0  # recorded, 10 clients
IDLE_SECONDS = 1.0  # the server's CPU measured at rest before each case
READY = re.compile(r"recorderd ready")
RESULT_CODE = re.compile(rb"<RESULTCODE>(\d+)</RESULTCODE>")
SOCKET_PORT = re.compile(r"socket API listening on [^:]+:(\d+)")
POLICIES = ("recorded", "not recorded")


@dataclass
class Case:
    """One measured case: a server, a policy and a number of clients."""

    server: str  # "baseline", "in-process", "recorderd" or "before" (--before)
    policy: str  # "recorded" or "not recorded" (for the baseline: the case it was paired with)
    clients: int
    requests: int
    pairs: int
    errors: int  # answers that were not API_OK
    codes: dict[str, int]  # how many of each RESULTCODE those were
    seconds: float
    p50_ms: float
    p99_ms: float
    start_p50_ms: float  # CALLSTART alone
    stop_p50_ms: float  # CALLSTOP alone
    server_cpu: float  # CPU seconds of the server per wall-clock second (1.0 = one core)
    client_cpu: float  # the same for the client process
    baseline_rate: float = 0.0  # the baseline's req/s measured just before (recorder cases)
    idle_cpu: float = 0.0  # the server's CPU per wall-clock second just before, with no client

    @property
    def cpu_per_request_us(self) -> float:
        """The server's CPU per request above its idle use, in microseconds."""
        return (self.server_cpu - self.idle_cpu) / self.rate * 1e6 if self.rate else 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- the clients (run in a child process: `api.py --load ...`) -------------------------------


class _Link(asyncio.Protocol):
    """One CTI link: CALLSTART, CALLSTOP, CALLSTART, ... each sent once the last is answered."""

    def __init__(self, load: _Load, device: str) -> None:
        self._load = load
        self._device = device
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._sent = 0.0
        self._n = 0  # requests sent; even: CALLSTART next
        self.latencies: list[float] = []
        self.measuring = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def send_next(self) -> None:
        assert self._transport is not None
        self._n += 1
        n, device = self._n, self._device
        if n % 2:
            # What a CTI link typically sends when a call starts.
            message = (f"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>{n}</REQUESTID>"
                       f"<DEVICEID>{device}</DEVICEID><ANI>614555{n % 10000:04d}</ANI>"
                       f"<DNIS>8005550100</DNIS><CALLDIRECTION>I</CALLDIRECTION>"
                       f"<USER1>ACCT{n:08d}</USER1></REQUEST>\r\n")
        else:
            message = (f"<REQUEST><TYPE>CALLSTOP</TYPE><REQUESTID>{n}</REQUESTID>"
                       f"<DEVICEID>{device}</DEVICEID></REQUEST>\r\n")
        self._sent = time.perf_counter()
        self._transport.write(message.encode())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buf += data
        while b"\r\n" in self._buf:
            line, self._buf = self._buf.split(b"\r\n", 1)
            if self.measuring:
                self.latencies.append(now - self._sent)
                if OK_CODE not in line:
                    self._load.refused(line)
            # After a CALLSTART its CALLSTOP, at once; after a CALLSTOP, the next pair if any.
            if self._n % 2 or self._load.go_on(self, now):
                self.send_next()
            elif not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("the server closed the connection"))


class _Load:
    """Every link of one case, and when they stop."""

    def __init__(self, seconds: float, max_pairs: int) -> None:
        self.seconds = seconds
        self.max_pairs = max_pairs
        self.deadline = float("inf")
        self.pairs = 0
        self.errors = 0
        self.codes: dict[str, int] = {}  # RESULTCODE of each answer other than API_OK
        self.warming: set[_Link] = set()
        self.warmed = asyncio.get_running_loop().create_future()

    def refused(self, line: bytes) -> None:
        self.errors += 1
        found = RESULT_CODE.search(line)
        code = found.group(1).decode() if found else "?"
        self.codes[code] = self.codes.get(code, 0) + 1

    def go_on(self, link: _Link, now: float) -> bool:
        """A pair ended on ``link``: start another?"""
        if not link.measuring:  # its warm-up pair: wait for the others before measuring
            self.warming.discard(link)
            if not self.warming and not self.warmed.done():
                self.warmed.set_result(None)
            return False
        self.pairs += 1
        return now < self.deadline and self.pairs < self.max_pairs


async def _run_load(port: int, clients: int, seconds: float, max_pairs: int,
                    first_device: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = _Load(seconds, max_pairs)
    links: list[_Link] = []
    for i in range(clients):
        _, link = await loop.create_connection(partial(_Link, load, str(first_device + i)),
                                               HOST, port)
        links.append(link)
    # One pair per link first (connections warm, the server's first-call work done), then all
    # links start measuring together.
    load.warming = set(links)
    for link in links:
        link.send_next()
    await asyncio.wait_for(load.warmed, 60)
    for link in links:
        link.done = loop.create_future()
        link.measuring = True
    cpu0, began = time.process_time(), time.perf_counter()
    load.deadline = began + seconds
    for link in links:
        link.send_next()
    await asyncio.wait_for(asyncio.gather(*(link.done for link in links)), seconds + 60)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu0
    latencies = np.array([x for link in links for x in link.latencies]) * 1000.0
    # Each link's latencies alternate CALLSTART, CALLSTOP (every link ends after a pair).
    starts, stops = latencies[::2], latencies[1::2]
    return {"requests": int(latencies.size), "pairs": load.pairs, "errors": load.errors,
            "codes": load.codes,
            "seconds": elapsed, "client_cpu": cpu / elapsed,
            "p50_ms": float(np.percentile(latencies, 50)) if latencies.size else 0.0,
            "p99_ms": float(np.percentile(latencies, 99)) if latencies.size else 0.0,
            "start_p50_ms": float(np.median(starts)) if starts.size else 0.0,
            "stop_p50_ms": float(np.median(stops)) if stops.size else 0.0}


def load_main(args: argparse.Namespace) -> int:
    """The client process: run one case and print its figures as one JSON line."""
    result = asyncio.run(_run_load(args.port, args.clients, args.seconds, args.max_pairs,
                                   args.first_device))
    print(json.dumps(result), flush=True)
    return 0


# --- the servers ------------------------------------------------------------------------------


# The baseline's answer, as the recorder words a CALLSTART's or CALLSTOP's (same length).
BASELINE_RESULT = ("<RESULT><REQUESTTYPE>{type}</REQUESTTYPE><REQUESTID>{id}</REQUESTID>"
                   "<RESULTTYPE>API_OK</RESULTTYPE><RESULTCODE>20</RESULTCODE>"
                   "<RESULTMSG>{type} sent to all of the following cores: 1</RESULTMSG>"
                   "</RESULT>\r\n")


def baseline_main() -> int:
    """The baseline server process: asyncio streams, each CRLF-ended message parsed by lxml
    (the recorder's hardened parser settings), its TYPE and REQUESTID read and a RESULT of the
    recorder's wording written back, escaped. No recorder work: what a server in Python that
    reads the same XML costs. Prints its port, then serves until SIGTERM."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        xml = parser()
        pending = b""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(64 * 1024):
                *messages, pending = (pending + data).split(b"\r\n")
                if not messages:
                    continue
                answers = []
                for message in messages:
                    root = etree.fromstring(message, xml)
                    answers.append(BASELINE_RESULT.format(
                        type=escape(root.findtext("TYPE") or ""),
                        id=escape(root.findtext("REQUESTID") or "")))
                writer.write("".join(answers).encode())
                await writer.drain()
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, HOST, 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        stop = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
        await stop
        server.close()

    asyncio.run(main())
    return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BaselineProcess:
    """The baseline (``baseline_main``) as a child process, so that it has a process of its
    own as recorderd does and its CPU is counted alone."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--baseline-server"],
            stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            self._proc.wait(30)

    def cpu_seconds(self) -> float:
        assert self._proc is not None
        return process_cpu_seconds(self._proc.pid)


def fsync_ms(directory: Path, count: int = 50) -> float:
    """Median time of a small append and its fsync in ``directory``: what each durable step of
    a recorded call (the crash journal's entry, SQLite's commits) waits for at least."""
    times = []
    fd = os.open(directory / "fsync-probe", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            began = time.perf_counter()
            os.write(fd, b"x" * 200)
            os.fsync(fd)
            times.append(time.perf_counter() - began)
    finally:
        os.close(fd)
    return float(np.median(times)) * 1000


def noise_wav(path: Path) -> Path:
    """One second of quiet noise: what each channel of the file board replays."""
    rng = np.random.default_rng(1)
    soundfile.write(path, (rng.standard_normal(SAMPLE_RATE) * 1000).astype(np.int16),
                    SAMPLE_RATE, subtype="PCM_16")
    return path


def recorder_doc(data_dir: Path, wav: Path, devices: int, policy: str) -> dict[str, Any]:
    """The configuration of the recorder under test."""
    doc: dict[str, Any] = {
        "storage": {"data_dir": str(data_dir)},
        "api": {"host": HOST, "socket_port": 0, "web_port": 0},
        "log": {"level": "INFO"},
        "boards": [{"driver": "file", "files": [str(wav)] * devices, "trigger": "api",
                    "devices": [str(FIRST_DEVICE + i) for i in range(devices)]}],
    }
    if policy == "not recorded":
        doc["recording"] = {"schedules": [{"name": "benchmark-not-recorded", "record": False}]}
    return doc


class InProcessRecorder:
    """``Recorder`` in this process, logging to a file at INFO as the service would."""

    def __init__(self, doc: dict[str, Any], log_path: Path) -> None:
        self._recorder = Recorder(config_from_dict(doc))
        self._handler = logging.FileHandler(log_path)
        self._handler.setFormatter(logging.Formatter(STDERR_FORMAT))
        self.port = 0

    def start(self) -> None:
        root = logging.getLogger()
        root.addHandler(self._handler)
        root.setLevel(logging.INFO)
        self._recorder.start()
        assert self._recorder.api is not None
        self.port = self._recorder.api.socket_address[1]

    def stop(self) -> None:
        self._recorder.stop()
        logging.getLogger().removeHandler(self._handler)
        self._handler.close()

    def cpu_seconds(self) -> float:
        return time.process_time()


def stage_tree(source: Path, stage: Path) -> Path:
    """A tree of symlinks laid out as the package installs (drivers/, codecs/ and api/ under
    recorder/, as scripts/typecheck does), for running another checkout's code: ``source``
    (a git worktree, say of main) put first on PYTHONPATH."""
    (stage / "recorder").mkdir(parents=True)
    for entry in (source / "recorder").iterdir():
        if entry.name != "__pycache__":
            (stage / "recorder" / entry.name).symlink_to(entry)
    for sub in ("drivers", "codecs", "api"):
        (stage / "recorder" / sub).symlink_to(source / sub)
    return stage


class RecorderdProcess:
    """``recorderd`` as a child process, its log in a file: the installed one, or (``code``)
    the code of the staged tree ``code``."""

    def __init__(self, doc: dict[str, Any], directory: Path, code: Path | None = None) -> None:
        self._config = directory / "recorder.toml"
        self._config.write_text(to_toml(config_from_dict(doc)), encoding="utf-8")
        self._log_path = directory / "recorderd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._code = code
        self.port = 0

    def start(self) -> None:
        env = None
        if self._code is None:
            command = [str(Path(sys.executable).parent / "recorderd")]
        else:
            command = [sys.executable, "-c",
                       "import sys; from recorder.service.daemon import main; sys.exit(main())"]
            env = {**os.environ, "PYTHONPATH": str(self._code)}
        # In the staged tree: "python -c" puts the working directory first on sys.path, and a
        # checkout's own recorder/ there would shadow the staged one.
        with self._log_path.open("wb") as log:
            self._proc = subprocess.Popen([*command, "--config", str(self._config)],
                                          stdout=log, stderr=subprocess.STDOUT, env=env,
                                          cwd=self._code)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = self._log_path.read_text(errors="replace")
            port = SOCKET_PORT.search(text)
            if READY.search(text) and port:
                self.port = int(port.group(1))
                return
            if self._proc.poll() is not None:
                raise RuntimeError(f"recorderd exited {self._proc.returncode}:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("recorderd was not ready within 60 s")

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
        return process_cpu_seconds(self._proc.pid)


Server = BaselineProcess | InProcessRecorder | RecorderdProcess


def measure(server: Server, name: str, policy: str, clients: int,
            args: argparse.Namespace) -> Case:
    """Run one case against ``server`` with a client process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--load",
               "--port", str(server.port), "--clients", str(clients),
               "--seconds", str(args.seconds), "--max-pairs", str(args.max_pairs),
               "--first-device", str(FIRST_DEVICE)]
    # What the server spends with no request at all (the file board's capture, the writer
    # loop, the level meters): taken off its CPU per request, which is the API's own cost.
    idle0, idle_wall0 = server.cpu_seconds(), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    idle = (server.cpu_seconds() - idle0) / (time.perf_counter() - idle_wall0)
    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=args.seconds + 120,
                          check=False)
    cpu, wall = server.cpu_seconds() - cpu0, time.perf_counter() - wall0
    if done.returncode != 0:
        raise RuntimeError(f"the client process failed ({done.returncode}):\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # The server's CPU over the client process's whole life (connecting and the warm-up pair
    # included, a small part of a case), per wall-clock second.
    return Case(server=name, policy=policy, clients=clients, server_cpu=cpu / wall,
                idle_cpu=idle, **result)


def run(args: argparse.Namespace, work: Path) -> list[Case]:
    """Every case, ABAB: for each policy and client count, the baseline then the recorder,
    ``--rounds`` times in turn, both servers up throughout (an idle one costs nothing)."""
    cases: list[Case] = []
    counts = [int(c) for c in args.clients.split(",")]
    wav = noise_wav(work / "noise.wav")
    baseline = BaselineProcess()
    baseline.start()
    try:
        servers = ["in-process", "recorderd"] if args.server == "both" else [args.server]
        before = None if args.before is None else stage_tree(args.before.resolve(),
                                                             work / "before-code")
        for policy in args.policies:
            running: list[tuple[str, Server, Path]] = []
            try:
                for name in servers + (["before"] if before is not None else []):
                    directory = work / f"{name}-{policy.replace(' ', '-')}"
                    directory.mkdir()
                    doc = recorder_doc(directory / "data", wav, max(counts), policy)
                    server: Server = (
                        InProcessRecorder(doc, directory / "recorder.log")
                        if name == "in-process" else
                        RecorderdProcess(doc, directory, before if name == "before" else None))
                    server.start()
                    running.append((name, server, directory))
                for clients in counts:
                    for _ in range(args.rounds):
                        base = measure(baseline, "baseline", policy, clients, args)
                        cases.append(base)
                        report(base, None)
                        for name, server, _ in running:
                            case = measure(server, name, policy, clients, args)
                            case.baseline_rate = base.rate
                            cases.append(case)
                            report(case, base)
            finally:
                for name, server, directory in running:
                    server.stop()
                    if policy == "recorded":
                        files = sum(1 for _ in (directory / "data" / "recordings").rglob("*.wav"))
                        print(f"  ({files:,} recordings written by {name}, recorded policy)")
    finally:
        baseline.stop()
    return cases


HEADER = (f"{'server':<10} {'policy':<12} {'clients':>7} {'requests':>9} {'req/s':>8} "
          f"{'pairs/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'start':>6} {'stop':>6} "
          f"{'of base':>7} {'server CPU':>10} {'idle':>5} {'CPU/req':>8} {'client CPU':>10}  "
          "not API_OK")


def report(case: Case, base: Case | None) -> None:
    ratio = f"{case.rate / base.rate:.2f}" if base is not None and base.rate else ""
    refusals = ", ".join(f"{n:,} x {code}" for code, n in sorted(case.codes.items())) or "-"
    per_request = case.cpu_per_request_us
    print(f"{case.server:<10} {case.policy or '-':<12} {case.clients:>7} {case.requests:>9,} "
          f"{case.rate:>8,.0f} {case.pairs / case.seconds:>8,.0f} {case.p50_ms:>7.2f} "
          f"{case.p99_ms:>7.2f} {case.start_p50_ms:>6.2f} {case.stop_p50_ms:>6.2f} {ratio:>7} "
          f"{case.server_cpu:>10.0%} {case.idle_cpu:>5.0%} {per_request:>6.0f}us "
          f"{case.client_cpu:>10.0%}  "
          f"{refusals}", flush=True)


def verdicts(cases: list[Case]) -> list[str]:
    """The issue's targets at 10 clients, for every recorder case."""
    lines = []
    for case in cases:
        if case.server in ("baseline", "before") or case.clients != 10:
            continue
        if case.policy == "not recorded":
            checks = [(f">= {TARGET_RATE:,} req/s", case.rate >= TARGET_RATE),
                      (f">= {TARGET_RATIO:.0%} of baseline",
                       case.rate >= TARGET_RATIO * case.baseline_rate)]
        else:
            checks = [(f">= {TARGET_RECORDED_RATE:,} req/s", case.rate >= TARGET_RECORDED_RATE),
                      (f"p99 < {TARGET_P99_MS:g} ms", case.p99_ms < TARGET_P99_MS)]
        marks = ", ".join(f"{what} {'ok' if good else 'MISSED'}" for what, good in checks)
        lines.append(f"{case.server}, {case.policy}, 10 clients: {marks}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--clients", default="1,10,100", help="client counts, comma-separated")
    parser.add_argument("--server", choices=("in-process", "recorderd", "both"),
                        default="recorderd")
    parser.add_argument("--policy", choices=("recorded", "not-recorded", "both"), default="both")
    parser.add_argument("--max-pairs", type=int, default=200_000,
                        help="stop a case after this many pairs in all")
    parser.add_argument("--before", type=Path,
                        help="also run this checkout's recorderd (a git worktree, say of main) "
                             "as server 'before', in turn with the others")
    parser.add_argument("--rounds", type=int, default=2,
                        help="baseline and recorder measured in turn this many times a case")
    parser.add_argument("--json", type=Path, help="also write every case to this file")
    # The client process's own arguments.
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first-device", type=int, default=FIRST_DEVICE, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server:
        return baseline_main()
    if args.load:
        args.clients = int(args.clients)
        return load_main(args)
    args.policies = POLICIES if args.policy == "both" else (args.policy.replace("-", " "),)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}), "
          f"client and server on this machine over {HOST}; {args.seconds:g} s per case")
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        print(f"fsync of a small append in {tmp}: {fsync_ms(Path(tmp)):.2f} ms (median of 50)")
        print(HEADER)
        cases = run(args, Path(tmp))
    print("targets:")
    for line in verdicts(cases):
        print(f"  {line}")
    if args.json is not None:
        args.json.write_text(json.dumps([{**asdict(c), "rate": c.rate} for c in cases],
                                        indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
