"""The syncer: the thread that has open recordings put on the disk (storage.fsync_interval_seconds).

An fsync waits for the disk (milliseconds on an SSD, tens on a spinning disk, seconds on a
busy one). Done by the writer loop, under the session's lock, it held up the writing of every
other file behind it: at 1,024 WAV channels most of the loop's time was spent waiting in
fsync. Here the writer threads only write; this thread, every ``interval``, takes each open
session whose fsync is due, has it hand its file to the OS under its lock (its header or seal
up to date: ``RecordingSession.fsync_due``), and fsyncs a duplicate of its descriptor outside
the lock. ``os.fsync`` releases the GIL, so the writers go on meanwhile.

What a crash may cost is unchanged: a process crash (kill -9) loses only what had not reached
the OS, which the writers hand it at every half second of audio as before; a power cut loses
what was not fsynced, at most about the interval plus this thread's turn (``turn_interval``).
Closing a file fsyncs it on the closing thread, as before (the file's last state, once).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from recorder.recording.session import RecordingSession
from recorder.worker import PeriodicWorker

logger = logging.getLogger(__name__)

# The syncer looks for due files this many times an fsync interval: a file is fsynced at most
# a tenth of the interval late, and the look costs one lock per open session.
LOOKS_PER_INTERVAL = 10
LONGEST_TURN = 1.0
# Files fsynced at once: a disk takes concurrent fsyncs in fewer waits (64 files on this VM's
# virtio disk: 5.8-9.5 ms each one after the other, 1.3-4.3 ms each four at a time), and one
# at a time 1,024 files every 5 s took longer than the 5 s.
FSYNC_THREADS = 4


def turn_interval(fsync_interval: float) -> float:
    """How often the syncer looks for files due an fsync."""
    return min(LONGEST_TURN, max(0.01, fsync_interval / LOOKS_PER_INTERVAL))


class Syncer(PeriodicWorker):
    """fsyncs every open session of ``sessions()`` once its ``fsync_interval`` has passed."""

    def __init__(self, sessions: Callable[[], Iterable[RecordingSession]],
                 fsync_interval: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("syncer", turn_interval(fsync_interval))
        self._sessions = sessions
        self._clock = clock  # what the cadence is measured on (a benchmark moves it by hand)
        self.fsyncs = 0  # files fsynced here (not counting the fsync at each close)
        self._count_lock = threading.Lock()
        # The fsyncs of a turn run FSYNC_THREADS at a time once the thread is started (turned
        # by hand, one after the other).
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(FSYNC_THREADS, thread_name_prefix="syncer")
        super().start()

    def finish(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def turn(self) -> None:
        now = self._clock()
        due: list[tuple[RecordingSession, int]] = []
        for session in self._sessions():
            try:
                fd = session.fsync_due(now)
            except Exception:
                logger.exception("syncer: preparing %s failed", session.path)
                continue
            if fd is not None:
                due.append((session, fd))
        if self._pool is None or len(due) < 2:
            for item in due:
                self._fsync(item)
        else:
            for _ in self._pool.map(self._fsync, due):
                pass

    def _fsync(self, item: tuple[RecordingSession, int]) -> None:
        session, fd = item
        try:
            os.fsync(fd)
            with self._count_lock:
                self.fsyncs += 1
        except OSError as exc:
            session.fsync_failed(exc)
        finally:
            os.close(fd)
