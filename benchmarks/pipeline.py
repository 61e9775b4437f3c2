"""Pipeline benchmark: the whole recorder, end to end, beside a bare baseline in the same run.

    .venv/bin/python benchmarks/pipeline.py [--channels 64,256,1024] [--formats wav,mp3,vox]
                                            [--seconds 20] [--repeats 1] [--quick] [--json FILE]

For each format and channel count N, in turn, ABAB (bare, recorderd, bare, recorderd, ... so
both see the same machine):

- **recorderd**: the installed daemon as a child process, a file board of N lines all playing
  one 30 s speech-like WAV in real time, storage in the format. One socket API client starts a
  call on every line, the calls record for ``--seconds``, then each is stopped and the run
  waits for every row to be complete. Nothing is left out: capture, the writer loop, its
  syncs and fsyncs, the journal, the database, the API. CPU is recorderd's utime + stime from
  /proc/<pid>/stat over the steady window (``--warmup`` s after the last call started, until
  the first stop), so the figure is channel-seconds recorded per CPU-second; ``cores`` is that
  CPU over the window's wall time (it is not pinned: it may use every CPU it can).
- **bare**: one process doing the least the job needs: the same audio in 50 ms blocks (as the
  writer loop pumps them) to N files, encoded with the library the recorder uses for the
  format (PCM: plain writes; MP3: lameenc, one encoder per file; VOX: libsndfile's VOX_ADPCM
  through soundfile, the reference the recorder's own encoder is checked against bit for bit),
  as fast as it goes, pinned to one CPU.

Also per recorderd run: samples lost (``recorder_dropped_samples_total``, gaps and overruns),
each file's duration, less the pre-roll, against the time between its CALLSTART and CALLSTOP
answers (every
WAV and VOX file; MP3 through ffprobe on up to 16 files), and resident memory per channel: RSS at
the end of the window minus RSS before the calls (the ring is full by then), over N. The bare
side's memory per channel adds the 10 s ring recorderd keeps (``capture.lookback_seconds``) to
what its encoders and files take, so the two compare like for like.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lameenc
import numpy as np
import soundfile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.helpers.api, when run from a checkout

from recorder.config.loader import config_from_dict  # noqa: E402
from recorder.config.printing import to_toml  # noqa: E402
from recorder.drivers.settings import SyntheticBoardConfig  # noqa: E402
from recorder.drivers.synthetic import SyntheticDriver  # noqa: E402
from tests.helpers.api import ApiConnection, result_code  # noqa: E402

RATE = 8000
BLOCK = 400  # 50 ms: what the writer loop hands a file at a time
SPEECH_SECONDS = 30
LOOKBACK_SECONDS = 10.0  # the default ring
FIRST_DEVICE = 20000
READY = re.compile(r"recorderd ready")
SOCKET_PORT = re.compile(r"socket API listening on [^:]+:(\d+)")
WEB_PORT = re.compile(r"WebAPI listening on http://[^:]+:(\d+)/")
EXTENSIONS = {"wav": ".wav", "mp3": ".mp3", "vox": ".vox"}
# Goals of issue 19: the whole pipeline against the bare library, channel-seconds per CPU-second.
GOALS = {"wav": None, "mp3": 0.9, "vox": 0.5}


@dataclass
class Run:
    side: str  # recorderd or bare
    fmt: str
    channels: int
    seconds: float  # of audio per channel in the window
    rate: float  # channel-seconds per CPU-second
    cores: float  # CPU over wall time in the window
    rss_per_channel_kib: float
    lost_samples: int = 0
    files: int = 0
    worst_duration_error: float = 0.0  # seconds, file against wall, the largest
    mean_duration_error: float = 0.0


def speech_wav(path: Path) -> Path:
    """30 s of the demo board's speech-like audio, as the file board's one track."""
    driver = SyntheticDriver("speech", SyntheticBoardConfig(devices=("1",), channels=1,
                                                            realtime=False, seed=7))
    audio = np.concatenate([driver.next_block(160) for _ in range(SPEECH_SECONDS * 50)])
    soundfile.write(path, audio, RATE, subtype="PCM_16")
    return path


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --- recorderd ---------------------------------------------------------------------------------

def recorder_doc(work: Path, fmt: str, channels: int, speech: Path) -> dict[str, Any]:
    return {
        "storage": {"data_dir": str(work / "data"), "format": fmt},
        "api": {"host": "127.0.0.1", "socket_port": 0, "web_port": 0,
                "max_clients": 8},
        "boards": [{"driver": "file", "files": [str(speech)] * channels,
                    "devices": [str(FIRST_DEVICE + i) for i in range(channels)]}],
    }


def metric(web_port: int, name: str) -> float:
    """The sum of a /metrics family's samples."""
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name)] in " {")


