"""Conversations written from the text of ITU-T V.253 (and V.250 for command lines and result
codes), not from the driver: what a V.253 DCE says, byte for byte, and what the standard
requires the DTE to answer. They run the driver's protocol (``V253Protocol``) with a transport
that keeps what the driver writes, and decode the audio with the tests' own G.711 table
(tests/helpers/g711ref.py), so neither the driver nor tests/helpers/modem_emulator.py is the
reference here.

What the standard says, as these tests use it:

- V.250: a command line is ``AT`` ... ended by CR (S3); a verbose result code is sent as
  CR LF <text> CR LF (``OK``, ``CONNECT``, ``ERROR``); unsolicited ``RING`` likewise.
- V.253 voice receive: ``AT+VRX`` is answered ``CONNECT``, then the DCE sends voice data. In
  that stream ``<DLE><DLE>`` is one data byte 0x10 (DLE shielding) and any other ``<DLE>x`` is
  an event report; the DTE ends receive with ``<DLE>!`` (receive abort), after which the DCE
  sends ``<DLE><ETX>`` and the ``OK`` result code; ``<DLE><ETX>`` from the DCE on its own
  also ends the stream.
- The simple event reports (V.253's table of <DLE> shielded codes the DCE sends): ``R`` ring,
  ``H``/``h`` local phone off-hook/on-hook, ``P``/``p`` extension phone off/on-hook, ``l`` loop
  current interruption, ``b`` busy, ``d`` dial tone, ``s`` presumed hang-up (silence) time-out,
  ``q`` presumed end of message (quiet) time-out, ``0``-``9``, ``*``, ``#``, ``A``-``D`` DTMF.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from recorder.drivers.base import DriverState
from recorder.drivers.lineevents import LineEvent, LineEventKind
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import VoiceModemBoardConfig
from recorder.drivers.v253 import V253Protocol
from recorder.drivers.v253stream import Timeline, choose_format, parse_vsm_list
from tests.helpers import g711ref
from tests.helpers.v253dce import V253Dce

RATE = 8000
K = LineEventKind
DLE, ETX = b"\x10", b"\x03"
CR, LF = b"\r", b"\n"


def result(text: str) -> bytes:
    """A verbose result code as V.250 frames it."""
    return CR + LF + text.encode("ascii") + CR + LF


def shielded(data: bytes) -> bytes:
    """Voice data as the DCE sends it: every DLE doubled."""
    return data.replace(DLE, DLE + DLE)


def event(code: bytes) -> bytes:
    return DLE + code


# A +VSM=? answer in V.253's form: <cml>,<cmid>,<bps>,<tm>,<vsr>,<sds>,<sel>, one per line.
VSM_LIST = ['0,"SIGNED PCM",8,0,8000,0,0', '1,"UNSIGNED PCM",8,0,8000,0,0',
            '4,"G711U",8,0,8000,0,0', '5,"G711A",8,0,8000,0,0']
# Voice data holding DLE (0x10) and DLE ETX (0x10 0x03) as data, which must survive shielding.
VOICE = bytes([0x80, 0x10, 0x03, 0xFF, 0x10, 0x10, 0x7F, 0x00, 0x42, 0x10])


class Dte:
    """The driver's protocol, what it delivers and what it writes to the DCE."""

    def __init__(self, *, caller_id: bool = False) -> None:
        self.items: list[int | LineEvent] = []
        self.written = bytearray()
        fmt = choose_format(parse_vsm_list(VSM_LIST), "ulaw")
        assert fmt is not None
        assert fmt.method == 4, "G711U is the list's mu-law method"
        self.proto = V253Protocol("v253", Timeline(self, RATE, 160), caller_id=caller_id,
                                  command_timeout=1.0, ring_timeout=5.0)
        self.proto.format = fmt
        self.proto.connection_made(self)
        self.proto.start_following()

    # The transport.
    def write(self, data: bytes) -> None:
        self.written += data

    # The sink.
    def audio(self, block: npt.NDArray[np.int16], lost_frames: int = 0) -> None:
        self.items.extend(int(v) for v in block[:, 0])

    def line(self, item: LineEvent) -> None:
        self.items.append(item)

    def state(self, state: DriverState, detail: str = "") -> None:
        pass

    def hears(self, data: bytes, split: int = 1000) -> None:
        """The DCE's bytes, in reads of ``split`` bytes (a serial port splits anywhere)."""
        for i in range(0, len(data), split):
            self.proto.data_received(data[i:i + split])

    def said(self) -> bytes:
        """What the DTE wrote since last asked."""
        out = bytes(self.written)
        self.written.clear()
        return out

    def kinds(self) -> list[int | LineEventKind]:
        """Everything delivered, in order: samples, and events by kind. Audio is delivered in
        blocks (or before an event): the partial block so far is handed over first."""
        self.proto.timeline.flush()
        return [i.kind if isinstance(i, LineEvent) else i for i in self.items]

    def events(self) -> list[LineEvent]:
        return [i for i in self.items if isinstance(i, LineEvent)]


