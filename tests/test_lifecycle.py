"""recorderd as systemd runs it: the packaged unit's command line and environment, a real
NOTIFY_SOCKET, watchdog pings, SIGTERM in the middle of a call, SIGHUP and SIGUSR1."""

from __future__ import annotations

import itertools
import shlex
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile
from lxml import etree

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.service.lifecycle import ServiceLoop
from recorder.service.sdnotify import Notifier
from tests.helpers.api import request_xml
from tests.helpers.modem_emulator import ModemEmulator
from tests.helpers.recorders import BIN, RecorderProcess, Running

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "recorder.service"
INSTALLED_BIN = "/opt/recorder/bin/"  # where docs/systemd.md installs the venv
# How long a notification may take: only a hang bound, as RecorderProcess.wait_ready's. A
# loaded two-core machine has taken over 30 s to start recorderd (its imports).
WAIT = 90.0
PROCESS_FIXTURES = {"units"}  # recorderd started as the unit starts it (conftest.py)

CONFIG = """\
[api]
socket_port = 0
web_port = 0

[[boards]]
driver = "synthetic"
devices = ["1001", "1002", "1003", "1004"]

[terminology]
agent = "{agent}"
{blocked}
"""
BLOCKED = """
[[recording.blocked]]
name = "no recording of the test line"
ani = ["555*"]
"""


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def unit_command() -> list[str]:
    """The unit's ExecStart, with the installed venv's path mapped to this one."""
    (exec_start,) = unit_settings()["ExecStart"]
    command = shlex.split(exec_start)
    assert command[0].startswith(INSTALLED_BIN), exec_start
    return [str(BIN / command[0].removeprefix(INSTALLED_BIN)), *command[1:]]


class NotifySocket:
    """What systemd listens on for a Type=notify service: every datagram it receives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        # What a failed wait shows besides the messages (the unit's log, when it has one).
        self.context: Callable[[], str] = lambda: ""
        self._closed = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key: str, value: str | None = None, *, after: int = 0,
                 timeout: float = WAIT) -> int:
        """Index of the first message from ``after`` on that sets ``key`` (to ``value``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, fields) in enumerate(self.messages[after:], after):
                if key in fields and (value is None or fields[key] == value):
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} within {timeout} s: {self.messages}\n"
                             f"{self.context()}")

    def times(self, key: str) -> list[float]:
        return [when for when, fields in list(self.messages) if key in fields]

    def close(self) -> None:
        self._closed = True
        self.sock.close()


class Unit:
    """recorderd started as the unit starts it: its ExecStart, and the environment systemd
    gives it (NOTIFY_SOCKET, WATCHDOG_USEC, STATE_DIRECTORY, CONFIGURATION_DIRECTORY)."""

    def __init__(self, tmp_path: Path, watchdog_usec: int, *, agent: str = "Agent",
                 blocked: bool = False, extra: str = "", boards: str = "") -> None:
        self.extra = extra
        self.boards = boards
        self.state = tmp_path / "state"
        self.etc = tmp_path / "etc"
        self.state.mkdir()
        self.etc.mkdir()
        self.write_config(agent, blocked)
        self.notify = NotifySocket(tmp_path / "notify")
        command = unit_command()
        assert command[0] == str(BIN / "recorderd")
        env = {"NOTIFY_SOCKET": str(self.notify.path), "WATCHDOG_USEC": str(watchdog_usec),
               "STATE_DIRECTORY": str(self.state), "CONFIGURATION_DIRECTORY": str(self.etc),
               "RECORDER_CONFIG": ""}
        self.process = RecorderProcess(command[1:], env)
        self.notify.context = lambda: f"recorderd's log:\n{self.process.log}"
        self.running: Running | None = None

    def write_config(self, agent: str, blocked: bool) -> None:
        text = self.extra + CONFIG.format(agent=agent, blocked=BLOCKED if blocked else "")
        text += self.boards
        (self.etc / "recorder.toml").write_text(text, encoding="utf-8")

    def ready(self) -> Running:
        self.notify.wait_for("READY", "1")
        self.running = self.process.wait_ready()
        return self.running

    def signal(self, signum: int) -> None:
        self.process.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 40.0) -> int:
        code = self.process.proc.wait(timeout)
        self.process._reader.join(5)
        return code


