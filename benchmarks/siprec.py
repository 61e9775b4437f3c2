"""SIPREC benchmark: concurrent two-stream G.711 sessions recorded to WAV by a real recorderd,
beside a bare receiver doing the least the job needs.

    .venv/bin/python benchmarks/siprec.py [--streams 250,500,1000] [--seconds 20] [--repeats 1]
                                          [--quick] [--json FILE]

For each stream count N, in turn (interleaved, so both see the same machine):

- **recorderd**: the installed daemon as a child process with one siprec board (N/2 sessions,
  RTP ports 61000 and up: above the kernel's ephemeral ports and the tests' ranges), storage
  PCM WAV, stereo. The SRC (``siprec_load.py src``, another process) sets up N/2 sessions over
  SIP/UDP, each two PCMU streams, then sends every stream a 20 ms packet every 20 ms for
  ``--seconds``, then BYE.
- **bare**: ``siprec_load.py bare``: one process, N UDP sockets, epoll, ``recvfrom`` until
  EAGAIN, numpy G.711 decode by table, one mono WAV file per stream appended to; the same
  sender sends it the same streams.

The receiver (recorderd or bare) is pinned to the last CPU and the sender to the first, so a
figure "per core" is what one core carried. CPU is the receiver's utime + stime from
/proc/<pid>/stat over the steady window (from ``--warmup`` seconds into the sending until the
last packet is sent), divided by that window's wall time: 100 % is one core. Loopback UDP is
delivered in the sender's system calls, so the kernel's receive path is the sender's CPU, not
the receiver's, for both.

Packets lost: for recorderd, the per-stream counts it logs at each session's end (packets
taken, lost, late), then every stereo WAV file read back: each side's audio must run exactly
as long as what was sent (packets x 160 samples) with no zero sample inside it (the tone never
decodes to zero, so a zero is silence put in for lost audio). For bare, the packets each socket
read. The kernel's UDP receive-buffer drops (/proc/net/snmp, the whole machine) are shown for
both. Memory per session: the receiver's RSS at the end of the steady window minus its RSS
before the sessions began, over the sessions (N/2); recorderd's ring, sized by ``max_sessions``
and filled before that first reading, is not in it (its share is printed apart).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import soundfile

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml

HERE = Path(__file__).resolve().parent
LOAD = HERE / "siprec_load.py"
HOST = "127.0.0.1"
RTP_BASE = 61000  # above net.ipv4.ip_local_port_range (32768-60999) and the tests' 20000-32000
RATE = 8000
FRAMES = 160
LOOKBACK_SECONDS = 2.0  # the ring is not what is measured; it is filled before RSS is read
# (--lookback sets it: a writer loop held up longer than it loses audio, "ring lapped")
READY = re.compile(r"recorderd ready")
SIP_PORT = re.compile(r"SIP listening on [^:]+:(\d+)")
LANE_LINE = re.compile(r"express lane: (\d+) packets")
STREAM_LINE = re.compile(r"stream \S+ on port \d+ from \S+: (\d+) packets, (\d+) lost, "
                         r"(\d+) late, \d+ samples of audio lost, (\d+) duplicates")
TARGET_STREAMS = 1000  # per core, no packet lost
TARGET_RATIO = 2.0  # recorderd's CPU within 2x of the bare receiver's


@dataclass
class Run:
    """One measured run of one receiver at one stream count."""

    receiver: str  # "recorderd" or "bare"
    streams: int
    setup_seconds: float
    window_seconds: float
    cpu: float  # CPU seconds per wall-clock second in the steady window (1.0 = one core)
    sent: int
    received: int  # packets the receiver took (recorderd: its per-stream counts)
    lost: int  # recorderd: its lost + late counts; bare: sent - received
    silence: int  # zero samples inside the recorded audio (recorderd's files)
    short: int  # sides whose audio is not exactly what was sent
    files: int
    kernel_drops: int  # UDP receive-buffer errors on the machine during the run
    rss_mib: float  # receiver RSS at the end of the window
    rss_per_session_kib: float
    sender_late: int  # packets the sender sent more than 10 ms after their time
    sender_worst_ms: float
    sender_cpu: float
    refused: int  # sessions not set up
    waited: float  # the receiver's threads' run-queue wait per wall-clock second
    express: int = 0  # recorderd: packets its media thread's express lane took

    @property
    def us_per_packet(self) -> float:
        return self.cpu * 1e6 / (self.streams * 50) if self.streams else 0.0

    @property
    def streams_per_core(self) -> float:
        return self.streams / self.cpu if self.cpu else 0.0


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_waited(pid: int) -> float:
    """Seconds the process's threads have waited for a CPU while runnable (schedstat): how
    much other work on its core held it back."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def udp_drops() -> int:
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
             if line.startswith("Udp:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("RcvbufErrors")])


def cores() -> tuple[int, int]:
    """(sender's CPU, receiver's CPU): the first and the last this process may use."""
    allowed = sorted(os.sched_getaffinity(0))
    return allowed[0], allowed[-1]


def sender(args: argparse.Namespace, streams: int, target: list[str]) -> subprocess.Popen[str]:
    sender_core, _ = cores()
    return subprocess.Popen(
        [sys.executable, str(LOAD), "src", "--streams", str(streams), "--seconds",
         str(args.seconds), "--warmup", str(args.warmup), "--settle", str(args.settle),
         "--core", str(sender_core), *target],
        stdout=subprocess.PIPE, text=True, start_new_session=True)


class Window:
    """Follows the sender's lines and reads the receiver's CPU and RSS at the window's ends."""

    def __init__(self, proc: subprocess.Popen[str], pid: int) -> None:
        self.proc, self.pid = proc, pid
        self.setup: dict[str, Any] = {}
        self.done: dict[str, Any] = {}
        self.cpu = self.wall = self.waited = 0.0
        self.rss_end = 0

    def follow(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        cpu0 = wall0 = waited0 = 0.0
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            if time.monotonic() > deadline:
                raise RuntimeError("the sender did not finish in time")
            message = json.loads(line)
            event = message.pop("event", "")
            if event == "setup":
                self.setup = message
            elif event == "steady":
                cpu0, wall0 = proc_cpu(self.pid), time.monotonic()
                waited0 = proc_waited(self.pid)
            elif event == "end":
                self.cpu, self.wall = proc_cpu(self.pid) - cpu0, time.monotonic() - wall0
                self.waited = proc_waited(self.pid) - waited0
                self.rss_end = proc_rss_kib(self.pid)
            elif event == "done":
                self.done = message
        if self.proc.wait(60) != 0 or not self.done:
            raise RuntimeError(f"the sender failed ({self.proc.returncode})")
        if not self.setup.get("prioritised"):
            print("  (the sender could not raise its priority: it may fall behind)")


def recorder_doc(work: Path, streams: int, lookback: float = LOOKBACK_SECONDS
                 ) -> dict[str, Any]:
    sessions = streams // 2
    return {
        "storage": {"data_dir": str(work / "data"), "format": "wav", "stereo": True},
        "capture": {"lookback_seconds": lookback},
        "api": {"host": HOST, "socket_port": 0, "web_port": 0},
        "log": {"level": "INFO"},
        "boards": [{"driver": "siprec", "sip_host": HOST, "sip_port": 0,
                    "rtp_port_min": RTP_BASE, "rtp_port_max": RTP_BASE + 4 * sessions + 63,
                    "max_sessions": sessions, "media_timeout_seconds": 30}],
    }


def niced(nice: int) -> list[str]:
    """The command prefix that runs a receiver at niceness ``nice`` (0: as it is)."""
    return ["nice", "-n", str(nice)] if nice else []


def group_niceness(pid: int, nice: int) -> None:
    """Give a receiver started in a session of its own (``start_new_session``) the niceness
    for its autogroup too: with autogroup scheduling, a niceness counts only inside its
    session, and the machine's other work is in other sessions."""
    if nice:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def start_recorderd(work: Path, streams: int, log: IO[bytes], nice: int,
                    lookback: float = LOOKBACK_SECONDS) -> tuple[subprocess.Popen[bytes], int]:
    config = work / "recorder.toml"
    config.write_text(to_toml(config_from_dict(recorder_doc(work, streams, lookback))),
                      encoding="utf-8")
    _, core = cores()
    # taskset execs recorderd: the pid is recorderd's, and every thread it starts is pinned.
    proc = subprocess.Popen([*niced(nice), "taskset", "-c", str(core),
                             str(Path(sys.executable).parent / "recorderd"), "--config",
                             str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=bool(nice))
    group_niceness(proc.pid, nice)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (work / "recorderd.log").read_text(errors="replace")
        port = SIP_PORT.search(text)
        if READY.search(text) and port:
            return proc, int(port.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"recorderd exited {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("recorderd was not ready within 60 s")


def read_files(directory: Path, per_stream: int) -> tuple[int, int, int]:
    """(files, zero samples inside the audio, sides whose audio is not ``per_stream`` packets
    long) over every stereo WAV file under ``directory``."""
    files = silence = short = 0
    for path in sorted(directory.rglob("*.wav")):
        data, _ = soundfile.read(path, dtype="int16", always_2d=True)
        files += 1
        for side in data.T:
            sound = np.flatnonzero(side)
            if not len(sound):
                short += 1
                continue
            inside = side[sound[0]:sound[-1] + 1]
            silence += int(np.count_nonzero(inside == 0))
            short += len(inside) != per_stream * FRAMES
    return files, silence, short


def run_recorderd(args: argparse.Namespace, streams: int, work: Path) -> Run:
    work.mkdir(parents=True)
    with (work / "recorderd.log").open("wb") as log:
        proc, sip_port = start_recorderd(work, streams, log, args.nice, args.lookback)
        try:
            time.sleep(args.lookback + 0.5)  # the ring filled: its pages are all resident
            rss0 = proc_rss_kib(proc.pid)
            drops0 = udp_drops()
            window = Window(sender(args, streams, ["--sip", f"{HOST}:{sip_port}"]), proc.pid)
            window.follow(args.seconds + 300)
            drops = udp_drops() - drops0
            # Every session's counts are logged when its BYE is answered; the files close as
            # the writer loop finishes each call, and for certain at a clean stop.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = (work / "recorderd.log").read_text(errors="replace")
                if len(STREAM_LINE.findall(text)) >= window.setup["streams"]:
                    break
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    text = (work / "recorderd.log").read_text(errors="replace")
    counts = np.array([[int(x) for x in m] for m in STREAM_LINE.findall(text)] or [[0] * 4])
    per_stream = int(window.done["per_stream"])
    files, silence, short = read_files(work / "data" / "recordings", per_stream)
    sessions = max(1, streams // 2)
    return Run("recorderd", streams, window.setup["seconds"], window.wall,
               window.cpu / window.wall if window.wall else 0.0, int(window.done["sent"]),
               int(counts[:, 0].sum()), int(counts[:, 1].sum() + counts[:, 2].sum()),
               silence, short, files, drops, window.rss_end / 1024,
               (window.rss_end - rss0) / sessions, int(window.done["late_packets"]),
               float(window.done["worst_late_ms"]), float(window.done["sender_cpu"]),
               int(window.setup["refused"]), window.waited / window.wall,
               sum(int(m) for m in LANE_LINE.findall(text)))


def run_bare(args: argparse.Namespace, streams: int, work: Path) -> Run:
    work.mkdir(parents=True)
    _, core = cores()
    proc = subprocess.Popen([*niced(args.nice), sys.executable, str(LOAD), "bare",
                             "--streams", str(streams),
                             "--directory", str(work / "wav"), "--core", str(core)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=bool(args.nice))
    group_niceness(proc.pid, args.nice)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        ports = json.loads(proc.stdout.readline())["ports"]
        (work / "ports.json").write_text(json.dumps(ports))
        time.sleep(0.5)
        rss0 = proc_rss_kib(proc.pid)
        drops0 = udp_drops()
        window = Window(sender(args, streams, ["--ports", str(work / "ports.json")]), proc.pid)
        window.follow(args.seconds + 300)
        drops = udp_drops() - drops0
        time.sleep(0.2)  # the last packets read
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        received = json.loads(proc.stdout.readline())["received"]
    finally:
        if proc.wait(60) != 0:
            raise RuntimeError(f"the bare receiver failed ({proc.returncode})")
    sent = int(window.done["sent"])
    total = int(sum(received))
    sessions = max(1, streams // 2)
    return Run("bare", streams, window.setup["seconds"], window.wall,
               window.cpu / window.wall if window.wall else 0.0, sent, total, sent - total, 0,
               sum(1 for r in received if r != window.done["per_stream"]), streams, drops,
               window.rss_end / 1024, (window.rss_end - rss0) / sessions,
               int(window.done["late_packets"]), float(window.done["worst_late_ms"]),
               float(window.done["sender_cpu"]), 0, window.waited / window.wall)


HEADER = (f"{'receiver':<9} {'streams':>7} {'CPU':>6} {'µs/pkt':>7} {'str/core':>8} "
          f"{'of bare':>7} {'sent':>9} {'received':>9} {'lost':>5} {'silence':>7} "
          f"{'short':>5} {'files':>5} {'kdrops':>6} {'RSS MiB':>7} {'KiB/sess':>8} "
          f"{'setup s':>7} {'snd late':>8} {'snd worst':>9} {'snd CPU':>7} {'waited':>6} "
          f"{'lane':>5}")


def bare_cpu(run: Run, runs: list[Run]) -> float | None:
    same = [r.cpu for r in runs if r.receiver == "bare" and r.streams == run.streams]
    return float(np.median(same)) if same else None


def report(run: Run, runs: list[Run]) -> None:
    bare = bare_cpu(run, runs)
    ratio = f"{run.cpu / bare:.2f}" if bare and run.receiver != "bare" else ""
    print(f"{run.receiver:<9} {run.streams:>7} {run.cpu:>6.1%} {run.us_per_packet:>7.1f} "
          f"{run.streams_per_core:>8,.0f} {ratio:>7} {run.sent:>9,} {run.received:>9,} "
          f"{run.lost:>5} {run.silence:>7} {run.short:>5} {run.files:>5} {run.kernel_drops:>6} "
          f"{run.rss_mib:>7.0f} {run.rss_per_session_kib:>8.0f} {run.setup_seconds:>7.1f} "
          f"{run.sender_late:>8} {run.sender_worst_ms:>7.1f}ms {run.sender_cpu:>7.0%} "
          f"{run.waited:>6.0%} "
          f"{run.express / run.received if run.received and run.express else 0:>5.0%}",
          flush=True)


def verdicts(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        if run.receiver != "recorderd":
            continue
        bare = bare_cpu(run, runs)
        clean = (run.lost == 0 and run.silence == 0 and run.short == 0 and run.refused == 0
                 and run.received == run.sent)
        checks = [
            ("no packet lost", clean),
            ("kept up on one core", run.cpu < 0.95),
            (f"within {TARGET_RATIO:g}x of bare", bare is not None and
             run.cpu <= TARGET_RATIO * bare),
        ]
        marks = ", ".join(f"{what} {'ok' if good else 'MISSED'}" for what, good in checks)
        lines.append(f"recorderd, {run.streams} streams: {marks}")
    lines.append(f"(target: >= {TARGET_STREAMS:,} streams per core with all three)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", default="250,500,1000",
                        help="stream counts (two per session), comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="sending time per run")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of sending before the CPU window opens")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each pair")
    parser.add_argument("--lookback", type=float, default=LOOKBACK_SECONDS,
                        help="recorderd's capture.lookback_seconds: how long its writer loop "
                        "may be held up before audio is lost (the product's default is 10)")
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds from the last session set up to the first packet: the "
                        "recorder starts every recording first, so the load is the streams "
                        "alone (0: the packets begin at once, a burst of call starts and all the "
                        "streams together)")
    parser.add_argument("--receiver", choices=("recorderd", "bare", "both"), default="both")
    parser.add_argument("--nice", type=int, default=0,
                        help="the receivers' niceness: -10 runs them ahead of other work on a "
                        "shared machine (root only; the sender always asks for -10)")
    parser.add_argument("--quick", action="store_true", help="100 streams, 6 s: a smoke run")
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    parser.add_argument("--keep", type=Path, help="keep the runs' files in this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.seconds, args.warmup = "100", 6.0, 2.0
    counts = [int(c) for c in args.streams.split(",")]
    sender_core, receiver_core = cores()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, receiver on CPU "
          f"{receiver_core}, sender on CPU {sender_core}; {args.seconds:g} s of sending, CPU "
          f"measured after {args.warmup:g} s; receivers at niceness {args.nice}; load "
          f"average {os.getloadavg()[0]:.2f}")
    if sender_core == receiver_core:
        print("WARNING: one CPU only: sender and receiver share it")
    print(HEADER)
    runs: list[Run] = []
    receivers = ["bare", "recorderd"] if args.receiver == "both" else [args.receiver]
    with tempfile.TemporaryDirectory(prefix="siprec-bench-") as tmp:
        work = args.keep or Path(tmp)
        for repeat in range(args.repeats):
            for streams in counts:
                for receiver in receivers:
                    where = work / f"{receiver}-{streams}-{repeat}"
                    run = (run_bare if receiver == "bare" else run_recorderd)(args, streams,
                                                                              where)
                    runs.append(run)
                    report(run, runs)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    ring = 2 * args.lookback * RATE * 2 / 1024
    print(f"recorderd's ring per session (2 channels): {ring:.0f} KiB at the {args.lookback:g}"
          f" s look-back used here, {ring * 10 / args.lookback:.0f} KiB at the default 10 s")
    print("targets:")
    for line in verdicts(runs):
        print(f"  {line}")
    if args.json is not None:
        args.json.write_text(json.dumps([{**asdict(r), "us_per_packet": r.us_per_packet,
                                          "streams_per_core": r.streams_per_core}
                                         for r in runs], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
