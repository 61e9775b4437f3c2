"""The writer loop alone: its CPU per recording, and a digest of the files it wrote.

    .venv/bin/python benchmarks/writer.py [--sessions 250] [--seconds 20] [--mono] [--profile]
                                          [--encrypt | --compare]

What ``benchmarks/siprec.py`` found to be most of a silent SIPREC session's cost, measured
without the network: one board of 2N channels (a SIPREC board's layout: a call's two parties
on channels 2n and 2n+1), N recordings of two channels each (stereo WAV, or mono with
``--mono``) opened as ``RecordingFiles`` opens them, and the real ``WriterLoop`` turned by
hand on a simulated clock: before each turn the ring gets the turn's interval of audio in
20 ms blocks (what the media thread writes), then one ``turn()``. Only the turns are timed
(``process_time``, after a second of warm-up), so the figure is the writer thread's CPU per
second of audio and moves less with the machine's load than a whole recorderd does. The
fsync cadence (``--fsync``, storage.fsync_interval_seconds, 5 s by default: the syncer's
thread in the service, turned here after each turn and timed with it) runs on the same
simulated clock, so a 20 s run makes as many fsyncs as 20 s of service.

The audio is a fixed pseudo-random pattern (``--silent``: zeros, as a session without RTP
writes), every 10th call has a blackout, and every 7th channel reports a loss, so the
blackout and loss paths run too. The digest (SHA-256 of every file, and every session's lost
count) must not change with an optimisation, nor with ``--period``: the same bytes in the
same files. ``--encrypt`` writes every file as storage.encrypt does (AES-256-GCM chunks,
docs/encryption.md) and digests what the files decrypt to: the same digest as without it.
``--compare`` runs both in one process, turn for turn, and prints the ratio of their CPU
(one digest: the two agree).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np

from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.codecs.formats import open_writer
from recorder.crypt.access import open_plain
from recorder.crypt.keys import MasterKey
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.drivers.synthetic import SyntheticDriver
from recorder.recording.blackouts import Blackouts
from recorder.recording.completion import Completion
from recorder.recording.files import encrypted_file
from recorder.recording.session import RecordingSession
from recorder.recording.writer import PUMP_PERIOD, WriterLoop

RATE = 8000
BLOCK = 160  # 20 ms, what the media thread writes at a time
POOL = 50  # distinct blocks replayed
LOOKBACK = 2.0  # benchmarks/siprec.py's
WARMUP_SECONDS = 1.0


class SimClock:
    """A monotonic clock the benchmark moves by hand."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def make_core(channels: int) -> CaptureCore:
    devices = tuple(str(100000 + i) for i in range(channels))
    driver = create_driver("bench", SyntheticBoardConfig(devices=devices, channels=channels,
                                                         realtime=False))
    assert isinstance(driver, SyntheticDriver)
    return CaptureCore([CaptureBoard(driver, devices, LOOKBACK)])


def block_pool(channels: int, silent: bool) -> list[np.ndarray]:
    if silent:
        return [np.zeros((BLOCK, channels), dtype=np.int16)]
    rng = np.random.default_rng(22)
    return [rng.integers(-12000, 12000, size=(BLOCK, channels), dtype=np.int16)
            for _ in range(POOL)]


