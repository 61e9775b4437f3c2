"""``recorderd`` and ``recorderctl`` as real processes, the way an operator runs them."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from lxml import etree

from recorder.config.loader import load_config
from tests.helpers.api import request_xml
from tests.helpers.audio import sox_info
from tests.helpers.ctl import recorderctl
from tests.helpers.net import closed_port
from tests.helpers.recorders import BIN, RecorderProcess, write_toml

REPO = Path(__file__).resolve().parent.parent
PREROLL = 0.5  # capture.preroll_seconds' default

# Every test here starts recorderd (as a service, or to check or print a configuration).
pytestmark = pytest.mark.process


def config_file(tmp_path: Path, extra: str = "") -> Path:
    return write_toml(tmp_path / "recorder.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"

[api]
socket_port = 0
web_port = 0

[[boards]]
driver = "synthetic"
devices = ["1001", "1002", "1003", "1004"]
{extra}""")


def check_lasted(found: etree._Element, seconds: float, at_least: float,
                 at_most: float) -> None:
    """The recording (``seconds`` long by sox, its CALLLIST entry ``found``) lasted as long as
    the call: at least from when CALLSTART was answered until CALLSTOP was sent, at most from
    when CALLSTART was sent until CALLSTOP was answered, plus the 0.5 s pre-roll. (The time
    recorderctl takes to start, which a busy machine stretches, is on either side.)"""
    assert at_least - 0.05 <= seconds <= at_most + PREROLL + 0.05, (at_least, seconds, at_most)
    assert round(at_least) <= int(found.findtext("DURATION") or -1) <= round(
        at_most + PREROLL + 0.05)


def test_a_call_is_recorded_end_to_end(tmp_path: Path, processes: list[RecorderProcess]) -> None:
    proc = RecorderProcess(["--config", str(config_file(tmp_path))])
    processes.append(proc)
    running = proc.wait_ready()
    asked = time.monotonic()
    start = recorderctl(running, "send", "<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>1</REQUESTID>"
                        "<DEVICEID>1001</DEVICEID></REQUEST>")
    started = time.monotonic()
    assert start.returncode == 0, start.stdout + start.stderr
    time.sleep(3)
    stopping = time.monotonic()
    stop = recorderctl(running, "send", "<REQUEST><TYPE>CALLSTOP</TYPE><REQUESTID>2</REQUESTID>"
                       "<DEVICEID>1001</DEVICEID></REQUEST>")
    stopped = time.monotonic()
    assert stop.returncode == 0, stop.stdout + stop.stderr
    listing = recorderctl(running, "send", "<REQUEST><TYPE>CALLLIST</TYPE><REQUESTID>3</REQUESTID>"
                          "<DEVICEID>1001</DEVICEID></REQUEST>")
    assert listing.returncode == 0
    result = etree.fromstring(listing.stdout.encode())
    (found,) = result.findall("SEARCHRESULT")
    assert found.findtext("DEVICEID") == "1001"
    info = sox_info(found.findtext("FILENAME") or "")
    assert (info["-r"], info["-c"], info["-b"], info["-e"]) == (
        "8000", "1", "16", "Signed Integer PCM")
    check_lasted(found, float(info["-D"]), stopping - started, stopped - asked)
    assert proc.stop() == 0
    assert "Traceback" not in proc.log


def test_readme_first_session_on_the_embedded_defaults(tmp_path: Path,
                                                       processes: list[RecorderProcess]) -> None:
    """The README's commands, run as written, against recorderd started with no config."""
    assert not Path("/etc/recorder/recorder.toml").exists(), (
        "this machine has /etc/recorder/recorder.toml, so recorderd cannot show its defaults")
    for port in (5620, 2012):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is already in use"
    env = {"STATE_DIRECTORY": str(tmp_path / "state")}
    env_without_config = {k: v for k, v in os.environ.items() if k != "RECORDER_CONFIG"}
    proc = RecorderProcess([], env={**env_without_config, **env})
    processes.append(proc)
    running = proc.wait_ready()
    assert (running.socket_port, running.web_port) == (5620, 2012)
    assert "starting with embedded defaults" in proc.log

    readme = (REPO / "README.md").read_text()
    session = readme.split("## First session", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in session.strip().splitlines() if line.strip()]
    assert [c.split()[0] for c in commands] == [".venv/bin/recorderctl", "sleep",
                                                ".venv/bin/recorderctl", ".venv/bin/recorderctl"]
    outputs, ran = [], []
    for line in commands:
        command = line.replace(".venv/bin/", f"{BIN}/")
        began = time.monotonic()
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=30, cwd=tmp_path, check=False)
        ran.append((began, time.monotonic()))
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    found = etree.fromstring(outputs[-1].encode()).find("SEARCHRESULT")
    assert found is not None
    assert found.findtext("ANI") == "6145551212"
    filename = found.findtext("FILENAME") or ""
    assert filename.startswith(str(tmp_path / "state" / "recordings"))
    info = sox_info(filename)
    assert (info["-r"], info["-c"], info["-b"]) == ("8000", "1", "16")
    (asked, started), _, (stopping, stopped) = ran[:3]
    check_lasted(found, float(info["-D"]), stopping - started, stopped - asked)
    for line in ("printf '<REQUEST><TYPE>TEST</TYPE>", "curl 'http://127.0.0.1:2012/webAPI.aspx?"):
        assert line in readme
    assert running.request("TEST").findtext("RESULTCODE") == "20"
    status, _ = running.web("type=devicestatus&requestid=4&deviceid=1001")
    assert status == 200
    assert proc.stop() == 0


