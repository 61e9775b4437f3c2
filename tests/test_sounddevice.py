"""The sounddevice driver for real: PortAudio recording a PulseAudio null sink the tests start.

A tone played into the sink with ``paplay`` must come out of the driver (and out of a whole
recorder's WAV file) at its frequency and level; configuration mistakes must be DriverErrors
naming their key; the loss arithmetic is checked on its own with made-up PortAudio times.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.drivers.base import Block, DriverState
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SoundDeviceBoardConfig
from recorder.drivers.sounddevice import SETTLE_SECONDS, _Capture
from recorder.errors import DriverError
from tests.helpers.api import ApiConnection, result_code
from tests.helpers.audio import sox_info
from tests.helpers.contract import RecordingSink
from tests.helpers.pulseaudio import (
    PulseServer,
    peak_hz,
    rms_dbfs,
    tone_part,
    without_portaudio,
    write_tone,
)
from tests.helpers.recorders import BIN, write_toml

RATE = 8000
TONE_HZ = 1000.0
TONE_DBFS = -12.0  # peak level of the sine, so about -15 dBFS RMS


def board(**keys: object) -> SoundDeviceBoardConfig:
    values: dict[str, object] = {"device": "pulse", "devices": ("3001",), "channels": 1}
    values.update(keys)
    return SoundDeviceBoardConfig(**values)


def running(sink: RecordingSink, timeout: float = 15.0) -> bool:
    return sink.wait_for(lambda: sink.last_state() is DriverState.RUNNING and bool(sink.blocks),
                         timeout)


def played_level(path: Path) -> float:
    samples, _ = soundfile.read(path, dtype="int16")
    return rms_dbfs(tone_part(samples, RATE))


@pytest.mark.slow
def test_a_tone_played_into_the_sink_is_captured_at_its_frequency_and_level(
        pulse: PulseServer, tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav", TONE_HZ, TONE_DBFS, seconds=1.5)
    driver = create_driver("boards[0]", board(devices=("3001", "3002"), channels=2))
    sink = RecordingSink()
    driver.start(sink)
    try:
        assert running(sink), sink.states
        pulse.play(tone)
        time.sleep(0.3)  # the tail of the tone is still on its way through PulseAudio
    finally:
        driver.stop()
        assert driver.join(10)
    captured = np.concatenate(sink.blocks)
    assert captured.dtype == np.int16
    assert captured.shape[1] == 2
    expected = played_level(tone)
    for channel in range(2):
        part = tone_part(captured[:, channel], RATE)
        assert 1.1 < len(part) / RATE < 1.5, f"channel {channel + 1}: {len(part) / RATE} s of tone"
        assert abs(peak_hz(part, RATE) - TONE_HZ) <= 20
        assert abs(rms_dbfs(part) - expected) <= 3.0, (rms_dbfs(part), expected)
    assert sink.last_state() is DriverState.STOPPED
    assert sum(sink.lost) == 0


@pytest.mark.slow
def test_the_device_can_be_named_by_index(pulse: PulseServer) -> None:
    import sounddevice  # noqa: PLC0415 - the list as the driver left it, after its refresh

    by_name = create_driver("boards[0]", board())
    index = by_name.device["index"]
    assert sounddevice.query_devices(index)["name"] == "pulse"
    driver = create_driver("boards[0]", board(device=str(index)))
    assert driver.device["name"] == "pulse"
    sink = RecordingSink()
    driver.start(sink)
    try:
        assert running(sink), sink.states
    finally:
        driver.stop()
        assert driver.join(10)


def test_an_unknown_device_names_its_key_and_lists_the_input_devices(pulse: PulseServer) -> None:
    with pytest.raises(DriverError, match=r"^boards\[2\]\.device: no input device matches "
                                          r"'no-such-card'; input devices: .*\[\d+\] pulse "):
        create_driver("boards[2]", board(device="no-such-card"))
    with pytest.raises(DriverError, match=r"^boards\[2\]\.device: no input device has index 999"):
        create_driver("boards[2]", board(device="999"))


def test_more_channels_than_the_device_has_names_the_channels_key(pulse: PulseServer) -> None:
    devices = tuple(str(4000 + i) for i in range(40))  # the pulse device offers 32
    with pytest.raises(DriverError, match=r"^boards\[1\]\.channels: .*'pulse' has 32 input "
                                          r"channel\(s\), 40 configured"):
        create_driver("boards[1]", board(devices=devices, channels=40))


def test_recorderd_check_config_reports_an_unknown_device(pulse: PulseServer,
                                                          tmp_path: Path) -> None:
    path = write_toml(tmp_path / "recorder.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"

[[boards]]
driver = "sounddevice"
device = "no-such-card"
devices = ["3001"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78, done.stdout + done.stderr
    assert "boards[0].device: no input device matches 'no-such-card'" in done.stderr
    assert "pulse" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.process
def test_a_missing_portaudio_library_is_a_driver_error_naming_libportaudio2(
        tmp_path: Path) -> None:
    # A machine without libportaudio2: ctypes finds no library, so importing sounddevice
    # raises OSError("PortAudio library not found"), as it would there.
    config = write_toml(tmp_path / "recorder.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"

[[boards]]
driver = "sounddevice"
devices = ["3001"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--check-config", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=without_portaudio(tmp_path))
    assert done.returncode == 78, done.stdout + done.stderr
    assert "boards[0]: the sounddevice driver needs the PortAudio library" in done.stderr
    assert "libportaudio2" in done.stderr
    assert "Traceback" not in done.stderr


class StallingSink(RecordingSink):
    """Holds the audio thread once, like a consumer that stalls."""

    def __init__(self, after_blocks: int, seconds: float) -> None:
        super().__init__()
        self.after_blocks = after_blocks
        self.seconds = seconds
        self.arrivals: list[float] = []

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        self.arrivals.append(time.monotonic())
        super().audio(block, lost_frames)
        if len(self.arrivals) == self.after_blocks:
            time.sleep(self.seconds)


@pytest.mark.slow
def test_a_stall_that_pulseaudio_buffers_loses_nothing(pulse: PulseServer) -> None:
    # PulseAudio keeps what the stalled client did not read, so nothing may be reported lost,
    # and the audio delivered still adds up to the time that passed.
    driver = create_driver("boards[0]", board(block_ms=20))
    sink = StallingSink(after_blocks=150, seconds=0.6)  # 3 s in: past SETTLE_SECONDS
    driver.start(sink)
    try:
        assert sink.wait_for(lambda: len(sink.blocks) >= 250, 30), sink.states
    finally:
        driver.stop()
        assert driver.join(10)
    assert sum(sink.lost) == 0, [(i, n) for i, n in enumerate(sink.lost) if n]
    # Each block's arrival against the audio before it. A loaded machine only ever delays an
    # arrival, so the least lag on either side of the stall is the stream's own latency: the
    # same after the stall as before it if nothing was lost, 0.6 s more if the stall was.
    starts = np.cumsum([0] + [b.shape[0] for b in sink.blocks[:-1]]) / RATE
    lag = np.array(sink.arrivals[:len(starts)]) - sink.arrivals[0] - starts
    before, after = lag[:sink.after_blocks].min(), lag[sink.after_blocks:].min()
    assert abs(after - before) < 0.15, (before, after)


class FailingSink(RecordingSink):
    """Raises from audio() once, as a broken consumer would."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.calls = 0

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("sink exploded")
        super().audio(block, lost_frames)