@pytest.fixture
def units(tmp_path: Path) -> Iterator[Callable[..., Unit]]:
    started: list[Unit] = []

    def start(**kwargs: object) -> Unit:
        unit = Unit(tmp_path, **kwargs)  # type: ignore[arg-type]
        started.append(unit)
        return unit

    yield start
    for unit in started:
        if unit.process.proc.poll() is None:
            unit.process.proc.kill()
            unit.process.proc.wait(10)
        unit.notify.close()


@pytest.mark.slow
def test_ready_comes_once_everything_listens_then_watchdog_pings_and_stopping(
        units: Callable[..., Unit]) -> None:
    unit = units(watchdog_usec=2_000_000)
    ready_at = unit.notify.wait_for("READY", "1")
    ready = unit.notify.messages[ready_at][1]
    assert ready["MAINPID"] == str(unit.process.proc.pid)
    assert "channels" in ready["STATUS"], ready
    # READY means every port listens and every board runs: no retrying needed from here.
    running = unit.process.wait_ready()
    assert running.request("TEST").findtext("RESULTCODE") == "20"
    channels = running.request("CHANNELS", DETAIL="Y")
    states = [c.findtext("STATE") for c in channels.iter("CHANNEL")]
    assert len(states) == 4
    assert "Error" not in " ".join(s or "" for s in states)
    status, _ = running.web("", path="/webAPI.aspx")
    assert status == 200
    # Recorded under StateDirectory=, configured from ConfigurationDirectory=.
    assert (unit.state / "recorder.sqlite3").is_file()
    assert str(unit.etc / "recorder.toml") in unit.process.log

    # WatchdogSec=2 s: a ping every second while healthy, never 2 s without one.
    deadline = time.monotonic() + 5.0
    while len(unit.notify.times("WATCHDOG")) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    pings = unit.notify.times("WATCHDOG")
    assert len(pings) >= 4, unit.notify.messages
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 2.0, gaps
    assert min(gaps) > 0.5, gaps  # every WatchdogSec/2, not a flood

    count = len(unit.notify.messages)
    unit.signal(signal.SIGTERM)
    unit.notify.wait_for("STOPPING", "1", after=count)
    assert unit.wait_exit() == 0, unit.process.log
    assert "Traceback" not in unit.process.log


def modem_board(port: str) -> str:
    return f"""
[[boards]]
driver = "voicemodem"
port = "{port}"
devices = ["4001"]
command_timeout_seconds = 0.3
reopen_max_seconds = 0.5
"""


class SilentAfterSetUpProbe(dict[str, str | None]):
    """The emulated modem's answers: ATZ goes unanswered after the set-up recorderd runs when
    it creates the board (which must pass, or recorderd refuses to start), until released; so
    the board's driver keeps failing its set-up, as a modem that hangs after a reset does."""

    def __init__(self, modem: ModemEmulator) -> None:
        super().__init__()
        self.modem = modem
        self.released = False

    def __contains__(self, command: object) -> bool:
        return (command == "ATZ" and not self.released
                and self.modem.commands.count("ATZ") > 1)

    def __getitem__(self, command: str) -> str | None:
        return None


@pytest.mark.slow
def test_ready_waits_for_a_slow_modem_to_capture(units: Callable[..., Unit],
                                                 tmp_path: Path) -> None:
    with ModemEmulator(tmp_path / "modem") as modem:
        modem.answers = answers = SilentAfterSetUpProbe(modem)
        unit = units(watchdog_usec=5_000_000, boards=modem_board(modem.port))
        waiting = unit.notify.wait_for("STATUS")
        assert unit.notify.messages[waiting][1]["STATUS"].startswith(
            "starting: waiting for boards[1] (VoiceModemDriver)"), unit.notify.messages
        time.sleep(1.0)
        assert not unit.notify.times("READY")  # not while the modem cannot record
        released = time.monotonic()
        answers.released = True
        ready = unit.notify.wait_for("READY", "1")
        assert unit.notify.messages[ready][0] > released
        assert unit.notify.messages[ready][1]["STATUS"].endswith("; healthy")
        running = unit.ready()
        channels = running.request("CHANNELS", DETAIL="Y")
        states = {c.findtext("RECORDINGDEVICE"): c.findtext("STATE")
                  for c in channels.iter("CHANNEL")}
        assert len(states) == 5
        assert states["4001"] != "Error", etree.tostring(channels)
        unit.signal(signal.SIGTERM)
        assert unit.wait_exit() == 0, unit.process.log


