"""Writer-lag benchmark: how far the audio in a recording's file trails the audio captured for it.

    .venv/bin/python benchmarks/writerlag.py [--calls 4] [--seconds 5]

What a kill -9 costs a call is the audio captured for it that is not in its file yet: the
writer's buffering (it hands audio to the OS every half second of it, ``SYNC_SECONDS``), the
writer loop's interval (50 ms) and how late the machine runs that loop. The tests check the
buffering in samples (tests/test_disk_full.py); how late a loaded machine runs the loop is
this benchmark's to measure. It starts an in-process recorder on the demo board, starts
``--calls`` calls and, every 13 ms for ``--seconds``, compares each call's captured seconds
(/status's) with the seconds its WAV file holds, and reports the largest and the 99th
percentile lag. On an idle two-core machine the largest lag is about 0.5 s; the target is
under 0.65 s (half a second of buffering, one pump, one capture block).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from recorder.app import Recorder
from recorder.calls.requests import CallStart, DeviceQuery
from recorder.config.loader import config_from_dict

RATE = 8000
WAV_HEADER = 44
TARGET_SECONDS = 0.65


def measure(calls: int, seconds: float) -> list[float]:
    """The lags seen (seconds), over every call and every look."""
    with tempfile.TemporaryDirectory() as directory:
        devices = [str(1001 + i) for i in range(calls)]
        recorder = Recorder(config_from_dict({
            "storage": {"data_dir": str(Path(directory) / "data")},
            "api": {"socket_port": 0, "web_port": 0},
            "boards": [{"driver": "synthetic", "devices": devices}]}))
        recorder.start()
        try:
            scheduler = recorder.scheduler
            assert scheduler is not None
            for device in devices:
                scheduler.call_start(CallStart(device=DeviceQuery(device_id=device)))
            lags: list[float] = []
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                for live in scheduler.status.in_progress() or []:
                    on_disk = (Path(live.filename).stat().st_size - WAV_HEADER) / 2 / RATE
                    lags.append(live.seconds - on_disk)
                time.sleep(0.013)
            for device in devices:
                scheduler.call_stop(DeviceQuery(device_id=device), None)
            return lags
        finally:
            recorder.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    lags = measure(args.calls, args.seconds)
    largest, p99 = max(lags), float(np.percentile(lags, 99))
    print(f"{args.calls} calls, {args.seconds:g} s, {len(lags)} looks")
    print(f"largest lag {largest:.3f} s, p99 {p99:.3f} s (target under {TARGET_SECONDS} s): "
          f"{'met' if largest < TARGET_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