@pytest.mark.slow
def test_a_failing_callback_ends_the_stream_and_the_driver_reopens_it(
        pulse: PulseServer) -> None:
    before = set(threading.enumerate())
    driver = create_driver("boards[0]", board(reopen_max_seconds=1.0))
    sink = FailingSink(fail_at=20)
    driver.start(sink)
    try:
        assert sink.wait_for(lambda: any(s is DriverState.ERROR for s, _ in sink.states), 15)
        errors = [d for s, d in sink.states if s is DriverState.ERROR]
        assert "the capture callback failed" in errors[0]
        assert "sink exploded" in errors[0]
        assert sink.wait_for(lambda: sink.last_state() is DriverState.RUNNING
                             and len(sink.states) >= 4, 30), sink.states
        resumed = sink.frames()
        assert sink.wait_for(lambda: sink.frames() > resumed + RATE // 2, 15)
        assert [s for s, _ in sink.states][:4] == [
            DriverState.RUNNING, DriverState.ERROR, DriverState.RESETTING, DriverState.RUNNING]
        # The reopened stream's first block carries the time the device was away.
        assert sum(sink.lost) > 0
    finally:
        driver.stop()
        assert driver.join(10)
    assert set(threading.enumerate()) - before == set()


# --- the loss arithmetic, with made-up PortAudio times (no device) ------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flags:
    def __init__(self, overflow: bool = False) -> None:
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


class Abort(Exception):
    pass


def feed(capture: _Capture, clock: FakeClock, adc: float, *, arrival_step: float = 0.02,
         frames: int = 160, overflow: bool = False) -> None:
    clock.now += arrival_step
    block: Block = np.zeros((frames, 1), np.int16)
    capture.callback(block, frames, SimpleNamespace(inputBufferAdcTime=adc), Flags(overflow))


def settled(resume_from: float | None = None) -> tuple[_Capture, RecordingSink, FakeClock, float]:
    """A capture past its settling time, and the ADC time of its next block."""
    sink, clock = RecordingSink(), FakeClock()
    capture = _Capture(sink, RATE, 160, Abort, resume_from=resume_from, clock=clock)
    adc = 5000.0
    for _ in range(round(SETTLE_SECONDS * RATE / 160) + 1):
        feed(capture, clock, adc)
        adc += 0.02
    return capture, sink, clock, adc


def test_an_adc_time_jump_is_reported_as_lost_frames() -> None:
    capture, sink, clock, adc = settled()
    feed(capture, clock, adc + 0.5, arrival_step=0.55, overflow=True)
    assert sink.lost[-1] == 4000  # 0.5 s at 8 kHz
    assert capture.overflows == 1
    feed(capture, clock, adc + 0.52)
    assert sink.lost[-1] == 0


def test_adc_jitter_and_a_wall_clock_step_are_not_losses() -> None:
    capture, sink, clock, adc = settled()
    feed(capture, clock, adc + 0.04)  # a block late: jitter
    feed(capture, clock, adc + 0.04)  # and the next one early
    feed(capture, clock, adc + 3600.06)  # NTP stepped the clock; only 20 ms really passed
    feed(capture, clock, adc + 3600.08)
    assert sum(sink.lost) == 0


def test_adc_gaps_while_a_stream_settles_are_ignored() -> None:
    sink, clock = RecordingSink(), FakeClock()
    capture = _Capture(sink, RATE, 160, Abort, clock=clock)
    feed(capture, clock, 100.0)
    feed(capture, clock, 100.5, arrival_step=0.5)
    assert sum(sink.lost) == 0


def test_the_first_block_after_a_reopen_carries_the_time_away() -> None:
    clock = FakeClock()
    sink = RecordingSink()
    capture = _Capture(sink, RATE, 160, Abort, resume_from=clock.now, clock=clock)
    feed(capture, clock, 0.0, arrival_step=3.02)  # 3 s away, then a 20 ms block
    assert sink.lost == [24000]
    feed(capture, clock, 0.0)
    assert sink.lost[-1] == 0


def test_a_sink_error_aborts_the_stream_and_is_kept_for_the_supervisor() -> None:
    class Broken(RecordingSink):
        def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
            raise ValueError("broken sink")

    clock = FakeClock()
    capture = _Capture(Broken(), RATE, 160, Abort, clock=clock)
    with pytest.raises(Abort):
        feed(capture, clock, 1.0)
    assert isinstance(capture.failure, ValueError)


# --- the whole recorder ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_recorder_records_a_tone_from_the_sound_card(pulse: PulseServer,
                                                         tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav", TONE_HZ, TONE_DBFS, seconds=2.0)
    config = config_from_dict({
        "storage": {"data_dir": str(tmp_path / "data")},
        "api": {"socket_port": 0, "web_port": 0},
        "boards": [{"driver": "sounddevice", "device": "pulse", "devices": ["3001"]}],
    })
    recorder = Recorder(config)
    recorder.start()
    try:
        assert recorder.api is not None
        assert recorder.capture is not None
        capture_board = recorder.capture.boards[0]
        deadline = time.monotonic() + 15
        while capture_board.driver_state is not DriverState.RUNNING:
            assert time.monotonic() < deadline, "the sound card never ran"
            time.sleep(0.05)
        conn = ApiConnection(recorder.api.socket_address[1])
        try:
            assert result_code(conn.request("CALLSTART", 1, deviceid="3001", ani="6145551212")) \
                == 20
            began = time.monotonic()
            time.sleep(0.3)
            pulse.play(tone)
            time.sleep(0.5)
            assert result_code(conn.request("CALLSTOP", 2, deviceid="3001")) == 20
            lasted = time.monotonic() - began
            found = conn.request("CALLLIST", 3, deviceid="3001").find("SEARCHRESULT")
        finally:
            conn.close()
    finally:
        recorder.stop()
    assert found is not None
    filename = found.findtext("FILENAME") or ""
    info = sox_info(filename)
    assert (info["-r"], info["-c"], info["-b"], info["-e"]) == (
        "8000", "1", "16", "Signed Integer PCM")
    preroll = config.capture.preroll_seconds
    assert lasted + preroll - 0.5 < float(info["-D"]) < lasted + preroll + 0.5, (info, lasted)
    recorded, rate = soundfile.read(filename, dtype="int16")
    assert rate == RATE
    part = tone_part(recorded, RATE)
    assert 1.6 < len(part) / RATE < 2.0, f"{len(part) / RATE} s of tone"
    assert abs(peak_hz(part, RATE) - TONE_HZ) <= 20
    assert abs(rms_dbfs(part) - played_level(tone)) <= 3.0