@pytest.mark.slow
def test_a_board_that_never_runs_delays_ready_only_so_long_and_says_which(
        units: Callable[..., Unit], tmp_path: Path) -> None:
    with ModemEmulator(tmp_path / "modem") as modem:
        modem.answers = SilentAfterSetUpProbe(modem)
        unit = units(watchdog_usec=5_000_000, boards=modem_board(modem.port),
                     extra="[capture]\nboard_start_seconds = 1.0\n\n")
        ready = unit.notify.wait_for("READY", "1")
        status = unit.notify.messages[ready][1]["STATUS"]
        assert "boards[1] " in status, status
        assert status.endswith("; healthy")  # a board down is not a hang: no restart
        running = unit.ready()
        assert "not capturing after 1 s: boards[1] (VoiceModemDriver)" in unit.process.log
        # The other board records meanwhile.
        assert running.request("CALLSTART", 1, DEVICEID="1001").findtext("RESULTCODE") == "20"
        time.sleep(0.5)
        assert running.request("CALLSTOP", 2, DEVICEID="1001").findtext("RESULTCODE") == "20"
        (row,) = list(running.request("CALLLIST", 3, DEVICEID="1001").iter("SEARCHRESULT"))
        assert Path(row.findtext("FILENAME") or "").is_file()
        assert unit.notify.times("WATCHDOG")
        unit.signal(signal.SIGTERM)
        assert unit.wait_exit() == 0, unit.process.log


def test_sigterm_while_waiting_for_a_board_stops_without_claiming_ready(
        units: Callable[..., Unit], tmp_path: Path) -> None:
    with ModemEmulator(tmp_path / "modem") as modem:
        modem.answers = SilentAfterSetUpProbe(modem)
        unit = units(watchdog_usec=5_000_000, boards=modem_board(modem.port))
        unit.notify.wait_for("STATUS")  # "starting: waiting for boards[1] ..."
        started = time.monotonic()
        unit.signal(signal.SIGTERM)
        assert unit.wait_exit() == 0, unit.process.log
        assert time.monotonic() - started < 10  # not the whole board_start_seconds (15)
        unit.notify.wait_for("STOPPING", "1")
        assert not unit.notify.times("READY")
        assert "recorderd ready" not in unit.process.log


def _fields(event: etree._Element) -> dict[str, str]:
    data = event.find("EVENTDATA")
    assert data is not None
    return {child.tag: child.text or "" for child in data}


@pytest.mark.slow
def test_sigterm_in_the_middle_of_a_call_finishes_the_recording(
        units: Callable[..., Unit]) -> None:
    unit = units(watchdog_usec=5_000_000)
    running = unit.ready()
    events = running.connect()
    events.send(request_xml("EVENTS", 1, EVENTCLASS="ALL"))
    assert events.read_result().findtext("RESULTCODE") == "20"
    start = running.request("CALLSTART", 2, DEVICEID="1001", ANI="6145551212")
    assert start.findtext("RESULTCODE") == "20"
    # Two seconds of the call's own audio (and its pre-roll), not of the wall clock, which a
    # loaded machine's capture may lag.
    recorded = running.wait_recorded("1001", 2.5)
    unit.signal(signal.SIGTERM)
    assert unit.wait_exit() == 0, unit.process.log

    # Every event was sent before the connection closed.
    seen: list[tuple[str, dict[str, str]]] = []
    events.sock.settimeout(10)
    while True:
        try:
            line = events.read_line()
        except (ConnectionError, AssertionError, OSError):
            break
        if not line:
            break
        event = etree.fromstring(line)
        seen.append((event.findtext("EVENTTYPE") or "", _fields(event)))
    events.close()
    types = [t for t, _ in seen]
    assert "CALLSTOP" in types, types
    assert "RECORDINGSTOPPED" in types, types
    assert types.index("CALLSTOP") < types.index("RECORDINGSTOPPED")
    stopped = dict(seen)["RECORDINGSTOPPED"]
    assert stopped["ERRORREASON"] == "SHUTDOWN"

    # The row is complete (read straight from the database, before any restart could repair
    # it) and the file is a valid WAV as long as the row says.
    with sqlite3.connect(unit.state / "recorder.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM recordings").fetchall()
    assert len(rows) == 1
    row = rows[0]
    assert (row["status"], row["stop_reason"], row["device_id"]) == (
        "complete", "shutdown", "1001")
    assert recorded - 0.01 <= row["duration"] <= recorded + 2.0, (row["duration"], recorded)
    info = soundfile.info(row["filename"])
    assert info.samplerate == 8000
    assert abs(info.duration - row["duration"]) < 0.05
    assert Path(row["filename"]).is_relative_to(unit.state)
    assert "Traceback" not in unit.process.log


