"""The work area exports are written in (``<data_dir>/tmp``): its byte budget, how many exports
are made at once, and the recordings' room, which an export never takes.

Every export (EXPORT, COMBINEDEXPORT, MULTIEXPORT, and the attachments of EMAIL and
COMBINEDEMAIL) is admitted before it writes anything, with an estimate of the most it takes
(``recorder.archive.export``'s ``*_bytes``):

- at most ``concurrency`` (``api.export_concurrency``) are being made at once, so exports
  never hold every API worker: the next one is refused with 47 API_COMMAND_QUEUE_FULL;
- at most ``max_bytes`` (``api.export_max_bytes``) are reserved at once, from admission until
  the answer holding the file has been sent or has failed (the transport then deletes the file;
  the budget notices it is gone the next time it is asked). An export bigger than the whole
  budget is refused with 2 API_ERROR_OUT_OF_DISK_SPACE; one that only does not fit beside
  those in progress with 47 (it fits once they are done);
- on the recordings' disk, the export's bytes are claimed from the disk guard, which refuses
  them (2) if they would leave less free than the floor and the room the live recordings
  need (``DiskGuard.claim``). A work area on another disk only needs room on its own.

A write that still meets a full disk is the caller's to clean up and answer (also 2).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
from pathlib import Path
from types import TracebackType

from recorder.errors import ResultError
from recorder.recording.diskspace import DiskGuard
from recorder.resultcodes import ResultCode

logger = logging.getLogger(__name__)

MIB = 1 << 20
UNLIMITED = 1 << 62


def size_text(count: int) -> str:
    """Bytes in the refusals' words: MB of 2^20 (the configuration's), else kB."""
    return f"{count / MIB:.1f} MB" if count >= MIB else f"{max(0, count) / 1024:.0f} kB"


def _exports(count: int) -> str:
    return "1 export is" if count == 1 else f"{count} exports are"


def _device(path: Path) -> int:
    """The file system holding ``path``, or its nearest existing parent."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return os.stat(path).st_dev


class ExportWorkspace:
    """Admits exports into the work area ``directory``; see the module docstring."""

    def __init__(self, directory: Path, max_bytes: int = UNLIMITED,
                 concurrency: int = UNLIMITED, *, guard: DiskGuard | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.concurrency = concurrency
        self._guard = guard
        self._lock = threading.Lock()  # a leaf lock; the guard's is never taken under it
        self._running = 0  # exports being made
        self._writing = 0  # bytes reserved by the exports being made
        self._sent: dict[Path, int] = {}  # files handed to the transport, until it deletes them
        self.refused = 0

    @property
    def reserved_bytes(self) -> int:
        """Bytes reserved now: exports being made, and files not yet sent."""
        with self._lock:
            self._forget_sent()
            return self._writing + sum(self._sent.values())

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def admit(self, what: str, estimate: int) -> Export:
        """Admit ``what``, which takes at most ``estimate`` bytes, or refuse it: ResultError
        with 47 (too many exports, or the budget is in use) or 2 (no room), saying why."""
        with self._lock:
            self._forget_sent()
            in_use = self._writing + sum(self._sent.values())
            if self._running >= self.concurrency:
                problem: ResultError | None = ResultError(
                    ResultCode.API_COMMAND_QUEUE_FULL,
                    f"{_exports(self._running)} being made, as many as "
                    f"api.export_concurrency allows; try {what} again when one is done")
            elif estimate > self.max_bytes:
                problem = ResultError(
                    ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                    f"{what} needs about {size_text(estimate)}, more than api.export_max_bytes "
                    f"({size_text(self.max_bytes)}) allows; ask for fewer recordings or a "
                    "smaller format such as MP3")
            elif in_use + estimate > self.max_bytes:
                problem = ResultError(
                    ResultCode.API_COMMAND_QUEUE_FULL,
                    f"{what} needs about {size_text(estimate)} and exports being made or sent "
                    f"hold {size_text(in_use)} of api.export_max_bytes "
                    f"({size_text(self.max_bytes)}); try again when they are done")
            else:
                problem = self._room_elsewhere(what, estimate)
            if problem is None:
                self._running += 1
                self._writing += estimate
            else:
                self.refused += 1
        if problem is None and self._claims():
            reason = self._guard.claim(estimate, what) if self._guard is not None else None
            if reason is not None:
                with self._lock:
                    self._running -= 1
                    self._writing -= estimate
                    self.refused += 1
                problem = ResultError(ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                                      f"refused, the live recordings come first: {reason}")
        if problem is not None:
            logger.info("export refused (%d): %s", int(problem.code), problem.message)
            raise problem
        return Export(self, estimate, claimed=self._claims())

    def _claims(self) -> bool:
        """Whether exports are written on the recordings' disk (their bytes are claimed
        from the disk guard), rather than on a disk of their own."""
        if self._guard is None:
            return False
        try:
            return _device(self.directory) == _device(self._guard.recordings_dir)
        except OSError:
            return True  # cannot tell: the recordings' rule is the safe one

    def _room_elsewhere(self, what: str, estimate: int) -> ResultError | None:
        """On a disk of its own, the work area only needs room for the export (under the
        lock: beside the bytes the exports being made have reserved)."""
        if self._claims():
            return None
        try:
            free = shutil.disk_usage(self.directory).free
        except OSError:
            return None  # a write that finds no room is still answered 2
        if free - self._writing >= estimate:
            return None
        return ResultError(ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                           f"{what} needs about {size_text(estimate)} and the work area "
                           f"{self.directory} has {size_text(free - self._writing)} free")

    def _forget_sent(self) -> None:
        """Under the lock: drop the files the transport has deleted (sent, or failed)."""
        for path in [path for path in self._sent if not path.exists()]:
            del self._sent[path]

    def _finish(self, export: Export) -> None:
        with self._lock:
            self._running -= 1
            self._writing -= export.estimate
            if export.handed_over is not None:
                with contextlib.suppress(OSError):  # already sent and deleted
                    self._sent[export.handed_over] = export.handed_over.stat().st_size
        if export.claimed and self._guard is not None:
            # Written (or abandoned): what is on the disk now is in its free space.
            self._guard.release(export.estimate)


class Export:
    """One admitted export: a context manager that gives its place back on exit, and its
    bytes too unless its file was handed over (then when that file is gone)."""

    def __init__(self, workspace: ExportWorkspace, estimate: int, *, claimed: bool) -> None:
        self._workspace = workspace
        self.estimate = estimate
        self.claimed = claimed
        self.handed_over: Path | None = None
        self._done = False

    def hand_over(self, path: Path) -> None:
        """``path`` is the answer and stays until the transport has sent it and deleted it:
        its bytes stay reserved until then."""
        self.handed_over = path

    def __enter__(self) -> Export:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is not None:
            self.handed_over = None  # failed: its file is removed by whoever made it
        if not self._done:
            self._done = True
            self._workspace._finish(self)
