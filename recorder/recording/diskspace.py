"""The free-space floor: new recordings are refused while the recordings' disk is nearly full.

The scheduler asks ``DiskGuard.ok()`` at every call start, so the answer is cached for about a
second: a burst of CALLSTARTs costs one ``statvfs``. Below the floor, recordings already in
progress go on (their calls were accepted; cutting them would lose audio the site expects to
have) and new ones are refused with API_ERROR_OUT_OF_DISK_SPACE by the caller. ``ok()`` never
deletes anything itself: it raises ``short_of_space``, which the retention job's thread watches
when the configuration allows it to make room (``retention.delete_oldest_when_full``).

The disk can also fill up for real (the floor is 0, or something else filled it): a write then
fails with ENOSPC, the recording is cut short (``truncated``) and the scheduler tells the guard
(``disk_full``). From then on new recordings are refused until the free space is back above
the resume threshold: the floor, and at least ``resume_seconds`` (storage.
disk_full_resume_seconds, 120 by default) of what the recordings the full disk cut write, so
recording does not resume into a disk that fills again a moment later (hysteresis). That second
part is capped at half the volume (``RESUME_SHARE``): six calls cut on an 8 MiB volume would
otherwise wait for 11.5 MB, more than the volume holds, and never resume (``resume_threshold``).
The scheduler asks ``ok()`` every second meanwhile, so the state ends by itself once there is
room.
"""

from __future__ import annotations

import logging
import math
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from recorder.config.model import Config

logger = logging.getLogger(__name__)

MIB = 1 << 20  # the config's MB, as SYSTEMSTATUS counts them
CACHE_SECONDS = 1.0
DEFAULT_RESUME_SECONDS = 120.0  # two minutes of the cut recordings' writing
# The most of its volume the cut recordings' share of the resume threshold may ask to be free.
RESUME_SHARE = 0.5

Usage = Callable[[Path], int]


