"""A small file system for the full-disk tests, and what they check of a recorder on it.

As root, a small tmpfs is mounted for the test and a filler file takes most of it. Where mounting
is not permitted (or RECORDER_TEST_NO_MOUNT=1), the fault is injected at the writer's boundary
instead: the recording files are real files whose writes fail with ENOSPC once a byte budget is
spent. No tests here.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from lxml import etree

from recorder.recording import files, paths
from tests.helpers.api import request_xml, result_code
from tests.helpers.audio import sox_info
from tests.helpers.exports import dominant_hz
from tests.helpers.recorders import Running

RATE = 8000
KIB = 1024


class _Budgeted(io.FileIO):
    """A real file whose writes stop with ENOSPC once its disk's budget is spent."""

    def __init__(self, path: Path, disk: SmallDisk) -> None:
        super().__init__(path, "wb")
        self._disk = disk

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        with self._disk.lock:
            allowed = min(len(view), self._disk.left)
            if allowed == 0 and len(view):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.name)
            written = super().write(view[:allowed]) or 0
            self._disk.left -= written
        return written


@dataclass
class SmallDisk:
    """A file system with little room: a real tmpfs (``mode`` "tmpfs"), else a budget
    ("injected") that the files from ``open`` spend."""

    root: Path
    mode: str
    size: int
    left: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    filler: Path | None = None
    filler_rest: Path | None = None
    filled: int = 0

    def open(self, path: Path) -> BinaryIO:
        if self.mode == "tmpfs":
            return path.open("xb")
        return io.BufferedWriter(_Budgeted(path, self))

    def free(self) -> int:
        if self.mode == "tmpfs":
            return shutil.disk_usage(self.root).free
        return self.left

    def fill(self, leave: int) -> None:
        """Take all but ``leave`` bytes with a filler file."""
        if self.mode == "tmpfs":
            self.filler = self.root / "filler.bin"
            with self.filler.open("wb") as f:
                f.write(bytes(max(0, self.free() - leave)))
        else:
            self.filled = max(0, self.left - leave)
            self.left -= self.filled

    def fill_up(self) -> None:
        """Take every byte left with a second filler (``filler_rest``), written until the
        disk refuses: nothing, not even a database page, fits then (tmpfs only)."""
        assert self.mode == "tmpfs"
        self.filler_rest = self.root / "filler-rest.bin"
        fd = os.open(self.filler_rest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            chunk = bytes(64 * KIB)
            while True:
                try:
                    if os.write(fd, chunk) < len(chunk):
                        chunk = chunk[:max(1, len(chunk) // 2)]
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[:len(chunk) // 2]
        finally:
            os.close(fd)

    def free_up(self) -> None:
        """Delete the filler (and the second one)."""
        if self.mode == "tmpfs":
            assert self.filler is not None or self.filler_rest is not None
            for filler in (self.filler, self.filler_rest):
                if filler is not None:
                    filler.unlink()
        else:
            with self.lock:
                self.left += self.filled


def can_mount() -> bool:
    return os.geteuid() == 0 and not os.environ.get("RECORDER_TEST_NO_MOUNT") and bool(
        shutil.which("mount"))


@contextlib.contextmanager
def tmpfs_mount(root: Path, size: int) -> Iterator[bool]:
    """``root`` (made if missing) on a tmpfs of ``size`` bytes while the block runs; yields
    whether it could be mounted (False: not root, no mount, or RECORDER_TEST_NO_MOUNT=1)."""
    root.mkdir(parents=True, exist_ok=True)
    mounted = False
    if can_mount():
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
                              capture_output=True, text=True, check=False)
        mounted = done.returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            # Lazy: a file a failed test left open must not keep the mount (or the test) alive.
            subprocess.run(["umount", "-l", str(root)], check=False)


@contextlib.contextmanager
def small_disk(root: Path, size: int) -> Iterator[SmallDisk]:
    with tmpfs_mount(root, size) as mounted:
        yield SmallDisk(root, "tmpfs" if mounted else "injected", size, left=size)


def rows(data: Path, device: str | None = None) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(data / "recorder.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        query = "SELECT * FROM recordings"
        if device:
            return db.execute(query + " WHERE device_id = ? ORDER BY ident", (device,)).fetchall()
        return db.execute(query + " ORDER BY ident").fetchall()


def check_file(row: sqlite3.Row | Mapping[str, Any], source: npt.NDArray[np.int16],
               hz: float) -> None:
    """The file plays to its header's length, that length is the row's, and it is the line's
    tone sample for sample (the looped source from wherever the recording began). ``row``:
    its ``filename`` and ``duration`` (an encrypted recording's decrypted copy and its row's
    duration)."""
    info = soundfile.info(row["filename"])
    assert info.samplerate == RATE
    assert row["duration"] == pytest.approx(info.frames / RATE, abs=1e-6)
    assert float(sox_info(row["filename"])["-D"]) == pytest.approx(row["duration"], abs=1e-3)
    recorded, _ = soundfile.read(row["filename"], dtype="int16")
    assert len(recorded) == info.frames
    assert dominant_hz(recorded, RATE) == pytest.approx(hz, abs=5)
    offset = next(i for i in range(len(source))
                  if np.array_equal(np.roll(source, -i)[:64], recorded[:64]))
    np.testing.assert_array_equal(recorded, np.resize(np.roll(source, -offset), len(recorded)))


def inject(running: Running, disk: SmallDisk, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tmpfs: the recorder's files spend ``disk``'s budget and its guard reads it."""
    original = paths.create_unique

    def create(path: Path) -> tuple[Path, BinaryIO]:
        made, file = original(path)
        file.close()
        made.unlink()
        return made, disk.open(made)

    monkeypatch.setattr(files, "create_unique", create)
    assert running.recorder is not None
    assert running.recorder.disk is not None
    monkeypatch.setattr(running.recorder.disk, "_usage", lambda root: disk.free())


class Events:
    """A socket subscription to the record events."""

    def __init__(self, running: Running) -> None:
        self.conn = running.connect()
        self.conn.send(request_xml("EVENTS", 9, eventclass="record") + b"\r\n")
        assert result_code(self.conn.read_result()) == 20
        self.seen: list[tuple[str, str, str]] = []

    def until(self, wanted: tuple[str, str, str], timeout: float = 10.0) -> None:
        self.conn.sock.settimeout(timeout)
        while wanted not in self.seen:
            event = etree.fromstring(self.conn.read_line())
            self.seen.append((event.findtext("EVENTTYPE") or "",
                              event.findtext("EVENTDATA/DEVICEID") or "",
                              event.findtext("EVENTDATA/ERRORREASON") or ""))

    def close(self) -> None:
        self.conn.close()