def file_seconds(path: Path, fmt: str) -> float | None:
    if fmt == "wav":
        return float(soundfile.info(path).duration)
    if fmt == "vox":
        return path.stat().st_size * 2 / RATE
    if shutil.which("ffprobe") is None:
        return None
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                         check=False).stdout.strip()
    return float(out) if out else None


def run_recorderd(args: argparse.Namespace, fmt: str, channels: int, speech: Path,
                  work: Path) -> Run:
    work.mkdir(parents=True)
    config = work / "recorder.toml"
    loaded = config_from_dict(recorder_doc(work, fmt, channels, speech))
    preroll = loaded.capture.preroll_seconds  # a file begins this long before its CALLSTART
    config.write_text(to_toml(loaded), encoding="utf-8")
    log_path = work / "recorderd.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "recorderd"), "--config",
                                 str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            text = log_path.read_text(errors="replace")
            ports = SOCKET_PORT.search(text), WEB_PORT.search(text)
            if READY.search(text) and ports[0] and ports[1]:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"recorderd did not start:\n{text[-3000:]}")
            time.sleep(0.05)
        socket_port, web_port = int(ports[0].group(1)), int(ports[1].group(1))
        time.sleep(args.settle)  # the ring full: its pages are resident
        rss0 = proc_rss_kib(proc.pid)
        conn = ApiConnection(socket_port, timeout=60)
        devices = [str(FIRST_DEVICE + i) for i in range(channels)]
        started: dict[str, float] = {}
        for i, device in enumerate(devices):
            code = result_code(conn.request("CALLSTART", i + 1, DEVICEID=device))
            if code != 20:
                raise RuntimeError(f"CALLSTART {device}: result {code}")
            started[device] = time.monotonic()
        time.sleep(args.warmup)
        cpu0, wall0 = proc_cpu(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu, wall = proc_cpu(proc.pid) - cpu0, time.monotonic() - wall0
        rss = proc_rss_kib(proc.pid)
        lasted: dict[str, float] = {}
        for i, device in enumerate(devices):
            conn.request("CALLSTOP", channels + i + 1, DEVICEID=device)
            lasted[device] = time.monotonic() - started[device]
        conn.close()
        deadline = time.monotonic() + 300
        while metric(web_port, "recorder_recordings_completed_total") < channels:
            if time.monotonic() > deadline:
                raise RuntimeError("the recordings were not all completed within 300 s")
            time.sleep(0.5)
        lost = int(metric(web_port, "recorder_dropped_samples_total"))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    errors = []
    files = sorted((work / "data" / "recordings").rglob("*" + EXTENSIONS[fmt]))
    for path in files[:16] if fmt == "mp3" else files:
        device = path.parent.name
        seconds = file_seconds(path, fmt)
        if seconds is not None and device in lasted:
            errors.append(seconds - preroll - lasted[device])
    worst = max(errors, key=abs) if errors else 0.0
    return Run("recorderd", fmt, channels, args.seconds, channels * wall / cpu if cpu else 0.0,
               cpu / wall, (rss - rss0) / channels, lost, len(files), worst,
               float(np.mean(errors)) if errors else 0.0)


# --- bare ------------------------------------------------------------------------------------

def bare_main(args: argparse.Namespace) -> int:
    """The bare side, in a process of its own: prints its Run as JSON."""
    audio, _ = soundfile.read(args.speech, dtype="int16")
    blocks = args.seconds_audio * RATE // BLOCK
    out = Path(args.out)
    rss0 = proc_rss_kib(os.getpid())
    cpu0 = time.process_time()
    if args.fmt == "mp3":
        def encoder() -> Any:
            # The recorder's defaults: 16 kbit/s a channel, quality 5, the input's rate.
            e = lameenc.Encoder()
            e.set_in_sample_rate(RATE)
            e.set_out_sample_rate(RATE)
            e.set_channels(1)
            e.set_bit_rate(16)
            e.set_quality(5)
            return e

        state = [encoder() for _ in range(args.channels)]
        files = [(out / f"{i}.mp3").open("wb") for i in range(args.channels)]
        for b in range(blocks):
            at = (b * BLOCK) % (len(audio) - BLOCK)
            piece = audio[at:at + BLOCK].tobytes()
            for f, e in zip(files, state, strict=True):
                f.write(e.encode(piece))
        for f, e in zip(files, state, strict=True):
            f.write(e.flush())
            f.close()
    elif args.fmt == "vox":
        sfs = [soundfile.SoundFile(out / f"{i}.vox", "w", RATE, 1, "VOX_ADPCM", format="RAW")
               for i in range(args.channels)]
        for b in range(blocks):
            at = (b * BLOCK) % (len(audio) - BLOCK)
            piece = audio[at:at + BLOCK]
            for sf in sfs:
                sf.write(piece)
        for sf in sfs:
            sf.close()
    else:
        files = [(out / f"{i}.wav").open("wb") for i in range(args.channels)]
        for f in files:
            f.write(b"\0" * 44)
        for b in range(blocks):
            at = (b * BLOCK) % (len(audio) - BLOCK)
            piece = audio[at:at + BLOCK].tobytes()
            for f in files:
                f.write(piece)
        for f in files:
            f.close()
    cpu = time.process_time() - cpu0
    rss = proc_rss_kib(os.getpid()) - rss0
    ring_kib = LOOKBACK_SECONDS * RATE * 2 / 1024
    seconds = blocks * BLOCK / RATE
    print(json.dumps(asdict(Run("bare", args.fmt, args.channels, seconds,
                                args.channels * seconds / cpu if cpu else 0.0, 1.0,
                                rss / args.channels + ring_kib))))
    return 0


def run_bare(args: argparse.Namespace, fmt: str, channels: int, speech: Path,
             work: Path) -> Run:
    work.mkdir(parents=True)
    cpu = str((os.cpu_count() or 1) - 1)
    done = subprocess.run(["taskset", "-c", cpu, sys.executable, str(Path(__file__).resolve()),
                           "--bare", "--fmt", fmt, "--channels", str(channels),
                           "--seconds-audio", str(int(max(args.seconds, 2))),
                           "--speech", str(speech), "--out", str(work)],
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the bare side failed:\n{done.stderr[-3000:]}")
    return Run(**json.loads(done.stdout.strip().splitlines()[-1]))


# --- report ----------------------------------------------------------------------------------

HEADER = (f"{'side':<9} {'fmt':<4} {'N':>5} {'ch-s/CPU-s':>10} {'ratio':>6} {'cores':>5} "
          f"{'KiB/ch':>7} {'lost':>7} {'files':>5} {'file-wall worst':>15} {'mean':>7}")


def bare_rate(run: Run, runs: list[Run]) -> float | None:
    same = [r.rate for r in runs if r.side == "bare" and r.fmt == run.fmt
            and r.channels == run.channels]
    return float(np.median(same)) if same else None


def report(run: Run, runs: list[Run]) -> None:
    bare = bare_rate(run, runs)
    ratio = f"{run.rate / bare:.2f}" if bare and run.side != "bare" else ""
    extra = (f"{run.lost_samples:>7,} {run.files:>5} {run.worst_duration_error:>+14.3f}s "
             f"{run.mean_duration_error:>+6.3f}s" if run.side == "recorderd" else "")
    print(f"{run.side:<9} {run.fmt:<4} {run.channels:>5} {run.rate:>10,.0f} {ratio:>6} "
          f"{run.cores:>5.2f} {run.rss_per_channel_kib:>7.0f} {extra}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", default="64,256,1024")
    parser.add_argument("--formats", default="wav,mp3,vox")
    parser.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--settle", type=float, default=LOOKBACK_SECONDS + 1,
                        help="seconds between recorderd's start and the first call (its ring "
                        "fills: the memory figure leaves it out)")
    parser.add_argument("--repeats", type=int, default=1, help="ABAB pairs of each case")
    parser.add_argument("--quick", action="store_true",
                        help="16 channels, 2 s, every format: a smoke run")
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    parser.add_argument("--keep", type=Path, help="keep the runs' files in this directory")
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--fmt", help=argparse.SUPPRESS)
    parser.add_argument("--seconds-audio", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--speech", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare:
        args.channels = int(args.channels)
        return bare_main(args)
    if args.quick:
        args.channels, args.formats, args.seconds, args.warmup = "16", "wav,mp3,vox", 2.0, 0.5
        args.settle = 1.0
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {args.seconds:g} s "
          f"window after {args.warmup:g} s; load average {os.getloadavg()[0]:.2f}")
    print(HEADER)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        speech = speech_wav(work / "speech.wav")
        for fmt in args.formats.split(","):
            for channels in (int(c) for c in args.channels.split(",")):
                for repeat in range(args.repeats):
                    for side, run_one in (("bare", run_bare), ("recorderd", run_recorderd)):
                        where = work / f"{side}-{fmt}-{channels}-{repeat}"
                        run = run_one(args, fmt, channels, speech, where)
                        runs.append(run)
                        report(run, runs)
                        if args.keep is None:
                            shutil.rmtree(where, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    for fmt, goal in GOALS.items():
        if goal is not None:
            print(f"goal: {fmt.upper()} whole pipeline >= {goal:g}x the bare library")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in runs], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
