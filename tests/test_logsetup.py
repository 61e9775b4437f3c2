"""Logging to the journal under systemd, to stderr elsewhere, checked in real child processes.

systemd gives a service's stderr to the journal and names that stream in ``$JOURNAL_STREAM``
(its device and inode). The tests do what systemd does: hand a child a file as its stderr and
set the variable to that file's device:inode (or to something else), then read what the child
wrote.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from tests.helpers.recorders import BIN, base_config, write_toml

ROOT = Path(__file__).resolve().parent.parent
TIMESTAMPED = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")

CHILD = r"""
import logging, sys
from recorder.service.logsetup import configure_logging
for level in sys.argv[1:]:
    print(configure_logging(level))
log = logging.getLogger("recorder.test")
log.debug("debug line")
log.info("info line")
log.warning("warning line")
log.error("error line")
log.critical("critical line")
try:
    raise ValueError("boom")
except ValueError:
    log.exception("it failed")
log.warning("first\nsecond")
"""


def run_child(tmp_path: Path, *levels: str, journal_stream: str | None = "match",
              ) -> tuple[str, list[str]]:
    """Run CHILD with its stderr in a file; returns (stdout, the stderr lines)."""
    log = tmp_path / "stderr.log"
    with log.open("wb") as err:
        env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        if journal_stream == "match":
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        elif journal_stream is not None:
            env["JOURNAL_STREAM"] = journal_stream
        done = subprocess.run([sys.executable, "-c", CHILD, *levels], stdout=subprocess.PIPE,
                              stderr=err, env=env, cwd=ROOT, text=True, timeout=60,
                              check=False)
    lines = log.read_text().splitlines()
    assert done.returncode == 0, "\n".join(lines)
    return done.stdout, lines


def test_under_systemd_every_line_carries_its_records_priority(tmp_path: Path) -> None:
    out, lines = run_child(tmp_path, "DEBUG")
    assert out.split() == ["journal"]
    assert "<7>DEBUG recorder.test: debug line" in lines
    assert "<6>INFO recorder.test: info line" in lines
    assert "<4>WARNING recorder.test: warning line" in lines
    assert "<3>ERROR recorder.test: error line" in lines
    assert "<2>CRITICAL recorder.test: critical line" in lines
    # The traceback stays at the record's priority, line by line, so `journalctl -p err`
    # shows all of it.
    start = lines.index("<3>ERROR recorder.test: it failed")
    end = lines.index("<3>ValueError: boom")
    traceback = lines[start:end + 1]
    assert traceback[1] == "<3>Traceback (most recent call last):"
    assert any(line.startswith('<3>  File "<string>"') for line in traceback)
    assert all(line.startswith("<3>") for line in traceback), traceback
    assert lines[end + 1:end + 3] == ["<4>WARNING recorder.test: first", "<4>second"]
    # The journal stamps lines itself.
    assert not any(TIMESTAMPED.match(line.removeprefix("<7>")) for line in lines)
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines


def test_the_level_filters_what_reaches_the_journal(tmp_path: Path) -> None:
    out, lines = run_child(tmp_path, "WARNING")
    assert out.split() == ["journal"]
    assert not any("debug line" in line or "info line" in line for line in lines)
    assert "<4>WARNING recorder.test: warning line" in lines


@pytest.mark.parametrize("journal_stream", [
    None,  # not started by systemd
    "1:1",  # inherited from a service, but our stderr is not its journal stream
    "garbage",
])
def test_elsewhere_stderr_gets_timestamped_lines(tmp_path: Path,
                                                 journal_stream: str | None) -> None:
    out, lines = run_child(tmp_path, "INFO", journal_stream=journal_stream)
    assert out.split() == ["stderr"]
    assert not any("debug line" in line for line in lines)
    info = [line for line in lines if line.endswith("info line")]
    assert len(info) == 1
    assert TIMESTAMPED.match(info[0])
    assert info[0].endswith(" INFO recorder.test: info line")
    assert not any(line.startswith("<") for line in lines), lines
    # A traceback is written as Python writes it.
    assert "Traceback (most recent call last):" in lines
    assert "ValueError: boom" in lines


def test_a_mismatching_inode_on_the_same_device_is_not_the_journal(tmp_path: Path) -> None:
    st = os.stat(tmp_path)  # another file on the same device
    out, _ = run_child(tmp_path, "INFO", journal_stream=f"{st.st_dev}:{st.st_ino}")
    assert out.split() == ["stderr"]


def test_configuring_twice_does_not_double_the_lines(tmp_path: Path) -> None:
    out, lines = run_child(tmp_path, "DEBUG", "INFO")
    assert out.split() == ["journal", "journal"]
    assert lines.count("<4>WARNING recorder.test: warning line") == 1
    assert not any("debug line" in line for line in lines)  # the second call's level holds
    out, lines = run_child(tmp_path, "INFO", "INFO", journal_stream=None)
    assert out.split() == ["stderr", "stderr"]
    assert sum(line.endswith("warning line") for line in lines) == 1


@pytest.mark.process
def test_recorderd_under_systemd_logs_with_priorities(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "recorder.toml",
                        to_toml(config_from_dict(base_config(tmp_path), base_dir=tmp_path)))
    # A pipe is what systemd hands a service (a socket, really): the same inode at both ends.
    read_end, write_end = os.pipe()
    st = os.fstat(write_end)
    env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    proc = subprocess.Popen([str(BIN / "recorderd"), "--config", str(config)],
                            stdout=write_end, stderr=write_end, env=env)
    os.close(write_end)
    lines: list[str] = []

    def read() -> None:
        with os.fdopen(read_end, encoding="utf-8", errors="replace") as stream:
            lines.extend(line.rstrip("\n") for line in stream)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not any("recorderd ready" in line for line in lines):
            assert proc.poll() is None, "\n".join(lines)
            assert time.monotonic() < deadline, "\n".join(lines)
            time.sleep(0.05)
    finally:
        proc.terminate()
        code = proc.wait(30)
        reader.join(10)
    assert code == 0, "\n".join(lines)
    assert any(re.fullmatch(r"<6>INFO recorder\.service\.daemon: recorderd ready", line)
               for line in lines), lines
    assert any(re.search(r"^<6>.*socket API listening on 127\.0\.0\.1:\d+$", line)
               for line in lines), lines
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines
