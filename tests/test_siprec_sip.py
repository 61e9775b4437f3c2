"""SIP messages for the SIPREC server: parsing datagrams and streams, header readers, the
status each broken message is answered with, and responses built per RFC 3261 §8.2.6."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.drivers.siprec.sipheaders import (
    CSeq,
    Headers,
    NameAddr,
    SipUri,
    Via,
    response_address,
    split_list,
    stamp_received,
)
from recorder.drivers.siprec.sipmessage import (
    KEEPALIVE,
    Limits,
    ParseError,
    SipRequest,
    SipResponse,
    StreamFramer,
    make_response,
    parse_message,
)
from tests.helpers.siprec import cube_invite, rfc7866_invite

# FUZZ_EXAMPLES raises the examples for a longer local run (as in test_fuzz.py).
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

BASE = ("INVITE sip:rec@10.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n"
        "From: <sip:alice@example.com>;tag=f1\r\n"
        "To: <sip:rec@10.0.0.1>\r\n"
        "Call-ID: c1@192.0.2.1\r\n"
        "CSeq: 7 INVITE\r\n")


def request(extra: str = "", body: str = "", length: int | None = None,
            base: str = BASE) -> bytes:
    size = len(body.encode()) if length is None else length
    return f"{base}{extra}Content-Length: {size}\r\n\r\n{body}".encode()


def test_rfc7866_invite_reads_fully() -> None:
    message = parse_message(rfc7866_invite())
    assert isinstance(message, SipRequest)
    assert (message.method, message.uri) == ("INVITE", "sip:recorder@example.com")
    assert message.call_id == "d253c800-b0d1ea39-4a7dd-3f0e20a"
    assert message.cseq == CSeq(101, "INVITE")
    assert message.headers.values("require") == ["siprec"]
    # Folded lines are one header (RFC 3261 §7.3.1).
    assert message.headers.get("session-id") == (
        "ab30317f1a784dc48ff824d0d3715d86 ;remote=00000000000000000000000000000000")
    assert message.headers.values("accept") == [
        "application/sdp", "application/rs-metadata", "application/rs-metadata-request"]
    assert message.from_.tag == "35e195d2-947d-4585-946f-09839247"
    assert message.to.tag is None
    assert message.vias[0].transport == "TCP"
    assert message.vias[0].branch == "z9hG4bKdf6b622b648d9"
    assert NameAddr.parse(message.headers.get("contact") or "").params == {"+sip.src": None}
    assert message.content_type == "multipart/mixed;boundary=foobar"
    assert message.body.startswith(b"--foobar\r\n")
    assert message.body.endswith(b"--foobar--\r\n")
    assert len(message.body) == int(message.headers.get("content-length") or -1)


def test_cube_invite_keeps_repeated_headers_in_order() -> None:
    message = parse_message(cube_invite())
    assert message.headers.get_all("X-Cisco-Recording-Participant") == [
        'sip:708090@10.42.30.5;media-index="0"', 'sip:10000@10.42.30.32;media-index="1"']
    assert message.headers.get("min-se") == "1800"


@pytest.mark.parametrize(("compact", "canonical"), [
    ("i", "Call-ID"), ("m", "Contact"), ("e", "Content-Encoding"), ("l", "Content-Length"),
    ("c", "Content-Type"), ("f", "From"), ("s", "Subject"), ("k", "Supported"), ("t", "To"),
    ("v", "Via"), ("o", "Event"), ("r", "Refer-To"), ("b", "Referred-By"),
    ("u", "Allow-Events"), ("x", "Session-Expires"), ("CALL-ID", "Call-ID"),
    ("cseq", "CSeq"), ("x-cisco-recording-participant", "X-Cisco-Recording-Participant"),
])
def test_compact_and_any_case_names_are_one_header(compact: str, canonical: str) -> None:
    headers = Headers([(compact, "value")])
    assert dict(headers.items()) == {canonical: "value"}
    assert headers.get(canonical.upper()) == "value"


def test_a_message_in_compact_form_parses() -> None:
    data = (b"INVITE sip:rec@x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            b"f: <sip:a@x>;tag=1\r\nt: sip:rec@x\r\ni: abc\r\nCSeq: 1 INVITE\r\n"
            b"c: application/sdp\r\nk: timer, 100rel\r\nl: 3\r\n\r\nv=0")
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    assert (message.call_id, message.content_type, message.body) == ("abc", "application/sdp",
                                                                      b"v=0")
    assert message.headers.values("supported") == ["timer", "100rel"]


@pytest.mark.parametrize(("value", "parts"), [
    ("a, b,c", ["a", "b", "c"]),
    ('"Doe, John" <sip:j@x>, <sip:k@y>', ['"Doe, John" <sip:j@x>', "<sip:k@y>"]),
    ("<sip:a@x;p=1,2>;q=0.5, <sip:b@y>", ["<sip:a@x;p=1,2>;q=0.5", "<sip:b@y>"]),
    (r'"a \" , b" <sip:c@d>, e', [r'"a \" , b" <sip:c@d>', "e"]),
    ("SIP/2.0/UDP a;branch=1, SIP/2.0/TCP b", ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b"]),
    (" , ,", []),
])
def test_comma_lists_split_outside_quotes_and_brackets(value: str, parts: list[str]) -> None:
    assert split_list(value) == parts


def test_list_headers_split_over_several_lines() -> None:
    data = request("Via: SIP/2.0/UDP b:5062;branch=z9hG4bK2, SIP/2.0/TCP c\r\n")
    message = parse_message(data)
    assert isinstance(message, SipRequest)
    assert [v.host for v in message.vias] == ["192.0.2.1", "b", "c"]


@pytest.mark.parametrize(("value", "display", "uri", "tag"), [
    ('"Alice, A." <sip:alice@example.com>;tag=88', "Alice, A.", "sip:alice@example.com", "88"),
    ("Bob <sips:bob@b.example:5061;transport=tls>", "Bob",
     "sips:bob@b.example:5061;transport=tls", None),
    ("<sip:c@x;lr>;tag=9;expires=60", "", "sip:c@x;lr", "9"),
    ("sip:carol@chicago.com;tag=asdf", "", "sip:carol@chicago.com", "asdf"),
    ("<tel:+15551234567>;tag=t", "", "tel:+15551234567", "t"),
    ('"\\"quoted\\"" <sip:q@x>', '"quoted"', "sip:q@x", None),
])
def test_name_addr_forms(value: str, display: str, uri: str, tag: str | None) -> None:
    parsed = NameAddr.parse(value)
    assert (parsed.display, parsed.uri, parsed.tag) == (display, uri, tag)


@pytest.mark.parametrize("value", ["", '"unterminated <sip:a@b>', "<sip:a@b", "Alice",
                                   '"Alice" sip:a@b', "<sip:a@b> junk"])
def test_bad_name_addrs_raise_value_error(value: str) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        NameAddr.parse(value)


@pytest.mark.parametrize(("uri", "user", "host", "port"), [
    ("sip:1001@pbx.example.com:5080;transport=tcp", "1001", "pbx.example.com", 5080),
    ("sip:user:secret@[2001:db8::1]:5060", "user", "[2001:db8::1]", 5060),
    ("sips:example.com", "", "example.com", None),
    ("tel:+1-555-0100;phone-context=example.com", "+1-555-0100", "", None),
])
def test_sip_uris(uri: str, user: str, host: str, port: int | None) -> None:
    parsed = SipUri.parse(uri)
    assert (parsed.user, parsed.host, parsed.port) == (user, host, port)


# (Via, its (transport, host, port, branch, received, rport))
VIAS: list[tuple[str, tuple[str, str, int | None, str, str | None, int | None]]] = [
    ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK77;rport",
     ("UDP", "192.0.2.1", 5060, "z9hG4bK77", None, None)),
    ("SIP/2.0/TCP h.example;branch=z9hG4bKx;received=198.51.100.2;rport=4000",
     ("TCP", "h.example", None, "z9hG4bKx", "198.51.100.2", 4000)),
    ("SIP / 2.0 / tls [2001:db8::9]:5061 ;branch=z9hG4bKy",
     ("TLS", "[2001:db8::9]", 5061, "z9hG4bKy", None, None)),
]


@pytest.mark.parametrize(("value", "fields"), VIAS)
def test_via_parameters(value: str, fields: tuple[object, ...]) -> None:
    via = Via.parse(value)
    assert (via.transport, via.host, via.port, via.branch, via.received, via.rport) == fields


@pytest.mark.parametrize(("value", "expected"), [
    ("101 INVITE", CSeq(101, "INVITE")), (" 1  bye ", CSeq(1, "BYE")),
    ("2147483647 ACK", CSeq(2**31 - 1, "ACK")),
])
def test_cseq(value: str, expected: CSeq) -> None:
    assert CSeq.parse(value) == expected


@pytest.mark.parametrize("value", ["INVITE", "1", "-1 INVITE", "2147483648 INVITE", "1 IN VITE"])
def test_bad_cseq(value: str) -> None:
    with pytest.raises(ValueError, match="CSeq"):
        CSeq.parse(value)


def test_datagram_body_rules() -> None:
    # No Content-Length: the rest of the datagram (§18.3); extra bytes after it are dropped.
    no_length = (BASE + "\r\nv=0").encode()
    assert parse_message(no_length).body == b"v=0"
    assert parse_message(request(body="v=0") + b"junk").body == b"v=0"
    # Bare LF line ends and CRLFs before the start line are read too.
    assert isinstance(parse_message(b"\r\n\r\n" + request().replace(b"\r\n", b"\n")),
                      SipRequest)


LIMITS = Limits(max_message_bytes=4096, max_header_bytes=2048, max_headers=20,
                max_line_bytes=300, max_body_bytes=1000)
# (what, message, status to answer; None: answer nothing)
BROKEN: list[tuple[str, bytes, int | None]] = [
    ("no Call-ID", request(base=BASE.replace("Call-ID: c1@192.0.2.1\r\n", "")), None),
    ("no Via", request(base=BASE.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n",
                                         "")), None),
    ("bad CSeq", request(base=BASE.replace("CSeq: 7 INVITE", "CSeq: seven INVITE")), 400),
    ("CSeq of another method", request(base=BASE.replace("7 INVITE", "7 BYE")), 400),
    ("bad Via", request(base=BASE.replace("SIP/2.0/UDP 192.0.2.1:5060", "HTTP/1.1")), 400),
    ("bad From", request(base=BASE.replace("<sip:alice@example.com>", "<sip:alice")), 400),
    ("body shorter than Content-Length", request(body="v=0", length=50), 400),
    ("Content-Length not a number", request(body="v=0", length=0).replace(b": 0", b": 3x"),
     400),
    ("body over the limit", request(body="v" * 1001), 413),
    ("too many headers", request("".join(f"X-H{i}: {i}\r\n" for i in range(30))), 513),
    ("a header line over the limit", request(f"Subject: {'s' * 400}\r\n"), 513),
    ("folded header over the limit", request("Subject: a\r\n" + " b\r\n" * 200), 513),
    ("headers over the limit", request("".join(f"X-{i}: {'h' * 200}\r\n" for i in range(12))),
     513),
    ("message over the limit", request(body="v" * 5000), 513),
    ("SIP/3.0", request().replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
    ("not UTF-8", request("Subject: \xff\r\n").replace(b"\xc3\xbf", b"\xff"), 400),
    ("header without a colon", request("Nonsense\r\n"), 400),
    ("continuation first", BASE.replace("Via", " x\r\nVia", 1).encode(), 400),
    ("not a start line", b"HELLO\r\n\r\n", None),
    ("empty", b"\r\n\r\n", None),
    ("binary junk", bytes(range(256)), None),
    ("ACK is never answered", request(base=BASE.replace("INVITE", "ACK")).replace(
        b"CSeq: 7 ACK", b"CSeq: x ACK"), None),
    ("a broken response", b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n", None),
    ("truncated in the headers", request()[:60], None),
]


@pytest.mark.parametrize(("what", "data", "status"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_messages_get_the_status_they_deserve(what: str, data: bytes,
                                                     status: int | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_message(data, LIMITS)
    assert err.value.status == status, err.value.reason
    if status is None:
        return
    # Enough was read to answer it, per §8.2.6.
    assert err.value.request is not None
    answer = make_response(err.value.request, status, to_tag="srs1")
    assert answer.to_bytes().startswith(f"SIP/2.0 {status} ".encode())
    assert answer.call_id == "c1@192.0.2.1"
    assert answer.headers.get("to") == "<sip:rec@10.0.0.1>;tag=srs1"
    # The values are copied as they came, even the one that was wrong.
    assert answer.headers.get("cseq") == err.value.request.headers.get("cseq")


def test_a_response_parses() -> None:
    data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
            b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: x\r\n"
            b"CSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n")
    message = parse_message(data)
    assert isinstance(message, SipResponse)
    assert (message.status, message.reason, message.cseq.method) == (180, "Ringing", "INVITE")


def test_responses_copy_what_rfc3261_says() -> None:
    data = request("Via: SIP/2.0/UDP proxy2;branch=z9hG4bK2\r\n"
                   "Via: SIP/2.0/UDP proxy3;branch=z9hG4bK3, SIP/2.0/UDP proxy4\r\n"
                   "Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nTimestamp: 54\r\n")
    invite = parse_message(data)
    assert isinstance(invite, SipRequest)
    trying = make_response(invite, 100)
    assert trying.headers.get_all("via") == invite.headers.get_all("via")
    assert NameAddr.parse(trying.headers.get("to") or "").tag is None  # 100 needs no tag
    assert trying.headers.get("timestamp") == "54"
    assert trying.headers.get("record-route") is None
    ok = make_response(invite, 200, to_tag="t42", headers=[("Contact", "<sip:rec@10.0.0.1>")],
                       body=b"v=0\r\n", content_type="application/sdp")
    assert ok.headers.get("to") == "<sip:rec@10.0.0.1>;tag=t42"
    assert ok.headers.get("record-route") == "<sip:p1;lr>, <sip:p2;lr>"
    assert (ok.headers.get("from"), ok.headers.get("call-id"), ok.headers.get("cseq")) == (
        "<sip:alice@example.com>;tag=f1", "c1@192.0.2.1", "7 INVITE")
    assert ok.headers.get("timestamp") is None
    wire = ok.to_bytes()
    assert wire.startswith(b"SIP/2.0 200 OK\r\n"
                           b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1\r\n")
    assert wire.endswith(b"Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n")
    # A To tag the request already has is kept (an in-dialog request).
    bye = parse_message(request(base=BASE.replace("To: <sip:rec@10.0.0.1>",
                                                  "To: <sip:rec@10.0.0.1>;tag=old")
                                .replace("7 INVITE", "8 BYE").replace("INVITE sip", "BYE sip")))
    assert isinstance(bye, SipRequest)
    assert make_response(bye, 200).headers.get("to") == "<sip:rec@10.0.0.1>;tag=old"
    assert make_response(bye, 481).reason == "Call/Transaction Does Not Exist"


@pytest.mark.parametrize(("via", "source", "stamped", "target"), [
    ("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("192.0.2.1", 5060),
     "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1", ("192.0.2.1", 5060)),
    ("SIP/2.0/UDP pbx.example;branch=z9hG4bK1", ("192.0.2.7", 5070),
     "SIP/2.0/UDP pbx.example;branch=z9hG4bK1;received=192.0.2.7", ("192.0.2.7", 5060)),
    ("SIP/2.0/UDP 10.0.0.5:5060;rport;branch=z9hG4bK1", ("203.0.113.9", 40000),
     "SIP/2.0/UDP 10.0.0.5:5060;rport=40000;branch=z9hG4bK1;received=203.0.113.9",
     ("203.0.113.9", 40000)),
])
def test_received_and_rport(via: str, source: tuple[str, int], stamped: str,
                            target: tuple[str, int]) -> None:
    message = parse_message(request(base=BASE.replace(
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa1", via)))
    assert isinstance(message, SipRequest)
    stamp_received(message.headers, *source)
    assert message.headers.get("via") == stamped
    assert response_address(message.vias[0]) == target


def test_stream_framer_cuts_by_content_length_and_passes_keepalives() -> None:
    first = request(body="v=0\r\n")
    second = request(body="", base=BASE.replace("c1@", "c2@"))
    stream = b"\r\n" + first + b"\r\n\r\n" + second
    framer = StreamFramer()
    assert [type(x) for x in framer.feed(stream)] == [SipRequest, type(KEEPALIVE), SipRequest]
    framer = StreamFramer()
    got = [item for byte in stream for item in framer.feed(bytes([byte]))]
    assert [m.call_id for m in got if isinstance(m, SipRequest)] == ["c1@192.0.2.1",
                                                                     "c2@192.0.2.1"]
    assert got[0].body == b"v=0\r\n"  # type: ignore[union-attr]
    assert got[1] is KEEPALIVE


def test_stream_framer_takes_a_flood_of_line_ends() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\n" * 5000 + b"\r") == []
    out = framer.feed(b"\n" + request())
    assert [type(x) for x in out] == [SipRequest]


def test_stream_framer_answers_a_bad_message_and_goes_on() -> None:
    bad = request(base=BASE.replace("7 INVITE", "7 BYE"))
    framer = StreamFramer()
    out = framer.feed(bad + request())
    assert isinstance(out[0], ParseError)
    assert out[0].status == 400
    assert isinstance(out[1], SipRequest)
    assert not framer.broken


@pytest.mark.parametrize(("data", "status"), [
    ((BASE + "\r\nv=0").encode(), 400),  # no Content-Length on a stream
    (request().replace(b"Content-Length: 0", b"Content-Length: -1"), 400),
    (request(body="v" * 2000), 413),
    ((BASE + "X: " + "y" * 3000).encode(), 513),
])
def test_stream_framing_errors_break_the_stream(data: bytes, status: int) -> None:
    framer = StreamFramer(LIMITS)
    out = framer.feed(data)
    assert len(out) == 1
    assert isinstance(out[0], ParseError)
    assert out[0].status == status
    assert framer.broken
    assert framer.feed(request()) == []


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_message_or_parse_error(data: bytes) -> None:
    error: ParseError | None = None
    try:
        parse_message(data, LIMITS)
    except ParseError as exc:
        error = exc
    # A status to answer always comes with what is needed to answer it.
    assert error is None or error.status is None or error.request is not None


@FUZZ
@given(st.data())
def test_damaged_messages_give_a_message_or_parse_error(data: st.DataObject) -> None:
    message = bytearray(rfc7866_invite())
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(message)))
        action = data.draw(st.sampled_from(["delete", "insert", "replace"]))
        chunk = data.draw(st.sampled_from([b"\r\n", b":", b";", b",", b"<", b'"', b" ", b"\xff",
                                           b"\x00", b"0", b"SIP/2.0", b"\r\n\r\n"]))
        if action == "delete":
            del message[at:at + len(chunk)]
        elif action == "insert":
            message[at:at] = chunk
        else:
            message[at:at + len(chunk)] = chunk
    with contextlib.suppress(ParseError):
        parse_message(bytes(message))
    framer = StreamFramer()
    for item in framer.feed(bytes(message)):
        assert isinstance(item, SipRequest | SipResponse | ParseError) or item is KEEPALIVE
