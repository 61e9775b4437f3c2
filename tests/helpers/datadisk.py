"""A small file system for a whole data directory: a real tmpfs, or a modelled one.

As root, ``small_data_disk`` mounts a tmpfs of the given size on the directory, so the
recordings, the database and the export work area (``<data_dir>/tmp``) share one small disk,
as they do on an appliance. Where mounting is not permitted (or RECORDER_TEST_NO_MOUNT=1), the
disk is modelled instead: its free space is its size less every byte under the directory, the
recorder's free-space readings are pointed at that, and its recording files fail with ENOSPC
once a write would not fit (an in-process recorder only). Each test says which ran.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from recorder.recording import files, paths
from tests.helpers.recorders import Running
from tests.helpers.smalldisk import tmpfs_mount


@dataclass
class DataDisk:
    """A file system of ``size`` bytes on ``root``: "tmpfs" (mounted) or "modelled"."""

    root: Path
    mode: str
    size: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def used(self) -> int:
        """Bytes of every file under the root (hard links once)."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for directory, _, names in os.walk(self.root):
            for name in names:
                with contextlib.suppress(OSError):
                    st = os.lstat(os.path.join(directory, name))
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_size
        return total

    def free(self) -> int:
        if self.mode == "tmpfs":
            return shutil.disk_usage(self.root).free
        return max(0, self.size - self.used())

    def fill(self, leave: int) -> Path:
        """A filler file taking all but ``leave`` bytes of the free space."""
        filler = self.root / "filler.bin"
        with filler.open("wb") as f:
            f.write(bytes(max(0, self.free() - leave)))
        return filler

    def model(self, running: Running, monkeypatch: pytest.MonkeyPatch) -> None:
        """Modelled disk: the recorder's files and free-space readings use it."""
        if self.mode != "modelled":
            return
        original = paths.create_unique

        def create(path: Path) -> tuple[Path, BinaryIO]:
            made, file = original(path)
            file.close()
            made.unlink()
            return made, io.BufferedWriter(_Modelled(made, self))

        monkeypatch.setattr(files, "create_unique", create)
        assert running.recorder is not None
        assert running.recorder.disk is not None
        monkeypatch.setattr(running.recorder.disk, "_usage", lambda root: self.free())


class _Modelled(io.FileIO):
    """A real file whose writes fail with ENOSPC once they would not fit on its disk."""

    def __init__(self, path: Path, disk: DataDisk) -> None:
        super().__init__(path, "wb")
        self._disk = disk

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        with self._disk.lock:
            allowed = min(len(view), self._disk.free())
            if allowed == 0 and len(view):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            return super().write(view[:allowed]) or 0


@contextlib.contextmanager
def small_data_disk(root: Path, size: int) -> Iterator[DataDisk]:
    """``root`` on a tmpfs of ``size`` bytes while the block runs, else a modelled disk."""
    with tmpfs_mount(root, size) as mounted:
        yield DataDisk(root, "tmpfs" if mounted else "modelled", size)
