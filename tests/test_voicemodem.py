"""The voicemodem driver: the V.253 protocol on its own, whole calls on an emulated modem, and a
call recorded end to end by the recorder with a line trigger."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.drivers.base import Driver, DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import VoiceModemBoardConfig
from recorder.drivers.v253 import V253Protocol
from recorder.drivers.v253stream import (
    ULAW_TO_INT16,
    AudioFormat,
    Timeline,
    choose_format,
    parse_vsm_list,
)
from recorder.errors import ConfigError, DriverError
from recorder.store.records import RecordingQuery
from tests.helpers import g711ref
from tests.helpers.audio import sox_info
from tests.helpers.modem_emulator import (
    Audio,
    CallerId,
    EndStream,
    Event,
    ModemEmulator,
    Pause,
    Ring,
    WaitForStream,
    incoming_call,
    shield,
    ulaw_encode,
)

RATE = 8000
K = LineEventKind
CALLER = CallerId(date="0321", time="1405", number="6145551212", name="DOE JOHN")
CALLER_DATA = {"DATE": "0321", "TIME": "1405", "NMBR": "6145551212", "NAME": "DOE JOHN"}
# Samples whose mu-law bytes are DLE (0x10) and ETX (0x03): DLE ETX unshielded would end the
# stream, so they must come through as data.
DLE_SAMPLE = int(ULAW_TO_INT16[0x10])
ETX_SAMPLE = int(ULAW_TO_INT16[0x03])


def speech_like(seconds: float, seed: int = 3) -> np.ndarray:
    """Voiced, syllabic, band-limited: like a talker, plus runs of the DLE and ETX samples."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = 140 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t), 0, 1)
    signal = 9000 * voice * envelope + rng.normal(0, 200, n)
    samples = np.clip(np.rint(signal), -32768, 32767).astype(np.int16)
    for at in range(500, n - 8, 997):
        samples[at:at + 6] = [DLE_SAMPLE, DLE_SAMPLE, ETX_SAMPLE, DLE_SAMPLE, 0, DLE_SAMPLE]
    return samples


def write_speech(path: Path, seconds: float) -> np.ndarray:
    samples = speech_like(seconds)
    soundfile.write(path, samples, RATE, subtype="PCM_16")
    return samples


def through_ulaw(samples: np.ndarray) -> np.ndarray:
    return ULAW_TO_INT16[np.frombuffer(ulaw_encode(samples), dtype=np.uint8)]


class StreamSink:
    """A DriverSink keeping audio and events in the one order they were delivered in."""

    def __init__(self) -> None:
        self.audio_blocks: list[np.ndarray] = []
        self.lost: list[int] = []
        self.events: list[tuple[int, LineEvent]] = []  # (sample position, event)
        self.states: list[tuple[DriverState, str]] = []
        self.position = 0
        self.changed = threading.Condition()

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        with self.changed:
            assert block.dtype == np.int16
            assert block.shape[1:] == (1,)
            self.position += lost_frames
            if lost_frames:
                self.audio_blocks.append(np.zeros(lost_frames, np.int16))
            self.audio_blocks.append(block[:, 0].copy())
            self.lost.append(lost_frames)
            self.position += block.shape[0]
            self.changed.notify_all()

    def line(self, event: LineEvent) -> None:
        with self.changed:
            self.events.append((self.position, event))
            self.changed.notify_all()

    def state(self, state: DriverState, detail: str = "") -> None:
        with self.changed:
            self.states.append((state, detail))
            self.changed.notify_all()

    def kinds(self) -> list[LineEventKind]:
        with self.changed:
            return [e.kind for _, e in self.events]

    def samples(self) -> np.ndarray:
        with self.changed:
            return np.concatenate(self.audio_blocks) if self.audio_blocks else np.zeros(0)

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def running(self) -> bool:
        return bool(self.states) and self.states[-1][0] is DriverState.RUNNING


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[ModemEmulator]:
    with ModemEmulator(tmp_path / "modem") as modem:
        yield modem


