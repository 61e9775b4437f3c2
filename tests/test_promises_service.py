"""Documented promises of the service itself that no other test held it to: Ctrl-C (SIGINT)
stops recorderd as SIGTERM does, finishing the recording in progress; the configuration is
read from /etc/recorder/recorder.toml when nothing else names one; exports a stopped recorder
left in ``<data_dir>/tmp`` are removed at the next start; and systemd's STATUS= line says DISK
FULL."""

from __future__ import annotations

import re
import signal
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.config import model
from recorder.config.loader import config_from_dict
from recorder.service import daemon
from tests.helpers.audio import sox_info
from tests.helpers.recorders import (
    IN_PROCESS_AND_RECORDERD,
    RecorderProcess,
    base_config,
    start_recorderd,
)

ETC_CONFIG = Path("/etc/recorder/recorder.toml")  # README, Configuration


# --- Ctrl-C ------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.process
def test_ctrl_c_finishes_the_recording_in_progress_and_exits_0(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    _, data, running = start_recorderd(tmp_path, processes, devices=("1001", "1002"))
    proc = processes[-1]
    subscriber = running.connect()
    assert subscriber.request("EVENTS", 0, eventclass="RECORD").findtext("RESULTCODE") == "20"
    assert running.request("CALLSTART", 1, deviceid="1002").findtext("RESULTCODE") == "20"
    time.sleep(1.5)
    proc.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground process
    assert proc.proc.wait(30) == 0, proc.log
    proc.stop()  # collects the rest of the log
    assert "SIGINT received: stopping" in proc.log
    assert "Traceback" not in proc.log, proc.log
    assert "KeyboardInterrupt" not in proc.log
    with sqlite3.connect(data / "recorder.sqlite3") as db:
        rows = db.execute("SELECT status, stop_reason, duration, filename FROM recordings"
                          ).fetchall()
    (status, reason, duration, filename), = rows
    assert (status, reason) == ("complete", "shutdown")
    assert duration >= 1.45  # the call, at least; the file says exactly how much
    assert float(sox_info(filename)["-D"]) == pytest.approx(duration, abs=0.01)
    # The subscriber was told, before its stream ended.
    lines = []
    subscriber.sock.settimeout(10)
    while True:
        try:
            lines.append(subscriber.read_line())
        except ConnectionError:
            break
    stopped = [line for line in lines if b"<EVENTTYPE>RECORDINGSTOPPED<" in line]
    assert len(stopped) == 1, lines
    assert b"<ERRORREASON>SHUTDOWN</ERRORREASON>" in stopped[0], stopped
    subscriber.close()


# --- /etc/recorder/recorder.toml -----------------------------------------------------------

def test_the_documented_default_path_is_etc_recorder() -> None:
    assert model.DEFAULT_CONFIG_PATH == ETC_CONFIG


@pytest.fixture
def etc_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The default configuration path pointed at a file in ``tmp_path`` (this machine's /etc
    is never written), with nothing else naming a configuration."""
    for name in (model.CONFIG_ENV, "CONFIGURATION_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "etc" / "recorder" / "recorder.toml"
    monkeypatch.setattr(model, "DEFAULT_CONFIG_PATH", path)
    return path


def printed_config(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert daemon.main(["--print-config", *argv]) == 0
    return capsys.readouterr().out


def test_recorderd_reads_the_etc_file_when_present(
        etc_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Absent: the embedded defaults, the demo board on 1001-1004.
    assert model.resolve_config_path(None) is None
    assert 'devices = ["1001", "1002", "1003", "1004"]' in printed_config(capsys)

    etc_config.parent.mkdir(parents=True)
    etc_config.write_text('[core]\nident = 7\n[[boards]]\ndriver = "synthetic"\n'
                          'devices = ["7001"]\n', encoding="utf-8")
    assert model.resolve_config_path(None) == etc_config
    text = printed_config(capsys)
    assert "ident = 7" in text
    assert 'devices = ["7001"]' in text

    # --config and $RECORDER_CONFIG come first, as documented.
    other = tmp_path / "other.toml"
    other.write_text("[core]\nident = 9\n", encoding="utf-8")
    assert "ident = 9" in printed_config(capsys, "--config", str(other))
    monkeypatch.setenv(model.CONFIG_ENV, str(other))
    assert "ident = 9" in printed_config(capsys)


# --- <data_dir>/tmp at start -----------------------------------------------------------------

@IN_PROCESS_AND_RECORDERD
def test_exports_a_stopped_recorder_left_are_removed_at_start(start_recorder: Any,
                                                              tmp_path: Path) -> None:
    work = tmp_path / "data" / "tmp"  # base_config's data_dir, before the recorder makes it
    work.mkdir(parents=True)
    # What the exporter leaves when it is killed mid-export: its own temporary files.
    left = [Path(tempfile.mkstemp(prefix="export-", suffix=suffix, dir=work)[1])
            for suffix in (".wav", ".mp3", ".zip")]
    for path in left:
        path.write_bytes(b"\0" * 4096)
    running = start_recorder()
    assert list(work.iterdir()) == []
    if running.process is not None:
        assert f"removed 3 unfinished export(s) from {work}" in running.log()


# --- systemd's STATUS= line on a full disk (docs/faults.md, A full disk) --------------------

def test_the_status_line_says_disk_full_in_its_disk_part(tmp_path: Path) -> None:
    # A floor no disk meets keeps the guard from finding room again while the test reads it.
    config = config_from_dict(base_config(tmp_path, retention={"min_free_mb": 1 << 40}),
                              base_dir=tmp_path)
    recorder = Recorder(config)
    recorder.start()
    try:
        assert recorder.disk is not None
        assert "DISK FULL" not in recorder.summary_line()
        # What a recording's write meeting ENOSPC reports (recorder/recording/files.py).
        recorder.disk.disk_full(config.storage.recordings_dir, 16000.0)
        parts = recorder.summary_line().split("; ")
    finally:
        recorder.stop()
    assert parts[0] == "recording 0 of 4 channels"
    assert re.fullmatch(r"DISK FULL, new recordings refused \(disk \d+\.\d GB free\)",
                        parts[2]), parts
