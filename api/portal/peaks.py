"""A recording's waveform as peak levels: the audio the player plays reduced to ``BUCKETS``
peak levels per channel (0 to 1 of full scale), computed block by block (an hour's recording is
never in memory at once) and kept for the ``KEEP`` recordings asked for most recently, by file,
size and modification time (a file transcoded since is measured again)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from recorder.codecs.convert import iter_audio

BUCKETS = 1000  # peaks per channel: about one per pixel of the player's width
KEEP = 256  # recordings whose peaks are kept (a few KiB each)


class PeakCache:
    """Peaks by file, computed once; thread-safe (workers compute, any of them reads)."""

    def __init__(self, keep: int = KEEP, buckets: int = BUCKETS) -> None:
        self.keep = keep
        self.buckets = buckets
        self.computed = 0  # how many times peaks were computed (not found kept)
        self._lock = threading.Lock()
        self._kept: OrderedDict[tuple[str, int, int], dict[str, object]] = OrderedDict()

    def peaks(self, path: Path, fmt: str) -> dict[str, object]:
        """``{"duration": s, "channels": n, "peaks": [[0..1] * buckets] * n}``."""
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            found = self._kept.get(key)
            if found is not None:
                self._kept.move_to_end(key)
                return found
        made = measure(path, fmt, self.buckets)
        with self._lock:
            self.computed += 1
            self._kept[key] = made
            while len(self._kept) > self.keep:
                self._kept.popitem(last=False)
        return made


def measure(path: Path, fmt: str, buckets: int) -> dict[str, object]:
    """The peak level of each of ``buckets`` equal stretches of the file, per channel."""
    info, blocks = iter_audio(path, fmt)
    count = max(1, min(buckets, info.frames))
    peaks = np.zeros((count, info.channels))
    # Bucket i covers frames [edges[i], edges[i + 1]).
    edges = np.linspace(0, max(info.frames, 1), count + 1).astype(np.int64)
    at = 0
    for block in blocks:
        n = len(block)
        if not n:
            continue
        # The buckets this block touches, each reduced over its part of the block.
        first = int(np.searchsorted(edges, at, side="right")) - 1
        last = min(count - 1, int(np.searchsorted(edges, at + n - 1, side="right")) - 1)
        cuts = np.clip(edges[first:last + 1] - at, 0, n - 1)
        cuts[0] = 0
        level = np.abs(block.astype(np.int32))
        part = np.maximum.reduceat(level, cuts, axis=0)
        peaks[first:last + 1] = np.maximum(peaks[first:last + 1], part)
        at += n
    return {"duration": info.frames / info.sample_rate, "channels": info.channels,
            "peaks": [[round(float(v) / 32768, 3) for v in peaks[:, c]]
                      for c in range(info.channels)]}