def modem_driver(emulator: ModemEmulator, **config: Any) -> Driver:
    return create_driver("boards[0]", VoiceModemBoardConfig(
        port=emulator.port, devices=("4001",), **config))


@pytest.fixture
def started(emulator: ModemEmulator) -> Iterator[Any]:
    """Start a driver on the emulator, following calls; stopped and joined afterwards."""
    drivers: list[Driver] = []

    def start(**config: Any) -> tuple[Driver, StreamSink]:
        driver = modem_driver(emulator, **config)
        sink = StreamSink()
        driver.start(sink)
        drivers.append(driver)
        assert sink.wait_for(sink.running, 10), sink.states
        return driver, sink

    yield start
    for driver in drivers:
        driver.stop()
        assert driver.join(10)


def between(sink: StreamSink, first: LineEventKind, last: LineEventKind) -> np.ndarray:
    """The audio delivered between the first event of one kind and the next of another."""
    begin = next(p for p, e in sink.events if e.kind is first)
    end = next(p for p, e in sink.events if e.kind is last and p >= begin)
    return sink.samples()[begin:end]


# --- the protocol, without a port ---------------------------------------------------------


class ListSink:
    def __init__(self) -> None:
        self.items: list[Any] = []

    def audio(self, block: np.ndarray, lost_frames: int = 0) -> None:
        self.items.extend(int(v) for v in block[:, 0])

    def line(self, event: LineEvent) -> None:
        self.items.append(event)

    def state(self, state: DriverState, detail: str = "") -> None:
        pass


def protocol(sink: ListSink, fmt: AudioFormat | None = None,
             caller_id: bool = True) -> V253Protocol:
    proto = V253Protocol("b", Timeline(sink, RATE, 160), caller_id=caller_id,
                         command_timeout=1.0, ring_timeout=5.0)
    if fmt is not None:
        proto.format = fmt
    proto.start_following()
    return proto


def test_mu_law_table_is_g711() -> None:
    """The driver's table and the emulator's encoder against G.711's own table, decoded by the
    tests' second copy (tests/helpers/g711ref.py; audioop is gone in Python 3.13)."""
    every_character = bytes(range(256))
    np.testing.assert_array_equal(ULAW_TO_INT16, g711ref.ulaw_decode(every_character))
    # The emulator's encoder: every character comes back as itself, but the negative zero
    # 0x7F, which a sample of 0 encodes as the positive one, 0xFF.
    again = ulaw_encode(g711ref.ulaw_decode(every_character))
    assert again == every_character.replace(b"\x7f", b"\xff"), "the emulator's encoder"
    # ... and every sample in G.711's range lands in the step around it: within half a step,
    # plus the 3 the 14-bit encoder drops (G.711 codes 14-bit samples; ours are 16-bit).
    every = np.arange(-4 * g711ref.FULL_SCALE_UNITS, 4 * g711ref.FULL_SCALE_UNITS + 1,
                      dtype=np.int16)
    codes = ulaw_encode(every)
    error = np.abs(g711ref.ulaw_decode(codes).astype(np.int32) - every)
    half_steps = np.array([g711ref.ulaw_half_step(c) for c in range(256)])
    assert (error <= half_steps[np.frombuffer(codes, dtype=np.uint8)] + 3).all()


@pytest.mark.parametrize("split", [1, 2, 3, 7, 1000])
def test_stream_unshields_dle_and_reports_codes_in_place(split: int) -> None:
    """DLE DLE is one data byte, DLE x an event at its place, however the reads split it."""
    sink = ListSink()
    proto = protocol(sink, caller_id=False)
    payload_a = bytes([0x10, 0x10, 0x03, 0x55, 0x10])  # data: DLE ETX U DLE
    payload_b = bytes([0x7F, 0x10, 0x10])
    wire = (b"\r\nRING\r\n\r\nCONNECT\r\n" + shield(payload_a) + b"\x10H" + shield(payload_b)
            + b"\x10b\x10\x03\r\nOK\r\n")
    for i in range(0, len(wire), split):
        proto.data_received(wire[i:i + split])
    decode = [int(ULAW_TO_INT16[b]) for b in payload_a], [int(ULAW_TO_INT16[b])
                                                            for b in payload_b]
    kinds = [i.kind if isinstance(i, LineEvent) else i for i in sink.items]
    assert kinds == [K.RING, *decode[0], K.OFF_HOOK, *decode[1], K.BUSY, K.END_OF_STREAM]
    assert proto.mode.name == "IDLE", "back in command mode after DLE ETX"