def open_sessions(core: CaptureCore, loop: WriterLoop, directory: Path,
                  stereo: bool, master: MasterKey | None = None) -> list[RecordingSession]:
    channels = core.channels
    sessions = []
    for n in range(len(channels) // 2):
        pair = (channels[2 * n], channels[2 * n + 1])
        path = directory / f"{pair[0].device_id}.wav"
        file: BinaryIO = path.open("xb")
        if master is not None:  # as RecordingFiles opens it with storage.encrypt
            file = encrypted_file(path, file, master, fmt="wav", rate=RATE,
                                  sides=2 if stereo else 1, options={})
        writer = open_writer("wav", file, RATE, 2 if stereo else 1)
        blackouts = Blackouts()
        if n % 10 == 0:
            # Blacked out from 3 s to 4.5 s into the run: zeroed on its way to the file.
            blackouts.start(pair[0].position + 3 * RATE)
            blackouts.stop(pair[0].position + 9 * RATE // 2)
        session = RecordingSession(pair, writer, path, pair[0].position, blackouts=blackouts,
                                   written=loop.bytes_written)
        loop.add(session)
        sessions.append(session)
    return sessions


def feed(core: CaptureCore, pool: list[np.ndarray], frames: int, fed: int) -> int:
    """Write ``frames`` more of audio in 20 ms blocks; the number of blocks fed so far."""
    board = core.boards[0]
    for _ in range(frames // BLOCK):
        board.audio(pool[fed % len(pool)])
        fed += 1
        if fed % 97 == 0:
            # Some parties lost a packet: the channel losses a recording counts.
            start = board.ring.write_pos - BLOCK
            board.channel_lost([(c, start, 80) for c in range(0, board.driver.channels, 7)])
    return fed


class Bench:
    """One benchmark's board, writer loop and recordings, turned by hand on its own clock."""

    def __init__(self, args: argparse.Namespace, directory: Path, encrypt: bool) -> None:
        self.core = make_core(2 * args.sessions)
        self.pool = block_pool(2 * args.sessions, args.silent)
        self.clock = SimClock()
        self.loop = WriterLoop(Completion(None), fsync_interval=args.fsync,  # type: ignore[arg-type]
                               period=args.period, clock=self.clock)
        self.fed = feed(self.core, self.pool, RATE // 2, 0)
        self.master = MasterKey(os.urandom(32)) if encrypt else None
        self.sessions = open_sessions(self.core, self.loop, directory, not args.mono,
                                      self.master)
        self.step = round(self.loop.interval * RATE)
        self.cpu = 0.0

    def turn(self, timed: bool, profile: cProfile.Profile | None = None) -> None:
        """Feed a turn's audio, then one timed turn of the writer loop."""
        self.fed = feed(self.core, self.pool, self.step, self.fed)
        self.clock.now += self.step / RATE
        began = time.process_time()
        if profile is not None and timed:
            profile.runcall(self.loop.turn)
        else:
            self.loop.turn()
        if self.loop.syncer is not None:
            # The syncer's thread in the service; its CPU (not its wait for the disk) counted.
            if profile is not None and timed:
                profile.runcall(self.loop.syncer.turn)
            else:
                self.loop.syncer.turn()
        if timed:
            self.cpu += time.process_time() - began

    def digest(self) -> str:
        """Close every recording; the digest of what the files hold (decrypted)."""
        end = self.core.channels[0].position
        digest = hashlib.sha256()
        for session in self.sessions:
            result = session.finish(end)
            digest.update(f"{result.frames} {result.lost_samples}\n".encode())
            if self.master is None:
                digest.update(session.path.read_bytes())
            else:
                with open_plain(session.path, [self.master]) as plain:
                    digest.update(plain.read())
        return digest.hexdigest()[:16]


def run(args: argparse.Namespace, directory: Path) -> tuple[float, float, str]:
    """(CPU seconds of the turns, seconds of audio they wrote, digest)."""
    bench = Bench(args, directory, args.encrypt)
    turns = round(args.seconds * RATE / bench.step)
    warmup = round(WARMUP_SECONDS * RATE / bench.step)
    # CPU time, as the figure: a wall-clock profile would be mostly the fsyncs' I/O wait.
    profile = cProfile.Profile(time.process_time) if args.profile else None
    for turn in range(warmup + turns):
        bench.turn(turn >= warmup, profile)
    digest = bench.digest()
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    return bench.cpu, turns * bench.step / RATE, digest


def compare(args: argparse.Namespace, directory: Path) -> tuple[float, float, float, str]:
    """``--compare``: the same recordings written plain and encrypted by two writer loops in
    this process, their turns interleaved (which one goes first alternates), so both meet the
    same machine from one 50 ms to the next. (plain CPU s, encrypted CPU s, audio s, digest
    of both, which must agree)."""
    (directory / "plain").mkdir()
    (directory / "encrypted").mkdir()
    plain = Bench(args, directory / "plain", encrypt=False)
    sealed = Bench(args, directory / "encrypted", encrypt=True)
    turns = round(args.seconds * RATE / plain.step)
    warmup = round(WARMUP_SECONDS * RATE / plain.step)
    for turn in range(warmup + turns):
        for bench in (plain, sealed) if turn % 2 else (sealed, plain):
            bench.turn(turn >= warmup)
    digests = {plain.digest(), sealed.digest()}
    return plain.cpu, sealed.cpu, turns * plain.step / RATE, "/".join(sorted(digests))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=250, help="recordings (2 channels each)")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio timed, per session")
    parser.add_argument("--fsync", type=float, default=5.0, help="fsync interval (0: none)")
    parser.add_argument("--period", type=float, default=PUMP_PERIOD,
                        help="seconds between pumps of a recording (0.05: every turn)")
    parser.add_argument("--mono", action="store_true", help="mix each call into mono")
    parser.add_argument("--silent", action="store_true", help="zeros, as sessions without RTP")
    parser.add_argument("--encrypt", action="store_true",
                        help="write the files encrypted (storage.encrypt)")
    parser.add_argument("--compare", action="store_true",
                        help="plain and encrypted in one process, turns interleaved")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--profile", action="store_true", help="cProfile the timed turns")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.sessions + 256)),
                                                hard))
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}; {args.sessions} "
          f"{'mono' if args.mono else 'stereo'} WAV recordings of 2 channels, "
          f"{'silence' if args.silent else 'noise'}"
          f"{', encrypted' if args.encrypt else ''}, fsync every {args.fsync:g} s, each "
          f"pumped every {args.period:g} s, "
          f"{args.seconds:g} s of audio timed")
    for _ in range(args.runs):
        if args.compare:
            with tempfile.TemporaryDirectory(prefix="writer-bench-") as tmp:
                plain, sealed, seconds, digest = compare(args, Path(tmp))
            print(f"plain {1e6 * plain / seconds / args.sessions:.1f} µs, encrypted "
                  f"{1e6 * sealed / seconds / args.sessions:.1f} µs CPU per recording per "
                  f"second: {sealed / plain:.3f}x; digest {digest}")
            continue
        with tempfile.TemporaryDirectory(prefix="writer-bench-") as tmp:
            cpu, seconds, digest = run(args, Path(tmp))
        share = cpu / seconds
        print(f"writer loop: {100 * share:.1f} % of a core for {args.sessions} recordings "
              f"({2 * args.sessions} streams), {1e6 * cpu / seconds / args.sessions:.1f} µs "
              f"CPU per recording per second; {args.sessions / share:,.0f} recordings per "
              f"core; digest {digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
