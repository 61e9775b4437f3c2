"""``recorderctl`` on this machine rather than through the service: devices, check-config,
recover (after a real crash), every command against a closed port, and the help's exit codes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from serial.tools import list_ports

from recorder.drivers.base import MAX_CATCH_UP_SECONDS
from tests.helpers.audio import sox_info
from tests.helpers.ctl import ctl_env, recorderctl
from tests.helpers.net import closed_port
from tests.helpers.pulseaudio import PulseServer, without_portaudio
from tests.helpers.recorders import BIN, RecorderProcess, start_recorderd, write_toml
from tests.helpers.waiting import wait_for

# --- exit codes --------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["status"], ["channels"], ["levels", "--seconds", "1"], ["calls"], ["events"],
    ["export", "1", "-o", "x.wav"], ["selftest"], ["send", "<REQUEST/>"]])
def test_every_service_command_exits_3_against_a_closed_port(command: list[str],
                                                             tmp_path: Path) -> None:
    with closed_port() as port:
        done = recorderctl("--port", str(port), "--web-port", str(port), *command, cwd=tmp_path,
                           timeout=30)
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    # Errors name the command, as docs/recorderctl.md promises.
    assert done.stderr.startswith(f"recorderctl {command[0]}: "), done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


# Three recorderctl processes each, about a second: one command in the fast lane, the others
# (the same path through common.target) in the full run.
@pytest.mark.parametrize("command", [
    ["status"], pytest.param(["calls"], marks=pytest.mark.slow),
    pytest.param(["send", "<REQUEST/>"], marks=pytest.mark.slow)])
def test_a_config_file_that_is_missing_or_invalid_is_exit_2_naming_it(
        command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    done = recorderctl("--config", missing, *command, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(f"recorderctl {command[0]}: {missing}: cannot read"), done.stderr
    bad = write_toml(tmp_path / "bad.toml", "[api]\nsocket_prt = 5620\n")
    done = recorderctl("--config", bad, *command, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    assert (f"recorderctl {command[0]}: {bad}: api.socket_prt: unknown key (did you mean "
            "'socket_port'?)") in done.stderr
    # Also from $RECORDER_CONFIG: never a silent fall back to the default ports.
    done = recorderctl(*command, env={"RECORDER_CONFIG": str(bad)}, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr


@pytest.mark.slow
def test_every_commands_help_lists_its_exit_codes() -> None:
    top = recorderctl("--help")
    assert top.returncode == 0
    commands = ["status", "channels", "levels", "calls", "events", "export", "send",
                "selftest", "devices", "check-config", "recover", "purge", "cav", "key",
                "decrypt"]
    for name in commands:
        assert name in top.stdout
        done = recorderctl(name, "--help")
        assert done.returncode == 0, name
        assert "exit status:\n  0  " in done.stdout, name
    assert "3  the recorder could not be reached" in recorderctl("status", "--help").stdout
    assert recorderctl("status", "--bogus").returncode == 2


# --- devices -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_devices_lists_serial_ports_and_the_configured_pty_without_sound_hardware(
        tmp_path: Path) -> None:
    leader, follower = os.openpty()
    pty_name = os.ttyname(follower)
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{tmp_path / "d"}"\n'
                        f'[[boards]]\ndriver = "voicemodem"\nport = "{pty_name}"\n'
                        'devices = ["3001"]\n')
    try:
        done = recorderctl("devices", "--config", str(config), "--json")
        human = recorderctl("devices", "--config", str(config))
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    # What pyserial enumerates on this machine (it globs /dev/ttyS*, ttyUSB*, ttyACM*, ...):
    # a pseudo-terminal is never among them, so it shows only as the configured port.
    expected = sorted(p.device for p in list_ports.comports(include_links=True))
    assert [p["device"] for p in listing["serial_ports"]] == expected
    assert pty_name not in expected
    assert listing["configured_serial_ports"] == [
        {"board": "boards[0]", "port": pty_name, "present": True, "detail": "present"}]
    # No sound card here: PortAudio starts and lists no input device, or says why it cannot.
    assert listing["portaudio"]["ok"] or listing["portaudio"]["error"]
    assert human.returncode == 0
    assert "serial ports:" in human.stdout
    assert f"  boards[0]  {pty_name}  present" in human.stdout

    gone = json.loads(recorderctl("devices", "--config", str(config), "--json").stdout)
    (port,) = gone["configured_serial_ports"]
    if os.path.exists(pty_name):
        # Another test's pty took the freed number at once (tests run side by side): the
        # listing must then say present, which is the truth of the moment.
        assert port["present"], port
        return
    assert not port["present"]
    assert port["detail"].startswith("missing")


@pytest.mark.slow
def test_devices_says_when_portaudio_is_missing_and_still_lists_serial_ports(
        tmp_path: Path) -> None:
    # A machine without libportaudio2, as test_sounddevice makes one: ctypes finds no library.
    env = without_portaudio(tmp_path)
    done = recorderctl("devices", env=env)
    assert done.returncode == 0, done.stderr
    assert "PortAudio cannot be loaded" in done.stdout
    assert "libportaudio2" in done.stdout
    assert "serial ports:" in done.stdout
    assert json.loads(recorderctl("devices", "--json", env=env).stdout)["portaudio"]["ok"] is False


def test_devices_lists_a_sound_servers_input(pulse: PulseServer) -> None:
    done = recorderctl("devices", "--json", env=pulse.client_env)
    assert done.returncode == 0, done.stderr
    names = [d["name"] for d in json.loads(done.stdout)["portaudio"]["input_devices"]]
    assert "pulse" in names


# --- check-config ------------------------------------------------------------------------------

@pytest.mark.process
@pytest.mark.slow
def test_check_config_does_what_recorderd_check_config_does(tmp_path: Path) -> None:
    good = write_toml(tmp_path / "good.toml", f'[storage]\ndata_dir = "{tmp_path / "d"}"\n'
                      '[[boards]]\ndriver = "synthetic"\ndevices = ["1001", "1002"]\n')
    ours = recorderctl("check-config", "--config", str(good))
    theirs = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(good)],
                            capture_output=True, text=True, timeout=60, env=ctl_env(),
                            check=False)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert "configuration OK" in ours.stdout
    bad = write_toml(tmp_path / "bad.toml", '[api]\nsocket_prt = 5620\n[[boards]]\n'
                     'driver = "file"\nfiles = ["/nonexistent/a.wav"]\ndevices = ["2001"]\n')
    refused = recorderctl("--config", str(bad), "check-config")  # the option before the command too
    assert refused.returncode == 2
    assert "api.socket_prt: unknown key (did you mean 'socket_port'?)" in refused.stderr
    assert refused.stdout == ""
    missing_file = write_toml(tmp_path / "nofile.toml", '[[boards]]\ndriver = "file"\n'
                              'files = ["/nonexistent/a.wav"]\ndevices = ["2001"]\n')
    opened = recorderctl("check-config", "--config", str(missing_file))
    assert opened.returncode == 2  # valid, but a board cannot open
    assert "/nonexistent/a.wav" in opened.stderr


# --- recover -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_recover_refuses_while_recorderd_runs_and_completes_a_killed_call(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config, data, running = start_recorderd(tmp_path, processes, ("1001", "1002"))
    proc = processes[-1]
    started = time.monotonic()  # before the request: the call starts before its answer
    assert running.request("CALLSTART", 1, deviceid="1002").findtext("RESULTCODE") == "20"

    busy = recorderctl("recover", "--config", str(config))
    assert busy.returncode == 2
    assert f"in use by process {proc.proc.pid}" in busy.stderr

    # Killed once two seconds of the call are in its file, however slowly a loaded machine
    # writes them: what was in the file then is what the recovery must keep.
    def file_with_two_seconds() -> Path | None:
        found = sorted((data / "recordings").rglob("1002-*.wav"))
        return found[0] if found and found[0].stat().st_size >= 44 + 2 * 16000 else None

    written = wait_for(file_with_two_seconds, 30, what="two seconds of the call in its file")
    assert written is not None
    on_disk = (written.stat().st_size - 44) / 16000
    proc.proc.send_signal(signal.SIGKILL)  # mid-call: the row stays "recording"
    elapsed = time.monotonic() - started
    proc.proc.wait(10)
    database = data / "recorder.sqlite3"

    def rows() -> list[tuple[int, str, str, float | None, str]]:
        db = sqlite3.connect(database)
        try:
            return db.execute("SELECT ident, status, stop_reason, duration, filename "
                              "FROM recordings").fetchall()
        finally:
            db.close()

    ((ident, status, _, _, filename),) = rows()
    assert status == "recording"
    dry = recorderctl("recover", "--config", str(config), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    first, summary = dry.stdout.splitlines()
    assert first.startswith(f"would complete\tRECORDID {ident}\t1002\tstarted ")
    assert filename in first
    assert summary == "would complete 1 interrupted recording(s)"
    assert rows()[0][1] == "recording"  # nothing changed

    done = recorderctl("recover", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (recovered,) = report["recordings"]
    assert (recovered["recordid"], recovered["device"], recovered["result"],
            recovered["stop_reason"]) == (ident, "1002", "completed", "recovered")
    ((_, status, reason, duration, _),) = rows()
    assert (status, reason) == ("complete", "recovered")
    assert duration is not None
    assert recovered["duration"] == pytest.approx(duration)
    # What the file plays is what the row says, and most of the call made it to disk.
    assert float(sox_info(filename)["-D"]) == pytest.approx(duration, abs=0.01)
    # All the call had in its file at the kill, and no more than from its 0.5 s pre-roll to
    # the kill, but for what a board behind the clock at the CALLSTART caught up since.
    assert on_disk - 0.01 <= duration <= elapsed + 0.5 + MAX_CATCH_UP_SECONDS + 0.1, (
        on_disk, duration, elapsed)

    again = recorderctl("recover", "--config", str(config))
    assert again.returncode == 0
    assert again.stdout.strip() == f"no interrupted recordings in {data}"


@pytest.mark.slow
def test_recover_refuses_a_bad_config_or_a_missing_database(tmp_path: Path) -> None:
    bad = write_toml(tmp_path / "bad.toml", '[storage]\nformat = "ogg"\n')
    done = recorderctl("recover", "--config", str(bad))
    assert done.returncode == 2
    assert "storage.format" in done.stderr
    empty = write_toml(tmp_path / "empty.toml", f'[storage]\ndata_dir = "{tmp_path / "none"}"\n')
    done = recorderctl("recover", "--config", str(empty))
    assert done.returncode == 2
    assert "no database at" in done.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_calls_offline_answers_from_the_database_as_the_service_did(
        tmp_path: Path, processes: list[RecorderProcess]) -> None:
    config, data, running = start_recorderd(tmp_path, processes, ("1001", "1002"))
    proc = processes[-1]
    for i, (device, ani) in enumerate((("1001", "6145551212"), ("1002", "8005550000"))):
        assert running.request("CALLSTART", i, deviceid=device, ani=ani).findtext(
            "RESULTCODE") == "20"
        time.sleep(1.0)
        assert running.request("CALLSTOP", i, deviceid=device).findtext("RESULTCODE") == "20"
    where = ["--port", str(running.socket_port)]
    live = recorderctl("calls", *where, "--json")
    assert live.returncode == 0, live.stderr
    by_ani = recorderctl("calls", *where, "--ani", "8005550000", "--json")
    # A service that does not answer (here: asked on the wrong port): status says whether a
    # recorderd holds the data directory, and which.
    with closed_port() as web_port:
        silent = recorderctl("status", "--config", str(config), "--web-port", str(web_port))
    assert silent.returncode == 3
    assert f"recorderd (pid {proc.proc.pid}) is running on {data} but does not answer" in \
        silent.stderr
    assert proc.stop() == 0
    with closed_port() as web_port:
        gone = recorderctl("status", "--config", str(config), "--web-port", str(web_port))
    assert gone.returncode == 3
    assert f"no recorderd is running on {data}" in gone.stderr

    # The service is down: asking it fails, reading its data directory answers the same.
    with closed_port(running.socket_port):  # nothing else may take the port meanwhile
        assert recorderctl("calls", *where).returncode == 3
    offline = recorderctl("calls", "--offline", "--config", str(config), "--json")
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout) == json.loads(live.stdout)
    assert len(json.loads(offline.stdout)) == 2
    filtered = recorderctl("calls", "--offline", "--config", str(config), "--ani", "8005550000",
                           "--json")
    assert json.loads(filtered.stdout) == json.loads(by_ani.stdout)
    assert [c["DEVICEID"] for c in json.loads(filtered.stdout)] == ["1002"]
    table = recorderctl("calls", "--offline", "--config", str(config))
    assert table.stdout.splitlines()[0].split()[:3] == ["RECORDID", "START", "DURATION"]
    refused = recorderctl("calls", "--offline", "--config", str(config), "--from", "1h",
                          "--to", "2h")
    assert refused.returncode == 1
    assert "CALLLIST answered 16" in refused.stderr
    missing = write_toml(tmp_path / "none.toml", f'[storage]\ndata_dir = "{tmp_path / "no"}"\n')
    nothing = recorderctl("calls", "--offline", "--config", str(missing))
    assert nothing.returncode == 2
    assert "no database at" in nothing.stderr

    # And a recording comes out of it as the service would have sent it.
    first = json.loads(offline.stdout)[-1]
    out = tmp_path / "first.mp3"
    exported = recorderctl("export", first["RECORDID"], "--offline", "--config", str(config),
                           "--format", "mp3", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith(f"{out}: recording {first['RECORDID']} as mp3")
    stored = float(sox_info(first["FILENAME"])["-D"])
    decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "s16le", "-"],
                             capture_output=True, check=True)
    assert abs(len(decoded.stdout) / 2 / 8000 - stored) < 0.1
    again = recorderctl("export", first["RECORDID"], "--offline", "--config", str(config),
                        "-o", str(out))
    assert again.returncode == 2
    assert "exists" in again.stderr
    unknown = recorderctl("export", "999", "--offline", "--config", str(config), "-o",
                          str(tmp_path / "x.wav"))
    assert unknown.returncode == 1
    assert "no recording with RECORDID 999" in unknown.stderr
    assert not list(tmp_path.glob("x.wav*"))
