"""One process at a time on a data directory: recorderd while it runs, or an offline tool
(``recorderctl recover``) that changes recordings and rows behind its back.

The lock is an exclusive ``flock`` on ``<data_dir>/recorderd.lock``. The kernel drops it when its
holder exits, however it exits (SIGKILL, power cut), so a crash never leaves a stale lock behind,
unlike a pid file. The holder's pid is written into the file only to say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from recorder.errors import RecorderError

LOCK_NAME = "recorderd.lock"


class DataDirBusy(RecorderError):
    """Another process holds the data directory; ``pid`` is its process id when it says."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{data_dir} is in use by {holder} (it holds {data_dir / LOCK_NAME})")
        self.data_dir = data_dir
        self.pid = pid


class DataDirLock:
    """The exclusive lock of ``data_dir`` (which must exist); also a context manager."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting; DataDirBusy if another process holds it.

        OSError if the lock file cannot be opened (no such directory, read-only file system).
        """
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirBusy(self.data_dir, pid) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)  # closing releases the lock
            raise
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (nothing if not held). The file stays: removing it would let a
        process that opened it a moment before lock a file nobody else can see."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # so nobody reads a pid that no longer holds it
        finally:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    # The holder writes its pid just after locking: a reader may come in between and find
    # nothing yet.
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def running_holder(data_dir: Path) -> int | None:
    """The pid of the recorderd that holds ``data_dir``, if one is alive; without locking.

    For diagnostics only (``recorderctl status`` when the service does not answer): taking the
    lock, even for a moment, could make a recorderd starting at that instant refuse to start.
    The pid is in the file while the lock is held; one left by a killed holder is recognised
    by its process being gone or not being recorderd.
    """
    try:
        text = (data_dir / LOCK_NAME).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None  # no such process (or /proc hides it: then we cannot tell)
    return pid if b"recorderd" in cmdline else None