@pytest.mark.slow
def test_sigterm_with_every_channel_recording_mp3_leaves_every_file_whole(
        units: Callable[..., Unit]) -> None:
    unit = units(watchdog_usec=5_000_000, extra='[storage]\nformat = "mp3"\n\n')
    running = unit.ready()
    for i, device in enumerate(("1001", "1002", "1003", "1004")):
        assert running.request("CALLSTART", i, DEVICEID=device).findtext("RESULTCODE") == "20"
    recorded = {device: running.wait_recorded(device, 2.5)
                for device in ("1001", "1002", "1003", "1004")}
    unit.signal(signal.SIGTERM)
    assert unit.wait_exit() == 0, unit.process.log
    with sqlite3.connect(unit.state / "recorder.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM recordings ORDER BY device_id").fetchall()
    assert [r["device_id"] for r in rows] == ["1001", "1002", "1003", "1004"]
    for row in rows:
        assert (row["status"], row["stop_reason"]) == ("complete", "shutdown")
        assert row["filename"].endswith(".mp3")
        decoded = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", row["filename"], "-f", "s16le", "-ac", "1",
             "-ar", "8000", "-"], capture_output=True, check=True)
        assert not decoded.stderr, decoded.stderr
        seconds = len(decoded.stdout) / 2 / 8000
        # The encoder's priming and padding add a few ms; nothing is cut off.
        assert abs(seconds - row["duration"]) < 0.15, (seconds, row["duration"])
        assert row["duration"] >= recorded[row["device_id"]] - 0.01, (row["duration"], recorded)


@pytest.mark.slow
def test_sighup_reloads_terminology_and_filters_without_dropping_the_call(
        units: Callable[..., Unit]) -> None:
    unit = units(watchdog_usec=5_000_000, agent="Agent")
    running = unit.ready()

    def terminology() -> dict[str, str]:
        result = running.request("FETCHTERMINOLOGY")
        return {t.findtext("NAME") or "": t.findtext("VALUE") or ""
                for t in result.iter("TERMINOLOGY")}

    assert terminology()["agent"] == "Agent"
    assert running.request("CALLSTART", 1, DEVICEID="1001").findtext("RESULTCODE") == "20"
    time.sleep(1.0)
    unit.write_config(agent="Representative", blocked=True)
    count = len(unit.notify.messages)
    unit.signal(signal.SIGHUP)
    reloading = unit.notify.wait_for("RELOADING", "1", after=count)
    unit.notify.wait_for("READY", "1", after=reloading)
    assert terminology()["agent"] == "Representative", unit.process.log
    assert "only a restart applies" not in unit.process.log  # all of it was applied

    # The new blocked filter applies to the next call; the call in progress went on recording.
    assert running.request("CALLSTART", 2, DEVICEID="1002",
                           ANI="5551234").findtext("RESULTCODE") == "20"
    status = running.request("DEVICESTATUS", 3, DEVICEID="1002")
    assert status.findtext(".//RECORDING/ERRORREASON"), etree.tostring(status)
    time.sleep(1.0)
    for i, device in enumerate(("1001", "1002"), 4):
        assert running.request("CALLSTOP", i, DEVICEID=device).findtext("RESULTCODE") == "20"
    calls = running.request("CALLLIST", 6, DEVICEID="1001")
    (duration,) = [r.findtext("DURATION") for r in calls.iter("SEARCHRESULT")]
    assert duration is not None
    assert int(duration) >= 2  # one recording across the reload, not cut at it
    assert not list(running.request("CALLLIST", 7, DEVICEID="1002").iter("SEARCHRESULT"))

    # A config that no longer loads changes nothing.
    (unit.etc / "recorder.toml").write_text("[api]\nsocket_port = -1\n", encoding="utf-8")
    unit.signal(signal.SIGHUP)
    deadline = time.monotonic() + WAIT
    while "not reloaded" not in unit.process.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "not reloaded" in unit.process.log
    assert "api.socket_port" in unit.process.log
    index = unit.notify.wait_for("STATUS", after=reloading + 1)
    while not unit.notify.messages[index][1]["STATUS"].startswith("reload failed"):
        index = unit.notify.wait_for("STATUS", after=index + 1)
    assert "api.socket_port" in unit.notify.messages[index][1]["STATUS"]
    assert terminology()["agent"] == "Representative"
    unit.signal(signal.SIGTERM)
    assert unit.wait_exit() == 0, unit.process.log


