"""SDP for the SIPREC server: reading offers, the recorder's answers (RFC 3264: one m-line per
offered one, in order, recvonly, the first codec we decode, port 0 for the rest, our SDES key
for SRTP) and which streams an SRC has paused."""

from __future__ import annotations

import base64
import contextlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.drivers.siprec.multipart import siprec_body
from recorder.drivers.siprec.sdp import (
    SdpError,
    build_answer,
    choose,
    parse_sdp,
    paused_streams,
)
from recorder.drivers.siprec.sipmessage import SipRequest, parse_message
from recorder.drivers.siprec.srtp import parse_crypto
from tests.helpers.siprec import cube_invite, rfc7866_invite

# FUZZ_EXAMPLES raises the examples for a longer local run (as in test_fuzz.py).
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KEY = base64.b64encode(bytes(range(30))).decode()


def offer(*media: str, session: str = "") -> str:
    return ("v=0\r\no=src 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            + session + "".join(media))


def audio(port: int, formats: str, *attrs: str, proto: str = "RTP/AVP") -> str:
    return f"m=audio {port} {proto} {formats}\r\n" + "".join(f"a={a}\r\n" for a in attrs)


def answer_lines(sdp: str, ports: list[int | None] | None = None) -> list[list[str]]:
    """The answer's m-sections, each as its lines."""
    parsed = parse_sdp(sdp)
    result = build_answer(parsed, address="10.0.0.1", ports=ports or [20000 + 2 * i for i in
                                                                      range(len(parsed.media))],
                          session_id=77, version=3)
    text = result.sdp.decode()
    assert text.endswith("\r\n")
    sections = text.split("\r\nm=")[1:]
    return [("m=" + s).strip().split("\r\n") for s in sections]


def test_rfc7866_offer_is_read_and_answered() -> None:
    message = parse_message(rfc7866_invite())
    assert isinstance(message, SipRequest)
    body = siprec_body(message.content_type, message.body)
    assert body.sdp is not None
    sdp = parse_sdp(body.sdp)
    assert [(m.media, m.port, m.proto, m.label, m.direction) for m in sdp.media] == [
        ("audio", 49170, "RTP/AVP", "96", "sendonly"), ("video", 49174, "RTP/AVPF", "97",
                                                         "sendonly"),
        ("audio", 51372, "RTP/AVP", "98", "sendonly"), ("video", 49176, "RTP/AVPF", "99",
                                                         "sendonly")]
    assert sdp.media[0].connection is not None
    assert sdp.media[0].connection.address == "192.0.2.10"  # from the session level
    result = build_answer(sdp, address="10.0.0.1", ports=[20000, 20002, 20004, 20006],
                          session_id=1, version=1)
    assert [(s.index, s.label, s.port) for s in result.streams] == [
        (0, "96", 20000), (1, "97", 0), (2, "98", 20004), (3, "99", 0)]
    assert result.streams[0].remote == ("192.0.2.10", 49170)
    text = result.sdp.decode()
    assert "m=video 0 RTP/AVPF 96\r\n" in text
    assert text.count("a=recvonly") == 2
    assert parse_sdp(result.sdp).media[2].direction == "recvonly"


def test_cube_offer_takes_pcmu_events_and_cn() -> None:
    message = parse_message(cube_invite())
    assert isinstance(message, SipRequest)
    sdp = parse_sdp(message.body)
    assert [m.ptime for m in sdp.media] == [20, 20]
    lines = answer_lines(message.body.decode())
    assert lines[0] == ["m=audio 20000 RTP/AVP 0 101 19", "a=rtpmap:0 PCMU/8000",
                        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16",
                        "a=rtpmap:19 CN/8000", "a=recvonly"]
    assert lines[1][0] == "m=audio 20002 RTP/AVP 0 101 19"


# (offered formats and attributes, the answer's m-line formats)
CODECS = [
    ("0 8", (), "0"),
    ("8 0", (), "8"),
    ("3 4 18 0", (), "18"),  # GSM and G.723 we do not decode
    ("9 0", (), "9"),
    ("111 0", ("rtpmap:111 opus/48000/2", "fmtp:111 useinbandfec=1"), "111"),
    ("96 0", ("rtpmap:96 OPUS/48000/2",), "96"),
    ("97 0", ("rtpmap:97 opus/48000",), "0"),  # RFC 7587 says /2: a mono opus is refused
    ("98 8", ("rtpmap:98 PCMU/16000",), "8"),  # a clock the codec cannot have
    ("0", ("rtpmap:0 PCMA/8000",), "0"),  # an rtpmap names even a static type
    ("101 13 8", ("rtpmap:101 telephone-event/8000",), "8 101 13"),
    ("9 102", ("rtpmap:102 telephone-event/16000",), "9"),  # events on another clock
    ("18", ("fmtp:18 annexb=no",), "18"),
]


@pytest.mark.parametrize(("formats", "attrs", "answered"), CODECS)
def test_the_first_decodable_codec_is_chosen(formats: str, attrs: tuple[str, ...],
                                             answered: str) -> None:
    lines = answer_lines(offer(audio(4000, formats, *attrs, "sendonly")))
    assert lines[0][0] == f"m=audio 20000 RTP/AVP {answered}"
    assert lines[0][-1] == "a=recvonly"


def test_opus_is_answered_with_its_rtpmap_and_fmtp() -> None:
    lines = answer_lines(offer(audio(4000, "111", "rtpmap:111 opus/48000/2",
                                     "fmtp:111 minptime=10;useinbandfec=1")))
    assert lines[0] == ["m=audio 20000 RTP/AVP 111", "a=rtpmap:111 opus/48000/2",
                        "a=fmtp:111 minptime=10;useinbandfec=1", "a=recvonly"]


def test_streams_we_cannot_take_get_port_zero_in_place() -> None:
    sdp = offer(audio(4000, "3 4"), "m=video 4002 RTP/AVP 96\r\n", audio(0, "0"),
                audio(4004, "0"), "m=audio 4006 UDP/TLS/RTP/SAVP 0\r\n",
                "m=application 4008 UDP/BFCP *\r\n")
    lines = answer_lines(sdp)
    assert [section[0] for section in lines] == [
        "m=audio 0 RTP/AVP 3 4", "m=video 0 RTP/AVP 96", "m=audio 0 RTP/AVP 0",
        "m=audio 20006 RTP/AVP 0", "m=audio 0 UDP/TLS/RTP/SAVP 0",
        "m=application 0 UDP/BFCP *"]
    reasons = [s.choice.refused for s in build_answer(
        parse_sdp(sdp), address="10.0.0.1", ports=[1, 2, 3, 4, 5, 6], session_id=1,
        version=1).streams]
    assert reasons == ["no offered codec can be decoded", "video is not recorded",
                       "the stream is disabled (port 0)", "", "UDP/TLS/RTP/SAVP is not supported",
                       "application is not recorded"]


def test_a_stream_without_a_port_of_ours_is_refused() -> None:
    lines = answer_lines(offer(audio(4000, "0"), audio(4002, "0")), ports=[None, 30000])
    assert [section[0] for section in lines] == ["m=audio 0 RTP/AVP 0",
                                                 "m=audio 30000 RTP/AVP 0"]


def test_nothing_recordable_is_488() -> None:
    with pytest.raises(SdpError) as err:
        answer_lines(offer(audio(4000, "3"), "m=video 4002 RTP/AVP 31\r\n"))
    assert err.value.status == 488


def test_the_answer_names_us_and_its_version() -> None:
    parsed = parse_sdp(offer(audio(4000, "0", "label:1")))
    v4 = build_answer(parsed, address="10.0.0.1", ports=[20000], session_id=9, version=4)
    assert v4.sdp.decode().splitlines()[:5] == [
        "v=0", "o=recorder 9 4 IN IP4 10.0.0.1", "s=recorder", "c=IN IP4 10.0.0.1", "t=0 0"]
    assert "a=label:1" in v4.sdp.decode()
    v6 = build_answer(parsed, address="2001:db8::5", ports=[20000], session_id=9, version=5)
    assert "c=IN IP6 2001:db8::5\r\n" in v6.sdp.decode()


@pytest.mark.parametrize(("media", "session", "paused"), [
    (audio(4000, "0", "sendonly"), "", False),
    (audio(4000, "0", "sendrecv"), "", False),
    (audio(4000, "0"), "", False),
    (audio(4000, "0", "inactive"), "", True),
    (audio(4000, "0", "recvonly"), "", True),
    (audio(4000, "0"), "a=inactive\r\n", True),  # session level, inherited
    (audio(4000, "0", "sendonly"), "a=inactive\r\n", False),  # media level wins
    ("m=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n", "", True),  # RFC 2543 hold
    (audio(0, "0", "inactive"), "", False),  # port 0: gone, not paused
])
def test_paused_streams(media: str, session: str, paused: bool) -> None:
    sdp = parse_sdp(offer(audio(4002, "0", "sendonly"), media, session=session))
    # Stream 0 says sendonly at media level, which a session-level a=inactive does not undo.
    assert paused_streams(sdp) == ({1} if paused else set())


def test_a_paused_stream_is_answered_inactive() -> None:
    lines = answer_lines(offer(audio(4000, "0", "sendonly"), audio(4002, "0", "inactive")))
    assert (lines[0][-1], lines[1][-1]) == ("a=recvonly", "a=inactive")


def test_srtp_offer_gets_our_own_key() -> None:
    crypto = f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20"
    other = f"crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY}"
    parsed = parse_sdp(offer(audio(4000, "0", crypto, other, "sendonly", proto="RTP/SAVP")))
    result = build_answer(parsed, address="10.0.0.1", ports=[20000], session_id=1, version=1)
    stream = result.streams[0]
    assert stream.choice.crypto is not None
    assert stream.choice.crypto.key_salt == bytes(range(30))
    ours = [line[len("a=crypto:"):] for line in result.sdp.decode().splitlines()
            if line.startswith("a=crypto:")]
    assert len(ours) == 1
    answered = parse_crypto(ours[0])
    assert answered is not None
    assert answered == stream.local_crypto
    assert (answered.tag, answered.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert answered.key_salt != stream.choice.crypto.key_salt
    assert "m=audio 20000 RTP/SAVP 0" in result.sdp.decode()


@pytest.mark.parametrize("crypto", [
    f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4",  # an MKI
    f"crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{KEY}",  # a suite we do not run
    f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY} UNENCRYPTED_SRTP",  # session params
    "crypto:1 AES_CM_128_HMAC_SHA1_80 inline:c2hvcnQ=",  # a short key
])
def test_savp_without_a_usable_key_is_refused_not_downgraded(crypto: str) -> None:
    parsed = parse_sdp(offer(audio(4000, "0", crypto, proto="RTP/SAVP"), audio(4002, "0")))
    assert choose(parsed.media[0]).refused == "no usable a=crypto for SRTP"
    lines = answer_lines(offer(audio(4000, "0", crypto, proto="RTP/SAVP"), audio(4002, "0")))
    assert lines[0] == ["m=audio 0 RTP/SAVP 0"]


def test_crypto_on_plain_rtp_is_ignored() -> None:
    lines = answer_lines(offer(audio(4000, "0", f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}")))
    assert not any(line.startswith("a=crypto") for line in lines[0])


def test_rtcp_mux_is_echoed() -> None:
    lines = answer_lines(offer(audio(4000, "0", "rtcp-mux")))
    assert "a=rtcp-mux" in lines[0]


@pytest.mark.parametrize("text", [
    "", "v=1\r\n", "o=x 1 1 IN IP4 h\r\n", "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
    "v=0\r\no=short\r\n", "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio x RTP/AVP 0\r\n",
    "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n",
    "v=0\r\no=a 1 1 IN IP4 h\r\nm=audio\r\n", "v=0\r\no=a 1 1 IN IP4 h\r\nc=IN\r\n",
    "v=0\r\no=a 1 1 IN IP4 h\r\nnot a line\r\n", "v=0\r\no=a 1 1 IN IP4 h\r\nab=c\r\n",
    "v=0\r\no=a 1 1 IN IP4 h\r\n" + "m=audio 1 RTP/AVP 0\r\n" * 40,
])
def test_unreadable_sdp_is_400(text: str) -> None:
    with pytest.raises(SdpError) as err:
        parse_sdp(text.encode())
    assert err.value.status == 400


def test_non_utf8_sdp_is_400() -> None:
    with pytest.raises(SdpError):
        parse_sdp(b"v=0\r\no=\xff 1 1 IN IP4 h\r\n")


@FUZZ
@given(st.binary(max_size=1500))
def test_any_bytes_give_sdp_or_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(b"v=0\r\no=a 1 1 IN IP4 h\r\n" + data)


@FUZZ
@given(st.lists(st.sampled_from([
    "m=audio 4000 RTP/AVP 0 8 101", "m=audio 0 RTP/AVP 0", "m=video 4002 RTP/AVP 96",
    "m=audio 4004 RTP/SAVP 0", "a=rtpmap:101 telephone-event/8000", "a=rtpmap:96 opus/48000/2",
    "a=rtpmap:0", "a=rtpmap:x y/z", "a=fmtp:101 0-15", "a=sendonly", "a=inactive",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}", "a=crypto:junk", "c=IN IP4 0.0.0.0",
    "a=label:1", "a=ptime:x", "m=audio 4006 RTP/AVP 96 18"]), max_size=20))
def test_any_offer_is_answered_or_refused_with_488(lines: list[str]) -> None:
    text = "v=0\r\no=a 1 1 IN IP4 h\r\ns=-\r\n" + "".join(line + "\r\n" for line in lines)
    parsed = parse_sdp(text)
    recordable = any(choose(m).codec is not None for m in parsed.media)
    if not recordable:
        with pytest.raises(SdpError) as err:
            build_answer(parsed, address="10.0.0.1", ports=[20000] * 40, session_id=1, version=1)
        assert err.value.status == 488
        return
    result = build_answer(parsed, address="10.0.0.1", ports=[20000] * 40, session_id=1, version=1)
    assert len(parse_sdp(result.sdp).media) == len(parsed.media)