def voice(data: bytes) -> list[int]:
    return [int(v) for v in g711ref.ulaw_decode(data)]


def answered(dte: Dte) -> None:
    """RING, and the DTE's AT+VRX answered CONNECT: voice receive has begun."""
    dte.hears(result("RING"))
    assert dte.said() == b"AT+VRX\r", "a ring starts voice receive (caller ID off)"
    dte.hears(result("CONNECT"))


@pytest.mark.parametrize("split", [1, 2, 5, 1000])
def test_a_call_ended_by_busy_tone(split: int) -> None:
    """RING; AT+VRX / CONNECT; <DLE>H, shielded voice, <DLE>b: the DTE answers busy with
    <DLE>! and returns to command mode once the DCE sends <DLE><ETX> and OK."""
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE) + event(b"b"), split)
    assert dte.said() == DLE + b"!", "busy ends the call: receive abort"
    dte.hears(DLE + ETX + result("OK"), split)
    assert dte.kinds() == [K.RING, K.OFF_HOOK, *voice(VOICE), K.BUSY, K.END_OF_STREAM]
    assert dte.proto.mode.name == "IDLE"
    assert dte.said() == b""  # nothing more until the next ring
    answered(dte)  # and the next call is followed like the first


@pytest.mark.parametrize(("code", "kind"), [(b"b", K.BUSY), (b"d", K.DIAL_TONE),
                                            (b"l", K.LOOP_DROP)])
def test_signs_of_a_call_that_is_over_end_voice_receive(code: bytes, kind: LineEventKind) -> None:
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE[:4]) + event(code))
    assert dte.events()[-1].kind is kind
    assert dte.said() == DLE + b"!"
    dte.hears(DLE + ETX + result("OK"))
    assert dte.events()[-1].kind is K.END_OF_STREAM


@pytest.mark.parametrize(("code", "kind"), [(b"s", "silence"), (b"q", "quiet")])
def test_silence_and_quiet_time_outs_are_reported_in_place(code: bytes, kind: str) -> None:
    """s and q are the DCE's time-outs, reported where they happened in the audio; the line
    is still off-hook, so receive goes on and the voice after them is delivered too."""
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE[:3]) + event(code) + shielded(VOICE[3:]))
    assert dte.kinds() == [K.RING, K.OFF_HOOK, *voice(VOICE[:3]), K.SILENCE, *voice(VOICE[3:])]
    assert dict(dte.events()[-1].data) == {"kind": kind}
    assert dte.said() == b""


def test_dle_dle_is_data_and_dle_etx_inside_it_does_not_end_the_stream() -> None:
    """0x10 0x03 in the voice is sent as DLE DLE ETX: one DLE data byte, then ETX as data."""
    dte = Dte()
    answered(dte)
    data = bytes([0x10, 0x03, 0x10, 0x10, 0x03, 0x10])
    wire = shielded(data)
    assert wire == bytes([0x10, 0x10, 0x03, 0x10, 0x10, 0x10, 0x10, 0x03, 0x10, 0x10])
    dte.hears(event(b"H") + wire, split=1)
    assert dte.kinds() == [K.RING, K.OFF_HOOK, *voice(data)]
    assert dte.proto.mode.name == "STREAMING"


def test_dtmf_digits_are_not_audio_and_not_events_of_the_line() -> None:
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE[:2]) + event(b"5") + event(b"#")
              + shielded(VOICE[2:4]))
    assert dte.kinds() == [K.RING, K.OFF_HOOK, *voice(VOICE[:4])]


def test_the_handset_hanging_up_ends_receive() -> None:
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE) + event(b"h"))
    assert dte.kinds()[-1] is K.ON_HOOK
    assert dte.said() == DLE + b"!"
    dte.hears(DLE + ETX + result("OK"))
    assert dte.kinds()[-2:] == [K.ON_HOOK, K.END_OF_STREAM]


def test_a_stream_the_dce_ends_during_a_call_is_asked_for_again() -> None:
    """<DLE><ETX> from the DCE while the phone is still off-hook: the DTE sends AT+VRX again
    and the call goes on (reported off-hook again, so its recording goes on)."""
    dte = Dte()
    answered(dte)
    dte.hears(event(b"H") + shielded(VOICE[:4]) + DLE + ETX + result("OK"))
    assert dte.said() == b"AT+VRX\r"
    dte.hears(result("CONNECT") + shielded(VOICE[4:]))
    assert dte.kinds() == [K.RING, K.OFF_HOOK, *voice(VOICE[:4]), K.END_OF_STREAM,
                           K.OFF_HOOK, *voice(VOICE[4:])]


