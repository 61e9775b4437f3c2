"""tshark (Wireshark's dissectors, Debian's tshark) as an independent reader of what the
recorder says on the wire: a small SRC in Python sends a real recorderd an INVITE whose SDP
offers three streams (G.722 among codecs we do not decode, G.729 with annexb=no, a video),
sends no RTP, and is sent a BYE when the media timeout ends the session. Every datagram both
ways is written to a capture file (tests/helpers/pcap.py) and tshark reads it back.

What must hold, as tshark reads it: our 200 answers the INVITE in its dialog (the SRC's tags,
Call-ID and CSeq, our own To tag, a Contact marked +sip.srs); the SDP answer has one m-line
per offered stream, in order, each audio one on a port of our own RTP range with the codec we
chose and recvonly, the video refused with port 0; our BYE is a request in the same dialog
(From and To swapped, to the SRC's Contact, CSeq of our own)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.pcap import Datagram, write_pcap
from tests.helpers.sipclient import Call, SipClient, multipart
from tests.helpers.srs import Srs, start_srs, stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tshark") is None,
                       reason="needs tshark (apt-get install tshark; scripts/test does)"),
]
PROCESS_FIXTURES = frozenset({"srs"})

MEDIA_TIMEOUT = 1.0
OFFER = "\r\n".join([
    "v=0", "o=src 7 7 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
    "m=audio 4000 RTP/AVP 96 9 0 101", "a=rtpmap:96 AMR/8000", "a=rtpmap:9 G722/8000",
    "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=label:1", "a=sendonly",
    "m=audio 4002 RTP/AVP 18 8", "a=rtpmap:18 G729/8000", "a=fmtp:18 annexb=no", "a=label:2",
    "a=sendonly",
    "m=video 4004 RTP/AVP 31", "a=label:3", "a=sendonly", ""])
METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1'>
  <datamode>complete</datamode>
  <session session_id="tshark-1"/>
  <participant participant_id="a"><nameID aor="sip:7001@pbx.example.com"/></participant>
  <participant participant_id="b"><nameID aor="sip:5551234@pstn.example.com"/></participant>
  <stream stream_id="s1" session_id="tshark-1"><label>1</label></stream>
  <stream stream_id="s2" session_id="tshark-1"><label>2</label></stream>
  <participantstreamassoc participant_id="a"><send>s1</send></participantstreamassoc>
  <participantstreamassoc participant_id="b"><send>s2</send></participantstreamassoc>
</recording>"""
TO_TAG = re.compile(rb"^To:[^\r\n]*;tag=([^;\r\n]+)", re.IGNORECASE | re.MULTILINE)


@pytest.fixture(scope="module")
def srs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Srs]:
    started = start_srs(tmp_path_factory.mktemp("srs"), ports=40, max_sessions=4,
                        media_timeout=MEDIA_TIMEOUT)
    yield started
    stop(started)


class Wire:
    """The SRC's UDP socket, keeping every datagram both ways as a capture on it would."""

    def __init__(self, server: tuple[str, int]) -> None:
        self.client = SipClient("UDP", server)
        self.address = ("127.0.0.1", self.client.port)
        self.server = server
        self.datagrams: list[Datagram] = []
        self._origin = time.monotonic()

    def send(self, data: bytes) -> None:
        self.client.sock.sendto(data, self.server)
        self.datagrams.append(Datagram(time.monotonic() - self._origin, self.address,
                                       self.server, data))

    def receive(self, first_line: bytes, timeout: float) -> bytes:
        """The next datagram from the server whose first line starts with ``first_line``
        (others are kept in the capture too)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self.client.sock.settimeout(left)
            try:
                data, source = self.client.sock.recvfrom(65536)
            except TimeoutError:
                break
            self.datagrams.append(Datagram(time.monotonic() - self._origin, source,
                                           self.address, data))
            if data.startswith(first_line):
                return data
        raise AssertionError(f"no {first_line!r} within {timeout} s")


def ok_to(request: bytes) -> bytes:
    """The SRC's 200 to a request of the recorder: its Via, From, To, Call-ID and CSeq."""
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    kept = [line for line in head if line.split(b":", 1)[0].strip().lower()
            in (b"via", b"from", b"to", b"call-id", b"cseq")]
    return b"\r\n".join([b"SIP/2.0 200 OK", *kept, b"Content-Length: 0", b"", b""])