def test_sigusr1_logs_every_threads_stack_and_the_service_carries_on(
        units: Callable[..., Unit]) -> None:
    unit = units(watchdog_usec=5_000_000)
    running = unit.ready()
    unit.signal(signal.SIGUSR1)
    deadline = time.monotonic() + WAIT
    while 'thread "api-loop"' not in unit.process.log and time.monotonic() < deadline:
        time.sleep(0.05)
    log = unit.process.log
    assert 'thread "MainThread"' in log
    assert 'thread "api-loop"' in log
    assert "threads in process" in log
    assert "in run" in log  # the main loop's own frame: where it waits
    assert running.request("TEST").findtext("RESULTCODE") == "20"
    unit.signal(signal.SIGTERM)
    assert unit.wait_exit() == 0, unit.process.log


def test_a_second_recorderd_on_the_same_data_directory_refuses_to_start(
        units: Callable[..., Unit], tmp_path: Path) -> None:
    unit = units(watchdog_usec=5_000_000)
    unit.ready()
    second = subprocess.run(
        unit_command(), check=False, capture_output=True, text=True, timeout=60,
        env={"STATE_DIRECTORY": str(unit.state), "CONFIGURATION_DIRECTORY": str(unit.etc),
             "PATH": "/usr/bin:/bin"})
    assert second.returncode == 1, second.stderr
    assert str(unit.process.proc.pid) in second.stderr
    unit.signal(signal.SIGTERM)
    assert unit.wait_exit() == 0


# -- the watchdog follows the core's health, in process ----------------------------------


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    config = config_from_dict({
        "storage": {"data_dir": str(tmp_path / "data")},
        "api": {"socket_port": 0, "web_port": 0},
        "boards": [{"driver": "synthetic", "devices": ["1001", "1002"]}],
    }, base_dir=tmp_path)
    rec = Recorder(config)
    rec.start()
    yield rec
    rec.stop()


@pytest.mark.slow
def test_a_hung_scheduler_stops_the_watchdog_pings_and_they_resume_when_it_recovers(
        recorder: Recorder, tmp_path: Path) -> None:
    notify = NotifySocket(tmp_path / "notify")
    clock = [1000.0]
    notifier = Notifier({"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"})
    loop = ServiceLoop(recorder, notifier, lambda: None, clock=lambda: clock[0])
    recorder.hung_after_seconds = 1.0

    def turn(seconds: float) -> None:
        clock[0] += seconds
        loop.tick()

    loop.started()
    notify.wait_for("WATCHDOG", "1")
    assert recorder.scheduler is not None
    lock = recorder.scheduler.table.lock
    release = threading.Event()

    def hang() -> None:  # the limits watch cannot take its turn while this holds its lock
        with lock:
            release.wait(WAIT)

    holder = threading.Thread(target=hang)
    holder.start()
    try:
        time.sleep(1.5)
        before = loop.pings
        for _ in range(3):
            turn(1.0)
        assert loop.pings == before
        index = notify.wait_for("STATUS", after=2)
        assert notify.messages[index][1]["STATUS"].startswith(
            "unhealthy: limits watch has not run for"), notify.messages
    finally:
        release.set()
        holder.join()
    deadline = time.monotonic() + WAIT
    while recorder.health() and time.monotonic() < deadline:
        time.sleep(0.05)
    turn(1.0)
    assert loop.pings == before + 1
    notify.close()


@pytest.mark.slow
def test_a_shutdown_stuck_past_its_deadline_logs_every_stack_and_gives_up(
        recorder: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    assert recorder.scheduler is not None
    lock = recorder.scheduler.table.lock
    stuck = threading.Event()

    def on_stuck() -> None:  # instead of exiting the test process: let the stop go on
        stuck.set()
        lock.release()

    loop = ServiceLoop(recorder, Notifier({}), lambda: None, stop_deadline=1.0,
                       on_stuck=on_stuck)
    lock.acquire()  # the scheduler cannot stop while this is held
    caplog.set_level("ERROR", logger="recorder.service.lifecycle")
    loop.shutdown()
    assert stuck.is_set()
    text = caplog.text
    assert "shutdown has not finished after 1 s" in text
    assert 'thread "MainThread"' in text
    assert "scheduler.py" in text  # where it is stuck