def test_sixteen_bit_linear_samples_may_straddle_reads() -> None:
    sink = ListSink()
    proto = protocol(sink, AudioFormat(2, "SIGNED PCM", "linear", 16, True), caller_id=False)
    samples = np.array([4112, -1, 16, 0x1010, -32768], dtype=np.int16)  # 4112 = 0x1010
    wire = b"RING\r\nCONNECT\r\n" + shield(samples.astype("<i2").tobytes()) + b"\x10\x03"
    for byte in wire:
        proto.data_received(bytes([byte]))
    assert sink.items == [LineEvent(0, K.RING), *samples.tolist(),
                          LineEvent(0, K.END_OF_STREAM)]


def test_caller_id_lines_between_rings_make_one_event() -> None:
    sink = ListSink()
    proto = protocol(sink)
    proto.data_received(b"\r\nRING\r\n\r\nDATE = 0321\r\nTIME=1405\r\nNMBR = 6145551212\r\n"
                        b"NAME = DOE JOHN\r\n")
    events = [i for i in sink.items if isinstance(i, LineEvent)]
    assert [e.kind for e in events] == [K.RING, K.CALLER_ID]
    assert dict(events[1].data) == CALLER_DATA
    assert proto.mode.name == "ENTERING", "voice receive starts once the caller ID is in"


VSM_ANSWERS = {
    "conexant": (['0,"SIGNED PCM",8,0,8000,0,0', '1,"UNSIGNED PCM",8,0,8000,0,0',
                  '4,"G711U",8,0,8000,0,0', '5,"G711A",8,0,8000,0,0',
                  '129,"IMA ADPCM",4,0,8000,0,0'], 4, 0),
    "usr": (['+VSM: 128,"8-BIT LINEAR",8,0,(7200,8000,11025),0,0',
             '+VSM: 130,"U-LAW",8,0,(8000),0,0'], 130, 128),
    "multitech": (['128,"SIGNED PCM",16,0,(7200-8000,11025),(127-129),(0-50)',
                   '131,"U-Log/Sun",8,0,(7200-8000),(128),(0-50)'], 131, 128),
    "rockwell": (['1,"UNSIGNED PCM",8,0,(7200,8000,11025),0,0',
                  '129,"IMA ADPCM",4,0,(7200,8000),0,0'], None, 1),
    "no 8 kHz": (['4,"ULAW",8,0,(11025),0,0'], None, None),
}


@pytest.mark.parametrize("name", list(VSM_ANSWERS))
def test_compression_is_chosen_by_name(name: str) -> None:
    lines, ulaw, linear = VSM_ANSWERS[name]
    formats = parse_vsm_list(lines)
    got_ulaw, got_linear = choose_format(formats, "ulaw"), choose_format(formats, "linear")
    assert (got_ulaw.method if got_ulaw else None) == ulaw
    assert (got_linear.method if got_linear else None) == linear


# --- whole calls on the emulated modem ------------------------------------------------------