def tshark(capture: Path, sip_port: int, *fields: str) -> list[dict[str, Any]]:
    """tshark's reading of every SIP message of ``capture``: for each, ``fields`` (a field
    that occurs several times gives each occurrence, in order)."""
    done = subprocess.run(
        ["tshark", "-r", str(capture), "-d", f"udp.port=={sip_port},sip", "-Y", "sip",
         "-T", "json", *[arg for f in fields for arg in ("-e", f)]],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [packet["_source"]["layers"] for packet in json.loads(done.stdout)]


def test_tshark_reads_our_answer_and_our_bye(srs: Srs, tmp_path: Path) -> None:
    wire = Wire(("127.0.0.1", srs.sip_port))
    call = Call(wire.client)
    content_type, body = multipart(OFFER, METADATA)
    wire.send(call.build("INVITE", body=body, content_type=content_type,
                         headers=(("Require", "siprec"),)))
    ok = wire.receive(b"SIP/2.0 200", timeout=5)
    to_tag = TO_TAG.search(ok)
    assert to_tag is not None
    call.to_tag = to_tag.group(1).decode()
    wire.send(call.build("ACK", cseq=call.cseq))
    # No RTP: the media timeout ends the session with our BYE.
    bye = wire.receive(b"BYE ", timeout=MEDIA_TIMEOUT + 5)
    wire.send(ok_to(bye))
    capture = write_pcap(tmp_path / "siprec.pcap", wire.datagrams)

    messages = tshark(capture, srs.sip_port, "sip.Method", "sip.Status-Code",
                      "sip.CSeq.method", "sip.CSeq.seq", "sip.Call-ID", "sip.from.tag",
                      "sip.to.tag", "sip.contact.uri", "sip.contact.parameter", "sip.r-uri",
                      "sip.Via.sent-by.port", "sip.Supported", "sip.Allow",
                      "sdp.connection_info.address", "sdp.media", "sdp.media.port",
                      "sdp.media_attr")
    assert len(messages) == len(wire.datagrams), messages  # tshark took each one as SIP
    kinds = [(m.get("sip.Method", m.get("sip.Status-Code")), m["sip.CSeq.method"])
             for m in messages if m.get("sip.Status-Code") != ["100"]]
    assert kinds == [(["INVITE"], ["INVITE"]), (["200"], ["INVITE"]), (["ACK"], ["ACK"]),
                     (["BYE"], ["BYE"]), (["200"], ["BYE"])], kinds
    invite, answer, _, ours_bye, _ = [m for m in messages if m.get("sip.Status-Code") != ["100"]]

    # The 200: the INVITE's dialog, our tag, our Contact (a recording server's) and what we
    # support.
    for name in ("sip.Call-ID", "sip.from.tag", "sip.CSeq.seq"):
        assert answer[name] == invite[name], name
    assert answer["sip.to.tag"] == [call.to_tag]
    assert answer["sip.contact.uri"] == [f"sip:recorder@127.0.0.1:{srs.sip_port}"]
    assert answer["sip.contact.parameter"] == ["+sip.srs"]
    assert "siprec" in answer["sip.Supported"][0].split(", ")
    assert "BYE" in answer["sip.Allow"][0].split(", ")
    # Its SDP: one m-line per offered stream, in order, each audio one on a port of our
    # range with the codec we chose (the first we decode, and its events), recvonly.
    assert answer["sdp.connection_info.address"] == ["127.0.0.1"]
    media = answer["sdp.media"]
    ports = [int(p) for p in answer["sdp.media.port"]]
    low, high = srs.rtp_ports
    assert all(low <= p <= high and p % 2 == 0 for p in ports[:2]), ports
    assert ports[0] != ports[1]
    assert media == [f"audio {ports[0]} RTP/AVP 9 101", f"audio {ports[1]} RTP/AVP 18",
                     "video 0 RTP/AVP 31"]  # no AMR, G.729 rather than PCMA, no video
    # tshark lists the attributes in message order: the G.729 rtpmap opens the second
    # stream's (the video has none).
    attributes = answer["sdp.media_attr"]
    second = attributes.index("rtpmap:18 G729/8000")
    assert set(attributes[:second]) == {"rtpmap:9 G722/8000", "rtpmap:101 telephone-event/8000",
                                        "fmtp:101 0-15", "label:1", "recvonly"}, attributes
    assert set(attributes[second:]) == {"rtpmap:18 G729/8000", "fmtp:18 annexb=no", "label:2",
                                        "recvonly"}, attributes

    # Our BYE: a request of ours in the same dialog (tags swapped), to where the SRC's
    # Contact said, from our SIP port.
    assert ours_bye["sip.Call-ID"] == invite["sip.Call-ID"]
    assert ours_bye["sip.from.tag"] == [call.to_tag]
    assert ours_bye["sip.to.tag"] == invite["sip.from.tag"]
    assert ours_bye["sip.r-uri"] == invite["sip.contact.uri"]
    assert ours_bye["sip.Via.sent-by.port"] == [str(srs.sip_port)]
    wire.client.close()
