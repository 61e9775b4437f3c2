"""Capture-core benchmark: how many 8 kHz channels one core can capture, and capture and write.

    .venv/bin/python benchmarks/capture.py [--channels 5000] [--writers 2000] [--seconds 20]

Runs the demo board (``synthetic``, ``realtime = false``) through the capture core: every 20 ms
block is written into the board's ring and the level meter measures it (peak, RMS, silence,
speech/silence runs), as the driver thread and the monitor thread do in the service. Then the
same with a recording session per channel, each pumped every 50 ms into its own PCM WAV file on
disk, as the writer loop does. The process is pinned to one CPU and the figures are CPU time of
this process (time.process_time), so other load on the machine changes them little.

Generating the synthetic speech is not part of the capture core and costs far more than
capturing it, so a pool of distinct blocks is generated first and replayed (rotated per pass so
no two consecutive blocks are the same); its own rate is printed for reference.

Prints channel-seconds per CPU-second (= concurrent real-time channels one core can carry) and
the resident memory per channel at the default 10 s look-back.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recorder.capture.core import CaptureBoard, CaptureCore, Channel
from recorder.codecs.formats import open_writer
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.drivers.synthetic import SyntheticDriver
from recorder.recording.session import RecordingSession

RATE = 8000
BLOCK = 160  # 20 ms
POOL = 50  # distinct blocks replayed
PUMP_EVERY = 3  # blocks between writer pumps (~50 ms, the writer loop's interval)
LOOKBACK = 10.0
TARGET_CAPTURE = 5000
TARGET_WRITING = 2000
TARGET_KIB_PER_CHANNEL = 200


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def make_driver(channels: int) -> SyntheticDriver:
    devices = tuple(str(100000 + i) for i in range(channels))
    driver = create_driver("bench", SyntheticBoardConfig(devices=devices, channels=channels,
                                                         realtime=False))
    assert isinstance(driver, SyntheticDriver)
    return driver


def make_core(driver: SyntheticDriver) -> CaptureCore:
    devices = tuple(str(100000 + i) for i in range(driver.channels))
    return CaptureCore([CaptureBoard(driver, devices, LOOKBACK)])


def block_pool(driver: SyntheticDriver) -> tuple[list[np.ndarray], float]:
    began = time.process_time()
    pool = [driver.next_block(BLOCK) for _ in range(POOL)]
    generated = driver.channels * POOL * BLOCK / RATE
    return pool, generated / (time.process_time() - began)


def run_capture(core: CaptureCore, pool: list[np.ndarray], seconds: float,
                sessions: list[RecordingSession] | None = None) -> float:
    """Feed ``seconds`` of audio; returns the CPU seconds it took."""
    board = core.boards[0]
    blocks = round(seconds * RATE / BLOCK)
    began = time.process_time()
    for n in range(blocks):
        board.audio(pool[n % POOL])  # the driver thread's work
        board.measure()  # the monitor thread's work (it runs every 20 ms)
        if sessions is not None and n % PUMP_EVERY == PUMP_EVERY - 1:
            for session in sessions:  # the writer loop's work
                session.pump()
    return time.process_time() - began


def open_sessions(channels: list[Channel], directory: Path) -> list[RecordingSession]:
    sessions = []
    for channel in channels:
        path = directory / f"{channel.device_id}.wav"
        writer = open_writer("wav", path.open("xb"), RATE)
        sessions.append(RecordingSession(channel, writer, path, channel.position))
    return sessions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=TARGET_CAPTURE)
    parser.add_argument("--writers", type=int, default=TARGET_WRITING)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.writers + 256)), hard))
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, one CPU, "
          f"{args.seconds:g} s of 8 kHz audio per channel, 20 ms blocks")

    # 1. Capture core only.
    driver = make_driver(args.channels)
    pool, gen_rate = block_pool(driver)
    before = rss_kib()
    core = make_core(driver)
    run_capture(core, pool, LOOKBACK + 1)  # fill the look-back: every ring page is touched
    per_channel_kib = (rss_kib() - before) / args.channels
    cpu = run_capture(core, pool, args.seconds)
    capture_rate = args.channels * args.seconds / cpu
    print(f"capture core, {args.channels} channels: {capture_rate:,.0f} channel-s per CPU-s "
          f"(target >= {TARGET_CAPTURE:,}) {'OK' if capture_rate >= TARGET_CAPTURE else 'MISS'}")
    print(f"memory: {per_channel_kib:,.0f} KiB resident per channel at {LOOKBACK:g} s look-back "
          f"(target <= {TARGET_KIB_PER_CHANNEL})"
          f" {'OK' if per_channel_kib <= TARGET_KIB_PER_CHANNEL else 'MISS'}")
    print(f"(for reference: generating the synthetic speech runs at {gen_rate:,.0f} "
          "channel-s per CPU-s; not part of the capture core)")
    del core, pool

    # 2. Capture plus one WAV recording per channel.
    driver = make_driver(args.writers)
    pool, _ = block_pool(driver)
    core = make_core(driver)
    run_capture(core, pool, 1.0)
    with tempfile.TemporaryDirectory(prefix="capture-bench-") as tmp:
        sessions = open_sessions(core.channels, Path(tmp))
        cpu = run_capture(core, pool, args.seconds, sessions)
        for session in sessions:
            session.finish(session.channel.position)
        written = sum(s.path.stat().st_size for s in sessions)
    writing_rate = args.writers * args.seconds / cpu
    print(f"capture + WAV writing, {args.writers} recordings: {writing_rate:,.0f} channel-s "
          f"per CPU-s (target >= {TARGET_WRITING:,}) "
          f"{'OK' if writing_rate >= TARGET_WRITING else 'MISS'}; {written / 2**20:,.0f} MiB "
          "written")
    ok = (capture_rate >= TARGET_CAPTURE and writing_rate >= TARGET_WRITING
          and per_channel_kib <= TARGET_KIB_PER_CHANNEL)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