@pytest.mark.slow
def test_a_whole_call_arrives_in_order_with_the_speech_exact(
        tmp_path: Path, emulator: ModemEmulator, started: Any) -> None:
    speech = write_speech(tmp_path / "speech.wav", 2.0)
    encoded = ulaw_encode(speech)
    assert b"\x10\x10" in encoded, "the test audio needs DLE bytes"
    assert b"\x10\x03" in encoded, "... and DLE ETX pairs, as data"
    _, sink = started()
    began, position0 = time.monotonic(), sink.position
    emulator.play(incoming_call(Audio.from_wav(tmp_path / "speech.wav").samples, CALLER))
    assert emulator.wait_done(20), emulator.errors
    assert sink.wait_for(lambda: K.END_OF_STREAM in sink.kinds(), 5), sink.kinds()
    assert emulator.errors == []

    assert sink.kinds() == [K.RING, K.CALLER_ID, K.RING, K.OFF_HOOK, K.LOOP_DROP,
                            K.END_OF_STREAM]
    events = [e for _, e in sink.events]
    assert dict(events[1].data) == CALLER_DATA
    assert dict(events[3].data) == {"source": "handset"}
    # Between off-hook and the loop-current drop: the speech, sample for sample.
    np.testing.assert_array_equal(between(sink, K.OFF_HOOK, K.LOOP_DROP), through_ulaw(speech))
    # The loop drop ended voice receive from the driver's side (DLE !), so the modem's own
    # on-hook code, after it, never came.
    assert "DLE !" in emulator.commands
    assert emulator.commands.count("AT+VRX") == 1
    # Audio kept pace with the clock all along, call or no call: as much of it as time passed
    # up to the end of the call (once a loaded machine has delivered it), never more.
    took = time.monotonic() - began
    assert sink.wait_for(lambda: sink.position - position0 >= (took - 0.3) * RATE, 10), (
        (sink.position - position0) / RATE, took)
    seconds = (sink.position - position0) / RATE
    assert seconds < time.monotonic() - began + 0.3, (seconds, took)
    assert sum(sink.lost) == 0
    assert all(s is not DriverState.ERROR for s, _ in sink.states)


@pytest.mark.slow
def test_linear_audio_is_chosen_from_the_list_and_arrives_unchanged(
        emulator: ModemEmulator, started: Any) -> None:
    speech = speech_like(1.0)
    _, sink = started(encoding="linear")
    assert "AT+VSM=2,8000" in emulator.commands, "16-bit signed PCM, found with AT+VSM=?"
    emulator.play(incoming_call(speech, CALLER, hang_up=[b"h"]))
    assert emulator.wait_done(20), emulator.errors
    assert sink.wait_for(lambda: K.END_OF_STREAM in sink.kinds(), 5), sink.kinds()
    assert sink.kinds() == [K.RING, K.CALLER_ID, K.RING, K.OFF_HOOK, K.ON_HOOK,
                            K.END_OF_STREAM]
    np.testing.assert_array_equal(between(sink, K.OFF_HOOK, K.ON_HOOK), speech)


@pytest.mark.slow
def test_line_codes_map_to_events(emulator: ModemEmulator, started: Any) -> None:
    """Silence and quiet are reported; an extension joining and leaving a call in progress
    changes nothing; dial tone ends the call; the line stays silent until the next ring."""
    _, sink = started(caller_id=False)
    tone = speech_like(0.2)
    emulator.play([Ring(), WaitForStream(), Event(b"P"), Audio(tone), Event(b"s"), Event(b"q"),
                   Event(b"H"), Event(b"P"), Audio(tone), Event(b"p"), Event(b"7"),
                   Event(b"d"), Pause(0.3), Event(b"h"), EndStream()])
    assert emulator.wait_done(20), emulator.errors
    assert sink.wait_for(lambda: K.END_OF_STREAM in sink.kinds(), 5), sink.kinds()
    assert sink.kinds() == [K.RING, K.OFF_HOOK, K.SILENCE, K.SILENCE, K.DIAL_TONE,
                            K.END_OF_STREAM]
    events = [e for _, e in sink.events]
    assert dict(events[1].data) == {"source": "extension"}
    assert [dict(e.data) for e in events[2:4]] == [{"kind": "silence"}, {"kind": "quiet"}]
    assert emulator.commands.count("AT+VRX") == 1, "the first ring starts receive without CID"