def _existing(path: Path) -> Path:
    """``path``, or while it does not exist yet, its nearest existing parent."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def free_space(path: Path) -> int:
    """Bytes the recorder may still write on the file system holding ``path`` (or, while it
    does not exist yet, its nearest existing parent). Raises OSError if it cannot be read."""
    # disk_usage().free is f_bavail: what an unprivileged writer gets, as SYSTEMSTATUS reports.
    return shutil.disk_usage(_existing(path)).free


def volume_size(path: Path) -> int:
    """Bytes the file system holding ``path`` has in all. Raises OSError if it cannot be read."""
    return shutil.disk_usage(_existing(path)).total


def resume_threshold(floor_bytes: int, resume_seconds: float, rates: Iterable[float],
                     volume_bytes: int | None) -> int:
    """Free bytes a disk that filled up must have again before new recordings start.

    The floor (retention.min_free_mb), and at least ``resume_seconds`` of what the recordings
    the full disk cut write (``rates``, bytes a second each); that part at most
    ``RESUME_SHARE`` of the volume (``volume_bytes``; None: unknown, no cap), or many calls cut
    on a small volume would wait for more than it holds. The floor is the site's own rule and
    is never capped. At least 1 byte.
    """
    need = math.ceil(resume_seconds * sum(rates))
    if volume_bytes:
        need = min(need, math.floor(volume_bytes * RESUME_SHARE))
    return max(floor_bytes, need, 1)


class DiskGuard:
    """Answers "is there room for a new recording?" against ``min_free_mb`` (0 = no floor)."""

    def __init__(self, recordings_dir: Path, min_free_mb: int, *, usage: Usage = free_space,
                 clock: Callable[[], float] = time.monotonic,
                 cache_seconds: float = CACHE_SECONDS,
                 resume_seconds: float = DEFAULT_RESUME_SECONDS,
                 size: Usage = volume_size) -> None:
        self.recordings_dir = recordings_dir
        self.floor_bytes = min_free_mb * MIB
        self.resume_seconds = resume_seconds
        # While the disk is full (a write failed with ENOSPC): the files it cut, with the bytes
        # a second each took, until there is room again. Empty otherwise.
        self._cut: dict[Path, float] = {}
        self.truncated = 0  # recordings cut short by a full disk since start
        # The volume's size caps the resume threshold; read when a disk fills (None: unknown).
        self._size = size
        self._volume: int | None = None
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
        return cls(config.storage.recordings_dir, config.retention.min_free_mb,
                   resume_seconds=config.storage.disk_full_resume_seconds)

    @property
    def full(self) -> bool:
        """A write failed for lack of space and there has not been room again since."""
        return bool(self._cut)

    @property
    def resume_bytes(self) -> int:
        """Free bytes needed before new recordings are accepted again after a full disk."""
        with self._lock:
            return self._resume_bytes()

    def _resume_bytes(self) -> int:
        return resume_threshold(self.floor_bytes, self.resume_seconds, self._cut.values(),
                                self._volume)

    def disk_full(self, path: Path, bytes_per_second: float) -> None:
        """A write to ``path`` failed for lack of space: refuse new recordings until the
        resume threshold is free (``bytes_per_second``: what that recording writes)."""
        with self._lock:
            first = not self._cut
            if first:
                try:
                    self._volume = self._size(self.recordings_dir)
                except OSError:
                    self._volume = None  # no cap: the threshold as configured
            if path not in self._cut:
                self.truncated += 1
            self._cut[path] = max(0.0, bytes_per_second)
            self._reading = None  # the last reading predates the failure
            need = self._resume_bytes()
        if first:
            logger.warning("the disk holding %s is full: recordings in progress are cut short "
                           "(truncated) and new ones refused until %s are free",
                           self.recordings_dir, _size(need))
        self.short_of_space.set()

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
        """True if a new recording may start: no floor, or at least the floor is free, and
        after a full disk at least the resume threshold."""
        if self.floor_bytes <= 0 and not self._cut:
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
                self._cut.clear()
                return True
            self._unreadable = False
            if self._cut:
                need = self._resume_bytes()
                if free < need:
                    self.short_of_space.set()
                    return False
                self._cut.clear()
                logger.info("%s free on %s again (resume threshold %s): recording resumes",
                            _size(free), self.recordings_dir, _size(need))
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
        if self._cut:
            return (f"the disk holding {self.recordings_dir} filled up; new recordings wait "
                    f"until {_size(self.resume_bytes)} are free (free: {free})")
        return (f"free space on {self.recordings_dir} ({free}) is below retention.min_free_mb "
                f"({self.floor_bytes // MIB} MB)")

    # --- room for other work on the recordings' disk (exports, after-call encoding) --------
    #
    # Work beside the recordings writes files on their disk too; it must never take the room
    # the recordings need. It claims its bytes before it writes (``claim``) and gives them
    # back once written or abandoned (``release``): what is written is then in the free space
    # itself. Only new methods here, so the floor's and the resume threshold's own rules stay
    # where they are above.

    # What every recording in progress writes a second, all together (count_live); None: 0.
    _live_rate: Callable[[], float] | None = None
    # Bytes claimed by work still writing them (not yet in the free space).
    _claimed: int = 0

    def count_live(self, rate: Callable[[], float]) -> None:
        """Learn where to read what the recordings in progress write a second (the writer
        loop's sum): the room kept for them grows with them."""
        self._live_rate = rate

    def live_room_bytes(self) -> int:
        """The room the recordings in progress are kept: ``resume_seconds`` of what they write
        now, counted as the resume threshold counts the recordings a full disk cut."""
        rate = self._live_rate() if self._live_rate is not None else 0.0
        room = math.ceil(self.resume_seconds * max(0.0, rate))
        # Capped as the resume threshold is: many calls on a small volume would otherwise keep
        # more than it holds, and every export would be refused however empty the disk.
        volume = self._volume_bytes()
        return min(room, math.floor(volume * RESUME_SHARE)) if volume else room

    def _volume_bytes(self) -> int | None:
        """The volume's size (read once; None while it cannot be read)."""
        if self._volume is None:
            try:
                self._volume = self._size(self.recordings_dir)
            except OSError:
                return None
        return self._volume

    def kept_free_bytes(self) -> int:
        """Free space that work beside the recordings must leave: the floor plus the live
        recordings' room; after a full disk, at least the resume threshold."""
        kept = self.floor_bytes + self.live_room_bytes()
        return max(kept, self.resume_bytes) if self.full else kept

    def claim(self, nbytes: int, what: str) -> str | None:
        """Claim ``nbytes`` of the recordings' disk for ``what`` (an export, an encoding):
        None if they fit beside the room kept for the recordings (``kept_free_bytes``) and
        what others claimed before, and are now claimed; else why not, in words. Give them
        back with ``release`` once written (or abandoned)."""
        kept = self.kept_free_bytes()  # outside the lock: it asks the writer loop
        with self._lock:
            try:
                free = self._free(True)
            except OSError as exc:
                return (f"the free space on {self.recordings_dir} cannot be read "
                        f"({exc.strerror or exc}), so {what} might take the recordings' room")
            available = free - self._claimed  # what others claimed is theirs already
            if available - nbytes < kept:
                return (f"{what} needs about {_size(nbytes)}; the recordings' disk has "
                        f"{_size(max(0, available))} free, of which {_size(kept)} are kept "
                        f"for the recordings ({self._kept_for()})")
            self._claimed += nbytes
        return None

    def release(self, nbytes: int) -> None:
        """Give back bytes ``claim`` granted."""
        with self._lock:
            self._claimed = max(0, self._claimed - nbytes)

    @property
    def claimed_bytes(self) -> int:
        """Bytes claimed by work that is still writing them."""
        with self._lock:
            return self._claimed

    def _kept_for(self) -> str:
        """What the kept room is made of, for the refusals' messages."""
        parts = [f"retention.min_free_mb {self.floor_bytes // MIB}"]
        if self._live_rate is not None:
            parts.append(f"{self.resume_seconds:.0f} s of the recordings in progress")
        if self.full:
            parts.append("the resume threshold after a full disk")
        return ", ".join(parts)


def _size(count: int) -> str:
    """Bytes for the log: MB when there are megabytes, else kB (small test file systems)."""
    return f"{count / MIB:.1f} MB" if count >= MIB else f"{count / 1024:.0f} kB"