def test_sigterm_mid_call_finishes_the_recording(tmp_path: Path,
                                                 processes: list[RecorderProcess]) -> None:
    proc = RecorderProcess(["--config", str(config_file(tmp_path))])
    processes.append(proc)
    running = proc.wait_ready()
    assert running.request("CALLSTART", 1, deviceid="1002").findtext("RESULTCODE") == "20"
    # The call's own audio, not the wall clock's, which a loaded machine's capture may lag.
    recorded = running.wait_recorded("1002", 1.5)
    assert proc.stop() == 0
    db = sqlite3.connect(tmp_path / "data" / "recorder.sqlite3")
    (status, reason, duration, filename), = db.execute(
        "SELECT status, stop_reason, duration, filename FROM recordings").fetchall()
    db.close()
    assert (status, reason) == ("complete", "shutdown")
    assert recorded - 0.01 <= duration <= recorded + 2.0, (duration, recorded)
    assert float(sox_info(filename)["-D"]) == pytest.approx(duration, abs=0.01)
    assert "SIGTERM received" in proc.log


def test_recorderctl_exit_codes_and_stdin(tmp_path: Path,
                                          processes: list[RecorderProcess]) -> None:
    proc = RecorderProcess(["--config", str(config_file(tmp_path))])
    processes.append(proc)
    running = proc.wait_ready()
    ok = recorderctl(running, "send", "-", stdin="<REQUEST>\n <TYPE>TEST</TYPE>\n "
                     "<REQUESTID>1</REQUESTID>\n</REQUEST>\n")
    assert ok.returncode == 0
    assert "<RESULTCODE>20</RESULTCODE>" in ok.stdout
    refused = recorderctl(running, "send",
                          "<REQUEST><TYPE>NOPE</TYPE><REQUESTID>1</REQUESTID></REQUEST>")
    assert refused.returncode == 1
    assert "<RESULTCODE>10</RESULTCODE>" in refused.stdout
    raw = recorderctl(running, "send", "--raw", request_xml("TEST", 5).decode())
    assert raw.stdout.count("\n") == 1  # exactly the RESULT line
    with closed_port() as port:
        unreachable = recorderctl("--port", str(port), "send", "<REQUEST/>")
        assert unreachable.returncode == 3
        assert f"cannot reach recorderd at 127.0.0.1:{port}" in unreachable.stderr
        after_the_command = recorderctl(  # and the options given after the command win
            "--port", str(port), "send", "--port", str(running.socket_port), "--host",
            "127.0.0.1", request_xml("TEST", 6).decode())
    assert after_the_command.returncode == 0, after_the_command.stderr
    usage = recorderctl()
    assert usage.returncode == 2
    assert proc.stop() == 0


def test_recorderctl_finds_the_port_in_the_config(tmp_path: Path,
                                                  processes: list[RecorderProcess]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path}/d"\n'
                      f"[api]\nsocket_port = {port}\nweb_port = 0\n")
    proc = RecorderProcess(["--config", str(path)])
    processes.append(proc)
    proc.wait_ready()
    done = recorderctl("--config", str(path), "send", request_xml("TEST", 1).decode())
    assert done.returncode == 0, done.stderr
    assert "no boards configured" in proc.log
    assert proc.stop() == 0