@pytest.mark.slow
def test_an_unanswered_call_is_given_up(emulator: ModemEmulator, started: Any) -> None:
    _, sink = started(ring_timeout_seconds=1.0)
    emulator.play([Ring(), Pause(0.2), CALLER, WaitForStream(), Pause(0.4), Ring()])
    assert emulator.wait_done(10), emulator.errors
    assert sink.wait_for(lambda: K.END_OF_STREAM in sink.kinds(), 5), sink.kinds()
    assert sink.kinds() == [K.RING, K.CALLER_ID, K.RING, K.END_OF_STREAM]
    assert "DLE !" in emulator.commands
    # The stream gave way to silence paced by the clock: it keeps coming, and never faster
    # than the clock (a loaded machine may only make it come later).
    began, frames = time.monotonic(), sink.position
    assert sink.wait_for(lambda: sink.position - frames >= RATE // 2, 10), sink.position
    assert time.monotonic() - began > 0.5 - 0.15


@pytest.mark.slow
def test_a_stream_the_modem_ends_mid_call_is_restarted(
        emulator: ModemEmulator, started: Any) -> None:
    _, sink = started(caller_id=False)
    part = speech_like(0.3)
    emulator.play([Ring(), WaitForStream(), Event(b"H"), Audio(part), EndStream(),
                   Pause(0.1), WaitForStream(), Audio(part), Event(b"h")])
    assert emulator.wait_done(20), emulator.errors
    assert sink.wait_for(lambda: sink.kinds().count(K.END_OF_STREAM) == 2, 5), sink.kinds()
    assert sink.kinds() == [K.RING, K.OFF_HOOK, K.END_OF_STREAM, K.OFF_HOOK, K.ON_HOOK,
                            K.END_OF_STREAM]
    assert dict(sink.events[3][1].data) == {"source": "resumed"}
    assert emulator.commands.count("AT+VRX") == 2


@pytest.mark.slow
def test_a_modem_lost_during_a_call_ends_the_stream_and_comes_back(
        emulator: ModemEmulator, started: Any) -> None:
    _, sink = started(caller_id=False, reopen_max_seconds=0.5)
    emulator.play([Ring(), WaitForStream(), Event(b"H"), Audio(speech_like(3.0))])
    assert sink.wait_for(lambda: K.OFF_HOOK in sink.kinds(), 10), sink.kinds()
    time.sleep(0.3)
    emulator.lose()
    assert sink.wait_for(lambda: any(s is DriverState.ERROR for s, _ in sink.states), 5)
    assert sink.kinds() == [K.RING, K.OFF_HOOK, K.END_OF_STREAM]
    assert dict(sink.events[-1][1].data) == {"reason": "device lost"}
    emulator.restore()
    assert sink.wait_for(sink.running, 10), sink.states
    assert sink.wait_for(lambda: sum(sink.lost) > 0, 5), "the time away is reported as lost"


# --- AT errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "config", "message"), [
    ({"AT+VLS=1": "ERROR"}, {}, r"boards\[0\]: .*: the modem answered ERROR to AT\+VLS=1"),
    ({"AT+FCLASS=8": "+CME ERROR: 4"}, {},
     r"answered \+CME ERROR: 4 to AT\+FCLASS=8"),
    ({"AT+VCID=1": None}, {"command_timeout_seconds": 0.3},
     r"no answer to AT\+VCID=1 within 0.3 s"),
    ({}, {"init": ("AT+VGR=128",)}, r"answered ERROR to AT\+VGR=128"),
])
def test_an_at_error_names_the_command(emulator: ModemEmulator, answers: dict[str, str | None],
                                       config: dict[str, Any], message: str) -> None:
    emulator.answers.update(answers)
    with pytest.raises(DriverError, match=message):
        modem_driver(emulator, **config)


def test_voicemodem_keys_are_checked() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"boards": [{"driver": "voicemodem", "port": "/dev/ttyACM0",
                                      "devices": ["1"], "line_select": 300,
                                      "encoding": "alaw"}]})
    assert set(caught.value.problems) == {
        "boards[0].line_select: 300 is out of range [0, 255]",
        "boards[0].encoding: 'alaw' is not one of ulaw, linear",
    }