def test_formatted_caller_id_between_rings_starts_receive_with_the_number() -> None:
    """With caller ID on, the DCE's formatted report (DATE/TIME/NMBR/NAME lines, each a
    result-code-style line) comes after the first ring; receive starts once it is in."""
    dte = Dte(caller_id=True)
    dte.hears(result("RING"))
    assert dte.said() == b""  # waiting for the caller ID
    dte.hears(result("DATE = 0321") + result("TIME = 1405") + result("NMBR = 6145551212")
              + result("NAME = DOE JOHN"))
    assert dte.said() == b"AT+VRX\r"
    (_, caller) = dte.events()
    assert caller.kind is K.CALLER_ID
    assert dict(caller.data) == {"DATE": "0321", "TIME": "1405", "NMBR": "6145551212",
                                 "NAME": "DOE JOHN"}


# --- the whole driver on a pty, against a DCE that holds it to the standard -----------------


class Sink:
    """What the driver delivers: samples and events, the events at their sample position."""

    def __init__(self) -> None:
        self.samples: list[npt.NDArray[np.int16]] = []
        self.position = 0
        self.events: list[tuple[int, LineEvent]] = []
        self.states: list[DriverState] = []
        self.changed = threading.Condition()

    def audio(self, block: npt.NDArray[np.int16], lost_frames: int = 0) -> None:
        with self.changed:
            if lost_frames:
                self.samples.append(np.zeros(lost_frames, np.int16))
            self.samples.append(block[:, 0].copy())
            self.position += lost_frames + block.shape[0]

    def line(self, item: LineEvent) -> None:
        with self.changed:
            self.events.append((self.position, item))
            self.changed.notify_all()

    def state(self, state: DriverState, detail: str = "") -> None:
        with self.changed:
            self.states.append(state)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def kinds(self) -> list[LineEventKind]:
        return [e.kind for _, e in self.events]

    def between(self, first: LineEventKind, last: LineEventKind) -> npt.NDArray[np.int16]:
        with self.changed:
            begin = next(p for p, e in self.events if e.kind is first)
            end = next(p for p, e in self.events if e.kind is last and p >= begin)
            return np.concatenate(self.samples)[begin:end]


@pytest.fixture
def on_a_v253_modem() -> Iterator[tuple[V253Dce, Sink]]:
    """The driver, set up and following calls on a pty DCE (caller ID off)."""
    with V253Dce() as dce:
        driver = create_driver("boards[0]", VoiceModemBoardConfig(
            port=dce.path, devices=("4001",), caller_id=False))
        sink = Sink()
        driver.start(sink)
        try:
            assert sink.wait(lambda: DriverState.RUNNING in sink.states), sink.states
            yield dce, sink
        finally:
            driver.stop()
            assert driver.join(10)


def test_the_set_up_selects_voice_mode_before_any_voice_command(
        on_a_v253_modem: tuple[V253Dce, Sink]) -> None:
    dce, _ = on_a_v253_modem
    assert dce.violations == []
    commands = dce.commands
    fclass = commands.index("AT+FCLASS=8")
    assert all(i > fclass for i, c in enumerate(commands) if c.startswith("AT+V")), commands
    # The mu-law method of the +VSM=? list, at 8 kHz, and the line as the source.
    assert commands.index("AT+VSM=?") < commands.index("AT+VSM=4,8000")
    assert dce.method == (4, 8000)
    assert dce.source == 1


def test_a_call_on_a_v253_modem_end_to_end(on_a_v253_modem: tuple[V253Dce, Sink]) -> None:
    """RING, AT+VRX / CONNECT, <DLE>H, shielded mu-law voice, <DLE>b, the DTE's <DLE>!, the
    DCE's <DLE><ETX> OK: the events in order and the voice sample for sample."""
    dce, sink = on_a_v253_modem
    speech = VOICE * 80  # 800 characters, DLE and DLE ETX among them
    dce.result("RING")
    assert dce.wait("AT+VRX"), dce.commands
    assert dce.receiving
    dce.send(DLE + b"H")
    dce.stream(speech)
    dce.send(DLE + b"b")
    assert dce.wait("<DLE>!"), dce.commands
    assert sink.wait(lambda: K.END_OF_STREAM in sink.kinds()), sink.kinds()
    assert sink.kinds() == [K.RING, K.OFF_HOOK, K.BUSY, K.END_OF_STREAM]
    np.testing.assert_array_equal(sink.between(K.OFF_HOOK, K.BUSY),
                                  g711ref.ulaw_decode(speech))
    assert dce.violations == []
