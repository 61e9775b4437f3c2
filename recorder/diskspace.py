"""The free-space floor: new recordings are refused while the recordings' disk is nearly full.

The scheduler asks ``DiskGuard.ok()`` at every call start, so the answer is cached for about a
second: a burst of CALLSTARTs costs one ``statvfs``. Below the floor, recordings already in
progress go on (their calls were accepted; cutting them would lose audio the site expects to
have) and new ones are refused with API_ERROR_OUT_OF_DISK_SPACE by the caller. ``ok()`` never
deletes anything itself: it raises ``short_of_space``, which the retention job's thread watches
when the configuration allows it to make room (``retention.delete_oldest_when_full``).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from recorder.config import Config

logger = logging.getLogger(__name__)

MIB = 1 << 20  # the config's MB, as SYSTEMSTATUS counts them
CACHE_SECONDS = 1.0

Usage = Callable[[Path], int]


def free_space(path: Path) -> int:
    """Bytes the recorder may still write on the file system holding ``path`` (or, while it
    does not exist yet, its nearest existing parent). Raises OSError if it cannot be read."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    # disk_usage().free is f_bavail: what an unprivileged writer gets, as SYSTEMSTATUS reports.
    return shutil.disk_usage(probe).free


class DiskGuard:
    """Answers "is there room for a new recording?" against ``min_free_mb`` (0 = no floor)."""

    def __init__(self, recordings_dir: Path, min_free_mb: int, *, usage: Usage = free_space,
                 clock: Callable[[], float] = time.monotonic,
                 cache_seconds: float = CACHE_SECONDS) -> None:
        self.recordings_dir = recordings_dir
        self.floor_bytes = min_free_mb * MIB
        self._usage = usage
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._reading: tuple[float, int] | None = None  # (clock, free bytes)
        self._low = False
        self._unreadable = False
        # Set whenever ok() finds the disk below the floor; the retention job clears it.
        self.short_of_space = threading.Event()

    @classmethod
    def from_config(cls, config: Config) -> DiskGuard:
        return cls(config.storage.recordings_dir, config.retention.min_free_mb)

    def free_bytes(self, fresh: bool = False) -> int:
        """Free bytes for the recordings, read at most once a second unless ``fresh``.

        Raises OSError if the file system cannot be queried."""
        with self._lock:
            return self._free(fresh)

    def _free(self, fresh: bool) -> int:
        now = self._clock()
        if (not fresh and self._reading is not None
                and now - self._reading[0] < self._cache_seconds):
            return self._reading[1]
        free = self._usage(self.recordings_dir)
        self._reading = (now, free)
        return free

    def ok(self, fresh: bool = False) -> bool:
        """True if a new recording may start: no floor, or at least the floor is free."""
        if self.floor_bytes <= 0:
            return True
        with self._lock:
            try:
                free = self._free(fresh)
            except OSError:
                # Refusing every call because statvfs failed would lose more than it
                # protects: the writer still reports a really full disk (ENOSPC).
                if not self._unreadable:
                    self._unreadable = True
                    logger.exception("cannot read the free space on %s; recording anyway",
                                     self.recordings_dir)
                return True
            self._unreadable = False
            low = free < self.floor_bytes
            if low != self._low:
                self._low = low
                if low:
                    logger.warning("only %d MB free on %s, below retention.min_free_mb %d: "
                                   "new recordings are refused", free // MIB,
                                   self.recordings_dir, self.floor_bytes // MIB)
                else:
                    logger.warning("%d MB free on %s again: new recordings are accepted",
                                   free // MIB, self.recordings_dir)
        if low:
            self.short_of_space.set()
        return not low

    def explain(self) -> str:
        """Why new recordings are refused, for the decision's message (the last reading)."""
        reading = self._reading
        free = "unknown" if reading is None else f"{reading[1] // MIB} MB"
        return (f"free space on {self.recordings_dir} ({free}) is below retention.min_free_mb "
                f"({self.floor_bytes // MIB} MB)")
