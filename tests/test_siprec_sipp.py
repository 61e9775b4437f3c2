"""The SIPREC server against sipp (Debian's sip-tester), an SRC the recorder did not write: the
scenarios in tests/fixtures/siprec/sipp/ play a whole recording session (multipart INVITE,
ACK, pausing re-INVITE, metadata UPDATE, BYE) and a CANCEL over UDP and TCP. sipp exits 0
only if every answer it expects comes (and the answer's SDP says what the scenario checks);
the session listener must have heard the same session."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.drivers.siprec.config import SiprecBoardConfig
from recorder.drivers.siprec.events import EndReason
from recorder.drivers.siprec.transport import SipServer
from tests.helpers.net import rtp_test_range, sipp_ports
from tests.helpers.sipclient import Listener

SCENARIOS = Path(__file__).resolve().parent / "fixtures" / "siprec" / "sipp"
SIPP_SECONDS = 10  # sipp's own limit (-timeout); the subprocess gets a little more

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="needs sipp (apt-get install sip-tester; scripts/test does)"),
]


@pytest.fixture
def server() -> Iterator[tuple[SipServer, Listener]]:
    listener = Listener()
    low, high = rtp_test_range(100)
    config = SiprecBoardConfig(sip_port=0, rtp_port_min=low, rtp_port_max=high)
    sip = SipServer("boards[0]", config, listener)
    sip.start()
    yield sip, listener
    sip.stop()
    assert sip.join(5)


def sipp(scenario: str, transport: str, port: int, directory: Path) -> None:
    """Run one call of ``scenario`` against 127.0.0.1:``port``; fail with sipp's log unless
    it exits 0."""
    errors = directory / "errors.log"
    sip_port, media_port = sipp_ports()
    command = ["sipp", "-sf", str(SCENARIOS / scenario), "-m", "1", "-i", "127.0.0.1",
               "-p", str(sip_port), "-mp", str(media_port),
               "-t", {"UDP": "u1", "TCP": "t1"}[transport], "-nostdin",
               "-timeout", f"{SIPP_SECONDS}s", "-timeout_error", "-trace_err",
               "-error_file", str(errors), f"127.0.0.1:{port}"]
    done = subprocess.run(command, cwd=directory, capture_output=True, text=True,
                          timeout=SIPP_SECONDS + 5, check=False)
    log = errors.read_text(errors="replace") if errors.exists() else ""
    assert done.returncode == 0, f"sipp exited {done.returncode}\n{done.stdout[-2000:]}\n{log}"


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_a_recording_session_from_sipp(server: tuple[SipServer, Listener], transport: str,
                                       tmp_path: Path) -> None:
    sip, listener = server
    sipp("siprec_uac.xml", transport, sip.udp_address[1], tmp_path)
    assert listener.kinds() == ["started", "updated", "updated", "ended"]
    started, _ = listener.wait("started")
    assert started.transport == transport
    assert started.global_call_id is not None
    assert started.global_call_id.startswith("sipp-session-")
    assert [(s.label, s.codec.name, s.participant) for s in started.streams] == [
        ("1", "PCMA", "sip:1001@pbx.example.com"), ("2", "PCMA", "sip:2002@pbx.example.com")]
    _, paused = listener.wait("updated")  # the re-INVITE's a=inactive
    assert (paused.paused, paused.metadata) == ({0}, False)
    held, by_metadata = listener.wait("updated", 2)  # the UPDATE: Bob sends no more
    assert (by_metadata.paused, by_metadata.metadata) == ({1}, True)
    assert held.paused  # both streams now
    _, reason = listener.wait("ended")
    assert reason is EndReason.BYE
    assert sip.ports.in_use == 0


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_a_cancel_from_sipp_after_the_answer(server: tuple[SipServer, Listener],
                                             transport: str, tmp_path: Path) -> None:
    sip, listener = server
    sipp("cancel_uac.xml", transport, sip.udp_address[1], tmp_path)
    assert listener.kinds() == ["started", "ended"]
    assert listener.wait("ended")[1] is EndReason.BYE
    assert sip.ports.in_use == 0