@pytest.mark.slow
def test_check_config(tmp_path: Path) -> None:
    good = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config",
                           str(config_file(tmp_path))], capture_output=True, text=True, check=False)
    assert good.returncode == 0
    assert "configuration OK" in good.stdout
    assert "boards[0]: synthetic, devices 1001, 1002, 1003, 1004" in good.stdout
    bad = write_toml(tmp_path / "bad.toml", """
[api]
socket_prt = 5620
web_port = "2012"
[[boards]]
driver = "file"
files = ["/nonexistent/a.wav"]
devices = ["2001"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(bad)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 78
    assert "api.socket_prt: unknown key (did you mean 'socket_port'?)" in done.stderr
    assert "api.web_port: expected an integer, got a string '2012'" in done.stderr
    assert "boards[0].files[0]: no such file: /nonexistent/a.wav" in done.stderr
    # The same file stops the service from starting, with the same words.
    run = subprocess.run([str(BIN / "recorderd"), "--config", str(bad)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert run.returncode == 78
    assert "boards[0].files[0]: no such file" in run.stderr


def test_check_config_opens_the_boards_files(tmp_path: Path) -> None:
    soundfile.write(tmp_path / "a.wav", np.zeros(100, np.int16), 8000)
    soundfile.write(tmp_path / "b.wav", np.zeros(100, np.int16), 16000)
    (tmp_path / "notes.wav").write_text("not audio")
    path = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path}/d"
[[boards]]
driver = "file"
files = ["a.wav", "b.wav"]
devices = ["1", "2"]
[[boards]]
driver = "file"
files = ["notes.wav"]
devices = ["3"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 78
    assert "boards[0].files: all files of a board need one sample rate" in done.stderr
    assert "boards[1].files[0]: cannot read audio" in done.stderr  # every board, at once


def test_print_config_reads_back(tmp_path: Path) -> None:
    done = subprocess.run([str(BIN / "recorderd"), "--print-config", "--config",
                           str(config_file(tmp_path))], capture_output=True, text=True, check=False)
    assert done.returncode == 0
    printed = write_toml(tmp_path / "printed.toml", done.stdout)
    assert load_config(printed) == load_config(tmp_path / "recorder.toml")


def test_a_busy_port_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        path = write_toml(tmp_path / "r.toml", "[core]\nbind_retry_seconds = 0\n"
                          f'[storage]\ndata_dir = "{tmp_path}/d"\n'
                          f"[api]\nsocket_port = 0\nweb_port = {port}\n")
        done = subprocess.run([str(BIN / "recorderd"), "--config", str(path)],
                              capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert re.search(rf"api\.web_port: cannot listen on 127\.0\.0\.1:{port}: .*in use",
                     done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_an_unreadable_audio_file_stops_startup_naming_the_key(tmp_path: Path) -> None:
    bogus = tmp_path / "line.wav"
    bogus.write_text("not audio")
    path = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path}/d"
[api]
socket_port = 0
web_port = 0
[[boards]]
driver = "file"
files = ["line.wav"]
devices = ["2001"]
[[boards]]
driver = "synthetic"
devices = ["1001"]
[[boards]]
driver = "file"
files = ["line.wav"]
devices = ["2002"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78  # a configuration problem: systemd must not restart-loop
    # Every board that cannot open, not only the first: one restart per mistake is too many.
    assert "cannot start: boards[0].files[0]: cannot read audio" in done.stderr
    assert "cannot start: boards[2].files[0]: cannot read audio" in done.stderr
    assert "boards[1]" not in done.stderr
    check = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 78
    assert "boards[0].files[0]: cannot read audio" in check.stderr
    assert "boards[2].files[0]: cannot read audio" in check.stderr


def test_print_config_masks_secrets(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path}/d"\n'
                      '[smtp]\nhost = "127.0.0.1"\nusername = "rec"\npassword = "hunter2"\n')
    done = subprocess.run([str(BIN / "recorderd"), "--print-config", "--config", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    assert 'password = "********"' in done.stdout
    assert 'username = "rec"' in done.stdout


def test_check_config_summarises_the_recording_policy(tmp_path: Path) -> None:
    path = write_toml(tmp_path / "r.toml", f'''[storage]
data_dir = "{tmp_path}/d"
[recording]
max_concurrent = 2
[[recording.schedules]]
name = "sales"
groups = ["sales"]
[[recording.blocked]]
name = "hr"
ani = ["555*"]
[retention]
default_keep_days = 90
min_free_mb = 0
[smtp]
host = "127.0.0.1"
security = "starttls"
''')
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert ("recording:  1 schedule(s), first match decides; 1 blocked filter(s); at most 2 "
            "at once") in done.stdout
    assert "retention:  kept 90 day(s) by default" in done.stdout
    assert "no free-space floor" in done.stdout
    assert "e-mail:     127.0.0.1:587 (starttls)" in done.stdout
