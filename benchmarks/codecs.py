"""Codec benchmark: channel-seconds encoded per CPU-second on one core, per format.

    .venv/bin/python benchmarks/codecs.py [--seconds 20] [--file-minutes 20] [--repeat 3]

Three shapes of work, as the recorder has them:

- live 50 ms: N writers (one per channel) each fed 50 ms blocks of 8 kHz speech, as the writer
  loop pumps them, synced once a second, into files on disk; VOX writers are encoded together by
  one ``encode_pending`` call a second, just before the syncs. The loop handing out the blocks
  is counted too: at 20 calls per channel-second, Python's per-call cost is a large part of it.
- live 1 s: the same with one-second blocks, the cadence at which the writers encode anyway
  (they keep blocks until the sync): what the codecs themselves cost.
- file: one long 8 kHz WAV converted to each format by ``convert`` (after-call transcoding and
  export).

Each is set against the bare library on the same input: lameenc called directly (same blocks,
output dropped) for MP3, ``sox -D`` on the same file for VOX and G.711. The process is pinned
to one CPU and every figure is CPU time (``time.process_time`` for us, ``getrusage`` of the
child for sox). Each figure is the best of ``--repeat`` runs, ours and the reference taken in
turn, because CPU time still inflates when other processes share the caches. The speech is
espeak-ng's, resampled by sox, with faint noise; each channel starts at a different place in it.
Channel-seconds per CPU-second is the number of real-time channels one core carries.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lameenc
import numpy as np
import numpy.typing as npt
import soundfile

from recorder.codecs.convert import convert
from recorder.codecs.formats import AudioWriter, open_writer
from recorder.codecs.mp3 import DEFAULT_KBPS_PER_CHANNEL, DEFAULT_QUALITY
from recorder.codecs.voxwriter import VoxWriter, encode_pending

RATE = 8000
PUMP = 400  # 50 ms, the writer loop's pump interval
TEXT = ("Thank you for calling. Your call may be recorded for quality and training purposes. "
        "Please hold the line while we connect you to the next available agent.")
# ch-s per CPU-s wanted of live writers (VOX: concurrent channels; G.711/PCM: codec throughput,
# so judged on the one-second shape and the file shape, whose costs are the codecs' own).
TARGETS = {"wav": 20000.0, "wav-ulaw": 20000.0, "wav-alaw": 20000.0, "vox": 3000.0}
MP3_RATIO_TARGET = 0.9
LIVE_CHANNELS = {"wav": 2000, "wav-ulaw": 2000, "wav-alaw": 2000, "vox": 3000, "mp3": 100}


@dataclass
class Row:
    shape: str
    fmt: str
    channels: int
    audio_seconds: float
    cpu_seconds: float
    reference: str = ""
    reference_rate: float = 0.0

    @property
    def rate(self) -> float:
        return self.audio_seconds / self.cpu_seconds

    @property
    def ratio(self) -> float:
        return self.rate / self.reference_rate if self.reference_rate else 0.0

    def verdict(self) -> str:
        if self.fmt == "mp3":
            ok = self.ratio >= MP3_RATIO_TARGET
            return f"ratio >= {MP3_RATIO_TARGET}: " + ("ok" if ok else "MISSED")
        if self.fmt == "vox" and self.shape.startswith("live"):
            goal = TARGETS["vox"]
        elif self.fmt != "vox" and self.shape != "live 50 ms":
            goal = TARGETS[self.fmt]
        else:
            return ""
        return f">= {goal:,.0f}: " + ("ok" if self.rate >= goal else "MISSED")


def speech(directory: Path) -> npt.NDArray[np.int16]:
    raw, resampled = directory / "espeak.wav", directory / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), TEXT], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-b", "16", "-c", "1", str(resampled)],
                   check=True, timeout=60)
    samples, _ = soundfile.read(resampled, dtype="int16")
    noise = np.random.default_rng(1).normal(0, 30, len(samples))
    return np.clip(samples * 0.5 + noise, -32768, 32767).astype(np.int16)


def block_pool(samples: npt.NDArray[np.int16], block: int) -> npt.NDArray[np.int16]:
    """Distinct blocks to replay: ``pool[k]`` is the k-th ``block`` samples of ``samples``."""
    reps = -(-block * 50 // len(samples)) + 1  # at least 50 blocks, so channels differ
    long = np.tile(samples, reps)
    usable = len(long) // block * block
    return long[:usable].reshape(-1, block).copy()


def cpu_of(work: Callable[[], None]) -> float:
    start = time.process_time()
    work()
    return time.process_time() - start


def child_cpu_of(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, timeout=600, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def live_cpu(fmt: str, pool: npt.NDArray[np.int16], channels: int, steps: int,
             directory: Path) -> float:
    """``channels`` writers fed in step, a block at a time, synced once a second."""
    block = pool.shape[1]
    sync_every = max(1, RATE // block)
    writers: list[AudioWriter] = [
        open_writer(fmt, (directory / f"{fmt}-{i}").open("wb"), RATE) for i in range(channels)]
    vox_writers = [w for w in writers if isinstance(w, VoxWriter)]
    offsets = [(37 * i) % len(pool) for i in range(channels)]

    def work() -> None:
        for step in range(steps):
            for writer, offset in zip(writers, offsets, strict=True):
                writer.write(pool[(step + offset) % len(pool)])
            if step % sync_every == sync_every - 1:
                # VOX writers buffer until then: one vectorised pass a second for all of them.
                encode_pending(vox_writers)
                for writer in writers:
                    writer.sync()
        for writer in writers:
            writer.close()

    cpu = cpu_of(work)
    for path in directory.iterdir():
        path.unlink()
    return cpu


def bare_lameenc_cpu(pool: npt.NDArray[np.int16], channels: int, steps: int) -> float:
    encoders = []
    for _ in range(channels):
        encoder = lameenc.Encoder()
        encoder.set_in_sample_rate(RATE)
        encoder.set_out_sample_rate(RATE)
        encoder.set_channels(1)
        encoder.set_bit_rate(DEFAULT_KBPS_PER_CHANNEL)
        encoder.set_quality(DEFAULT_QUALITY)
        encoder.silence()
        encoders.append(encoder)
    offsets = [(37 * i) % len(pool) for i in range(channels)]

    def work() -> None:
        for step in range(steps):
            for encoder, offset in zip(encoders, offsets, strict=True):
                encoder.encode(pool[(step + offset) % len(pool)].tobytes())
        for encoder in encoders:
            encoder.flush()

    return cpu_of(work)


SOX_ARGS = {"vox": ["-t", "vox"], "wav-ulaw": ["-e", "u-law", "-t", "wav"],
            "wav-alaw": ["-e", "a-law", "-t", "wav"], "wav": ["-t", "wav"]}


def best(runs: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(runs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="audio per channel in the live runs (20)")
    parser.add_argument("--file-minutes", type=float, default=20.0,
                        help="length of the file converted in the file runs (20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept (3)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, one run")
    args = parser.parse_args(argv)
    for tool in ("sox", "espeak-ng"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is needed (apt-get install {tool})")
    scale, runs = (0.1, 1) if args.quick else (1.0, max(1, args.repeat))
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="codec-bench-") as tmp:
        directory = Path(tmp)
        samples = speech(directory)
        work_dir = directory / "live"
        work_dir.mkdir()

        # The long file first: sox's VOX figure is the reference for the live VOX rows too.
        frames = int(args.file_minutes * 60 * RATE * scale)
        long_call = np.resize(samples, frames)
        source = directory / "long.wav"
        soundfile.write(source, long_call, RATE, subtype="PCM_16")
        file_rows: list[Row] = []
        for fmt in ("wav", "wav-ulaw", "wav-alaw", "vox", "mp3"):
            out = directory / f"converted.{fmt}"
            cpu = best(runs, lambda fmt=fmt, out=out: cpu_of(
                lambda: convert(source, out.open("wb"), fmt)))
            row = Row("file", fmt, 1, frames / RATE, cpu)
            if fmt == "mp3":
                whole = long_call.reshape(1, -1)
                row.reference = "lameenc"
                row.reference_rate = frames / RATE / best(
                    runs, lambda whole=whole: bare_lameenc_cpu(whole, 1, 1))
            else:
                sox_out = directory / "sox.out"
                row.reference = "sox -D"
                row.reference_rate = frames / RATE / best(
                    runs, lambda fmt=fmt, sox_out=sox_out: child_cpu_of(
                        ["sox", "-D", str(source), *SOX_ARGS[fmt], str(sox_out)]))
            file_rows.append(row)
        sox_vox = next(r.reference_rate for r in file_rows if r.fmt == "vox")

        for shape, block in (("live 50 ms", PUMP), ("live 1 s", RATE)):
            pool = block_pool(samples, block)
            steps = max(1, int(args.seconds * scale * RATE / block))
            for fmt, width in LIVE_CHANNELS.items():
                channels = max(1, int(width * scale))
                audio = channels * steps * block / RATE
                cpu = best(runs, lambda fmt=fmt, channels=channels, pool=pool, steps=steps:
                           live_cpu(fmt, pool, channels, steps, work_dir))
                row = Row(shape, fmt, channels, audio, cpu)
                if fmt == "mp3":
                    row.reference = "lameenc, same blocks"
                    row.reference_rate = audio / best(
                        runs, lambda channels=channels, pool=pool, steps=steps:
                        bare_lameenc_cpu(pool, channels, steps))
                elif fmt == "vox":
                    row.reference, row.reference_rate = "sox -D (file)", sox_vox
                rows.append(row)
        rows.extend(file_rows)

    print(f"{'shape':10} {'format':9} {'channels':>8} {'audio s':>9} {'CPU s':>7} "
          f"{'ch-s/CPU-s':>11}  {'bare library':20} {'ch-s/CPU-s':>11} {'ratio':>6}  target")
    for row in rows:
        reference = (f"{row.reference:20} {row.reference_rate:11,.0f} {row.ratio:6.2f}"
                     if row.reference else f"{'':20} {'':>11} {'':>6}")
        print(f"{row.shape:10} {row.fmt:9} {row.channels:8d} {row.audio_seconds:9,.0f} "
              f"{row.cpu_seconds:7.2f} {row.rate:11,.0f}  {reference}  {row.verdict()}")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