def test_a_modem_without_the_encoding_is_refused(tmp_path: Path) -> None:
    with ModemEmulator(tmp_path / "m", vsm=['1,"UNSIGNED PCM",8,0,8000,0,0']) as modem, \
            pytest.raises(DriverError, match=r"offers no ulaw method at 8000 Hz .*UNSIGNED PCM"):
        modem_driver(modem)


def test_a_port_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DriverError, match=r"boards\[0\]\.port: cannot open .*nothing-here"):
        create_driver("boards[0]", VoiceModemBoardConfig(
            port=str(tmp_path / "nothing-here"), devices=("1",)))


@pytest.mark.slow
def test_an_at_error_after_reopening_is_reported_and_retried(
        emulator: ModemEmulator, started: Any) -> None:
    _, sink = started(reopen_max_seconds=0.5)
    emulator.lose()
    emulator.answers["AT+FCLASS=8"] = "ERROR"
    emulator.restore()
    assert sink.wait_for(lambda: any("answered ERROR to AT+FCLASS=8" in d
                                     for s, d in sink.states if s is DriverState.ERROR), 10), \
        sink.states
    del emulator.answers["AT+FCLASS=8"]
    assert sink.wait_for(sink.running, 10), sink.states
    # The first block after coming back carries the time away as lost frames.
    assert sink.wait_for(lambda: sum(sink.lost) > 0.5 * RATE, 5), sink.lost


# --- end to end: a call recorded by the line trigger ------------------------------------------


@pytest.mark.slow
def test_a_call_on_the_line_is_recorded_end_to_end(tmp_path: Path,
                                                    emulator: ModemEmulator) -> None:
    speech = write_speech(tmp_path / "speech.wav", 2.0)
    config = config_from_dict({
        "storage": {"data_dir": str(tmp_path / "data")},
        "api": {"socket_port": 0, "web_port": 0},
        "boards": [{"driver": "voicemodem", "port": emulator.port, "devices": ["4001"],
                    "trigger": "line"}],
    })
    recorder = Recorder(config)
    recorder.start()
    try:
        assert recorder.capture is not None
        assert recorder.store is not None
        board = recorder.capture.boards[0]
        deadline = time.monotonic() + 10
        while board.driver_state is not DriverState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert board.driver_state is DriverState.RUNNING
        emulator.play(incoming_call(Audio.from_wav(tmp_path / "speech.wav").samples, CALLER))
        assert emulator.wait_done(20), emulator.errors
        store = recorder.store.recordings
        deadline = time.monotonic() + 15
        rows = []
        while time.monotonic() < deadline:
            rows = store.list_recordings(RecordingQuery(equals={"DEVICEID": "4001"}))
            if rows and all(r.status == "complete" for r in rows):
                break
            time.sleep(0.1)
    finally:
        recorder.stop()
    assert len(rows) == 1, rows
    row = rows[0]
    assert row.status == "complete"
    assert row.meta.get("ANI") == CALLER.number
    assert row.meta.get("CALLDIRECTION") == "I"

    recorded, rate = soundfile.read(row.filename, dtype="int16")
    assert rate == RATE
    preroll = round(config.capture.preroll_seconds * RATE)
    expected = len(speech) + preroll  # off-hook .. loop drop, plus the pre-roll
    assert abs(len(recorded) - expected) < 0.05 * RATE, (len(recorded), expected)
    assert abs(float(sox_info(row.filename)["-D"]) - expected / RATE) < 0.05
    # The speech is in it where the call was: correlate the source with the recording.
    source = through_ulaw(speech).astype(np.float64)
    got = recorded.astype(np.float64)
    corr = np.correlate(got, source, mode="valid")
    lag = int(np.argmax(corr))
    assert abs(lag - preroll) < 0.02 * RATE, lag
    window = got[lag:lag + len(source)]
    r = np.corrcoef(window, source[:len(window)])[0, 1]
    assert r > 0.99, r
    assert np.abs(got[:max(0, lag - 80)]).max(initial=0) < 100, "silence before off-hook"
