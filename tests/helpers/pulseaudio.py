"""A PulseAudio null sink standing in for a sound card, behind real PortAudio.

The tests start their own PulseAudio daemon (CI runs on a fresh machine, as root, where nothing
else would): ``pulseaudio`` in the foreground as a child of the test process, with its runtime
directory, home and cookie in a temporary directory, loading only a null sink at 8 kHz and the
native protocol on a unix socket. The test process reaches it through PULSE_SERVER, so the ALSA
``pulse`` device (libasound2-plugins) that PortAudio lists records the sink's monitor, and
``paplay`` plays test tones into the sink.

Being the daemon's parent (rather than ``pulseaudio -D``) lets the tests kill it and reap it at
once: a killed daemon is the device loss of the contract suite, and a new one can start right
away without tripping over the old one's pid file.

One daemon serves each test process: the whole session, or one xdist worker (each worker
starts its own, in a directory of its own, so they never share a sink). conftest.py's
``pulse`` fixture gives it to a test, starting it on first use; ``stop_shared_pulse`` stops it
at the end of the session if any test started it. A daemon that cannot start fails the test
with its log: CI must really record through it, never skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SoundDeviceBoardConfig
from tests.helpers.contract import Harness

SINK = "nullsink"
SOURCE = f"{SINK}.monitor"
RATE = 8000
START_TIMEOUT = 15.0
COMMAND_TIMEOUT = 15.0
# The client side of the daemon, set in this process's environment while it runs (libpulse in
# the ALSA pulse plugin reads them when PortAudio opens a stream).
CLIENT_VARS = ("PULSE_SERVER", "PULSE_COOKIE", "PULSE_CLIENTCONFIG")


class PulseError(RuntimeError):
    """The PulseAudio daemon could not be started or driven."""


class PulseServer:
    """One PulseAudio daemon with a null sink, owned by this process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "runtime"
        self.home = root / "home"
        self.log_path = root / "pulseaudio.log"
        self.client_config = root / "client.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def socket(self) -> Path:
        return self.runtime / "pulse" / "native"

    @property
    def client_env(self) -> dict[str, str]:
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_COOKIE": str(self.home / ".config" / "pulse" / "cookie"),
            # A client that finds no server must not spawn one of its own (with a default
            # set-up) while a test has the daemon killed on purpose.
            "PULSE_CLIENTCONFIG": str(self.client_config),
        }

    def _env(self) -> dict[str, str]:
        return {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "HOME": str(self.home),
                **self.client_env}

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        """Start the daemon and wait until it answers; raises PulseError with its log."""
        if self.running:
            return
        exe = shutil.which("pulseaudio")
        if exe is None or shutil.which("pactl") is None:
            raise PulseError("pulseaudio/pactl not installed (apt-get install pulseaudio "
                             "pulseaudio-utils libasound2-plugins)")
        for d in (self.runtime, self.home):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.client_config.write_text("autospawn = no\n")
        with self.log_path.open("ab") as log:
            # Root is told it should use --system, but a per-user daemon works as root and
            # keeps everything in our directory. -n: no default.pa, only what we load.
            self.proc = subprocess.Popen(
                [exe, "-n", "--daemonize=no", "--use-pid-file=no", "--exit-idle-time=-1",
                 "--realtime=no", "--high-priority=no", "--log-target=stderr",
                 f"--load=module-null-sink sink_name={SINK} rate={RATE}",
                 "--load=module-native-protocol-unix"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env())
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise PulseError(f"pulseaudio exited with status {self.proc.returncode}:\n"
                                 f"{self.log()}")
            if self._pactl_ok("info"):
                break
            if time.monotonic() > deadline:
                self.kill()
                raise PulseError(f"pulseaudio did not answer within {START_TIMEOUT} s:\n"
                                 f"{self.log()}")
            time.sleep(0.05)
        # Recorded levels must equal played levels: both ends at 100 %, and the monitor is
        # what an application gets by default.
        self.pactl("set-sink-volume", SINK, "100%")
        self.pactl("set-source-volume", SOURCE, "100%")
        self.pactl("set-default-source", SOURCE)

    def kill(self) -> None:
        """Kill the daemon (SIGKILL, like a card pulled out) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(COMMAND_TIMEOUT)
        self.proc = None

    def stop(self) -> None:
        """Stop the daemon cleanly (SIGTERM), killing it if it does not go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(COMMAND_TIMEOUT)
        self.proc = None

    def _pactl_ok(self, *args: str) -> bool:
        try:
            return subprocess.run(["pactl", *args], env=self._env(), capture_output=True,
                                  timeout=COMMAND_TIMEOUT, check=False).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self._env(), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT, check=False)
        if done.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)}: {done.stderr.strip()}\n{self.log()}")
        return done.stdout

    def play(self, path: Path, timeout: float = 30.0) -> None:
        """Play a sound file into the null sink and wait until it has been played."""
        done = subprocess.run(["paplay", f"--device={SINK}", str(path)], env=self._env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise PulseError(f"paplay {path}: {done.stderr.strip()}\n{self.log()}")


# --- this process's daemon --------------------------------------------------------------------

_shared: PulseServer | None = None
_saved_env: dict[str, str | None] = {}


def shared_pulse() -> PulseServer:
    """The session's daemon, started on first use (and again if a test left it killed)."""
    global _shared  # noqa: PLW0603 - one daemon per test session
    if _shared is None:
        server = PulseServer(Path(tempfile.mkdtemp(prefix="recorder-pulse-")))
        for name, value in server.client_env.items():
            _saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        _shared = server
    try:
        _shared.start()
    except (PulseError, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot start PulseAudio for the sounddevice tests: {exc}", pytrace=False)
    return _shared


def stop_shared_pulse() -> None:
    global _shared
    if _shared is None:
        return
    server, _shared = _shared, None
    server.stop()
    for name, value in _saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved_env.clear()
    shutil.rmtree(server.root, ignore_errors=True)


# --- audio the tests play and check ----------------------------------------------------------


def write_tone(path: Path, hz: float = 1000.0, dbfs: float = -12.0, seconds: float = 2.0,
               rate: int = RATE) -> Path:
    """A sine of peak level ``dbfs`` as a 16-bit mono WAV, with 10 ms fades against clicks."""
    n = round(seconds * rate)
    t = np.arange(n) / rate
    wave = 10 ** (dbfs / 20) * np.sin(2 * np.pi * hz * t)
    fade = min(n // 2, rate // 100)
    ramp = np.linspace(0.0, 1.0, fade)
    wave[:fade] *= ramp
    wave[n - fade:] *= ramp[::-1]
    soundfile.write(path, wave, rate, subtype="PCM_16")
    return path


def rms_dbfs(samples: np.ndarray) -> float:
    x = samples.astype(np.float64) / 32768
    return float(20 * np.log10(max(float(np.sqrt(np.mean(x ** 2))), 1e-12)))


def peak_hz(samples: np.ndarray, rate: int) -> float:
    x = samples.astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def tone_part(samples: np.ndarray, rate: int, threshold_dbfs: float = -40.0,
              trim_seconds: float = 0.1) -> np.ndarray:
    """The loud part of a mono recording (where the tone played), its edges trimmed."""
    window = rate // 50
    whole = len(samples) // window * window
    levels = np.array([rms_dbfs(w) for w in samples[:whole].reshape(-1, window)])
    loud = np.nonzero(levels > threshold_dbfs)[0]
    if not len(loud):
        return samples[:0]
    trim = round(trim_seconds * rate)
    start, end = loud[0] * window + trim, (loud[-1] + 1) * window - trim
    return samples[start:max(start, end)]


# --- the driver contract suite's harness -----------------------------------------------------


def sounddevice_board(tmp_path: Path) -> Iterator[Harness]:
    """The sounddevice driver on PulseAudio's ALSA device; losing it kills the daemon."""
    server = shared_pulse()
    driver = create_driver("boards[0]", SoundDeviceBoardConfig(
        device="pulse", devices=("3001", "3002"), channels=2, reopen_max_seconds=2.0))

    def restore() -> None:
        server.start()

    # A test that lost the device without restoring it leaves the next one a running daemon.
    yield Harness(driver, lose=server.kill, restore=restore, close=restore)


def without_portaudio(tmp_path: Path) -> dict[str, str]:
    """The environment of a process on a machine without libportaudio2: ctypes finds no
    PortAudio library (a sitecustomize hides it), so importing sounddevice fails as it would
    there."""
    hide = tmp_path / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(
        "import ctypes.util\n"
        "_find = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: None if 'portaudio' in name else _find(name)\n")
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(hide)}

