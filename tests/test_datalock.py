"""The data directory lock: one process at a time, released however its holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recorder.service.datalock import LOCK_NAME, DataDirBusy, DataDirLock, running_holder

HOLD = """
import sys, time
from pathlib import Path
from recorder.service.datalock import DataDirLock
DataDirLock(Path(sys.argv[1])).acquire()
print("held", flush=True)
time.sleep(60)
"""


def hold_in_another_process(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(data_dir)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_told_who_holds_it_until_the_holder_is_killed(
        tmp_path: Path) -> None:
    holder = hold_in_another_process(tmp_path)
    try:
        assert (tmp_path / LOCK_NAME).read_text() == f"{holder.pid}\n"
        with pytest.raises(DataDirBusy) as busy:
            DataDirLock(tmp_path).acquire()
        assert busy.value.pid == holder.pid
        assert f"in use by process {holder.pid}" in str(busy.value)
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up code runs: the kernel releases it
        holder.wait(10)
    lock = DataDirLock(tmp_path)
    lock.acquire()
    try:
        assert lock.held
        assert (tmp_path / LOCK_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        lock.release()


def test_release_and_the_context_manager_let_the_next_one_in(tmp_path: Path) -> None:
    with DataDirLock(tmp_path) as first:
        assert first.held
        # a second lock of the same directory, even in this process, is refused
        with pytest.raises(DataDirBusy) as busy:
            DataDirLock(tmp_path).acquire()
        assert busy.value.pid == os.getpid()
    assert not first.held
    assert (tmp_path / LOCK_NAME).read_text() == ""  # no pid of a process that let go
    second = DataDirLock(tmp_path)
    second.acquire()
    second.acquire()  # taking it again while held changes nothing
    second.release()
    second.release()  # nor does letting go twice
    assert (tmp_path / LOCK_NAME).exists()  # kept: removing it would race the next holder


def test_a_missing_directory_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DataDirLock(tmp_path / "missing").acquire()


def test_running_holder_names_only_a_live_recorderd(tmp_path: Path) -> None:
    # A holder that is not recorderd (this python): not reported as the service.
    holder = hold_in_another_process(tmp_path)
    try:
        assert running_holder(tmp_path) is None
        # Its pid stays in the file after SIGKILL (no release ran)...
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        assert (tmp_path / LOCK_NAME).read_text() == f"{holder.pid}\n"
        # ...but the process is gone, so nobody is running there.
        assert running_holder(tmp_path) is None
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    assert running_holder(tmp_path / "nowhere") is None
