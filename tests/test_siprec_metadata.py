"""Bodies and metadata of SIPREC INVITEs: multipart/mixed split, RFC 7865 metadata read safely
(no entities, no DOCTYPE, bounded), partial updates merged, and the parties and call ids of
plain-SDP SRCs read from vendor headers."""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recorder.drivers.siprec.metadata import MetadataError, merge, parse_metadata
from recorder.drivers.siprec.multipart import BodyError, siprec_body, split_body
from recorder.drivers.siprec.sipheaders import Headers
from recorder.drivers.siprec.sipmessage import SipRequest, parse_message
from recorder.drivers.siprec.vendor import (
    VendorCallId,
    avaya_ucid,
    cisco_participants,
    global_call_id,
    party_for_media,
)
from tests.helpers.siprec import cube_invite, fixture_text, rfc7866_invite

# FUZZ_EXAMPLES raises the examples for a longer local run (as in test_fuzz.py).
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ALICE = "srfBElmCRp2QB23b7Mpk0w=="
BOB = "zSfPoSvdSDCmU3A3TRDxAw=="
SESSION = "hVpd7YQgRW2nD22h7q60JQ=="
RECORDING = b"<recording xmlns='urn:ietf:params:xml:ns:recording:1'>"


def metadata_fixture(name: str) -> bytes:
    return fixture_text(name).encode()


# --- bodies ---------------------------------------------------------------------------------

def test_rfc7866_body_splits_into_sdp_and_metadata() -> None:
    message = parse_message(rfc7866_invite())
    assert isinstance(message, SipRequest)
    parts = split_body(message.content_type, message.body)
    assert [(p.content_type, p.disposition) for p in parts] == [
        ("application/sdp", None), ("application/rs-metadata", "recording-session")]
    body = siprec_body(message.content_type, message.body)
    assert body.sdp is not None
    assert body.sdp.startswith(b"v=0\r\n")
    assert body.sdp.endswith(b"a=label:99\r\na=sendonly")  # the delimiter's CRLF is not ours
    assert body.metadata is not None
    assert body.metadata.startswith(b"<?xml")


def test_plain_sdp_and_empty_bodies() -> None:
    assert siprec_body("application/sdp", b"v=0\r\n").sdp == b"v=0\r\n"
    assert siprec_body("Application/SDP; charset=utf-8", b"v=0").sdp == b"v=0"
    empty = siprec_body("", b"")
    assert (empty.sdp, empty.metadata) == (None, None)
    alone = siprec_body("application/rs-metadata+xml", RECORDING + b"</recording>")
    assert alone.sdp is None
    assert alone.metadata is not None


def test_nested_multipart_and_encoded_parts() -> None:
    body = (b"--a\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
            b"--b\r\nContent-Type: application/sdp\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"dj0wDQo=\r\n--b--\r\n--a\r\nContent-Type: application/rs-metadata+xml\r\n\r\n"
            b"<recording/>\r\n--a--\r\n")
    found = siprec_body("multipart/mixed; boundary=a", body)
    assert (found.sdp, found.metadata) == (b"v=0\r\n", b"<recording/>")


@pytest.mark.parametrize(("content_type", "body", "status"), [
    ("multipart/mixed", b"--x\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--x--", 400),
    ("multipart/mixed; boundary=nothere", b"--x\r\n\r\nv=0\r\n--x--", 400),
    ("multipart/mixed; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--", 415),
    ("text/html", b"<p>hi</p>", 415),
    ("application/isup", b"\x01\x02", 415),
    ("", b"v=0", 415),
])
def test_bodies_we_cannot_take(content_type: str, body: bytes, status: int) -> None:
    with pytest.raises(BodyError) as err:
        siprec_body(content_type, body)
    assert err.value.status == status


def test_too_many_parts() -> None:
    body = b"".join(b"--x\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n" for _ in range(20))
    with pytest.raises(BodyError, match="more than"):
        split_body("multipart/mixed; boundary=x", body + b"--x--\r\n")


@FUZZ
@given(st.binary(max_size=1500), st.sampled_from(["multipart/mixed; boundary=x",
                                                  "multipart/mixed", "application/sdp",
                                                  "multipart/mixed; boundary=\"\""]))
def test_any_body_gives_parts_or_body_error(data: bytes, content_type: str) -> None:
    with contextlib.suppress(BodyError):
        siprec_body(content_type, b"--x\r\n" + data)


# --- metadata -------------------------------------------------------------------------------

def test_rfc7866_metadata_reads_fully() -> None:
    metadata = parse_metadata(metadata_fixture("rfc7866_metadata.xml"))
    assert metadata.data_mode == "complete"
    assert list(metadata.groups) == ["7+OTCyoxTmqmqyA/1weDAg=="]
    assert metadata.groups["7+OTCyoxTmqmqyA/1weDAg=="].associate_time == datetime(
        2010, 12, 16, 23, 41, 7, tzinfo=UTC)
    session = metadata.sessions[SESSION]
    assert session.sip_session_ids == [
        "ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2"]
    assert session.group_id == "7+OTCyoxTmqmqyA/1weDAg=="
    assert metadata.session_id == SESSION
    assert [(p.aor, p.name) for p in metadata.participants.values()] == [
        ("sip:alice@atlanta.com", "Alice"), ("sip:bob@biloxy.com", "Bob")]
    assert {s.label: s.session_id for s in metadata.streams.values()} == {
        "96": SESSION, "97": SESSION, "98": SESSION, "99": SESSION}
    assert metadata.stream_associations[ALICE].sends == {"i1Pz3to5hGk8fuXl+PbwCw==",
                                                         "UAAMm5GRQKSCMVvLyl4rFw=="}
    assert metadata.stream_associations[BOB].receives == {"UAAMm5GRQKSCMVvLyl4rFw==",
                                                          "i1Pz3to5hGk8fuXl+PbwCw=="}
    assert SESSION in metadata.session_recording
    assert (ALICE, SESSION) in metadata.participant_sessions
    who = {label: (p.name if (p := metadata.participant_for_label(label)) else None)
           for label in ("96", "97", "98", "99", "100")}
    assert who == {"96": "Alice", "97": "Alice", "98": "Bob", "99": "Bob", "100": None}
    assert metadata.paused_labels() == set()


def test_partial_updates_hold_and_resume() -> None:
    complete = parse_metadata(metadata_fixture("rfc7866_metadata.xml"))
    hold = parse_metadata(metadata_fixture("rfc7866_metadata_hold.xml"))
    assert hold.data_mode == "partial"
    held = merge(complete, hold)
    assert held.data_mode == "complete"
    assert held.stream_associations[ALICE].sends == set()  # an omitted <send>: not sending
    assert held.paused_labels() == {"96", "97"}
    assert held.participants[ALICE].name == "Alice"  # what the update did not touch stays
    assert complete.paused_labels() == set()  # merge copies, never changes what it was given
    resumed = merge(held, parse_metadata(metadata_fixture("rfc7866_metadata_resume.xml")))
    assert resumed.paused_labels() == set()
    assert resumed.participant_for_label("96") is not None


def test_only_a_stream_once_sent_can_be_paused() -> None:
    streams = (b"<stream stream_id='a'><label>1</label></stream>"
               b"<stream stream_id='b'><label>2</label></stream>")
    alice_sends = (b"<participantstreamassoc participant_id='alice'><send>a</send>"
                   b"</participantstreamassoc>")
    first = parse_metadata(RECORDING + streams + alice_sends + b"</recording>")
    assert first.paused_labels() == set()  # nobody is said to send b: undescribed, not paused
    # A complete document in which alice sends nothing any more pauses stream a.
    later = parse_metadata(RECORDING + streams + b"<participantstreamassoc "
                           b"participant_id='alice'><recv>b</recv></participantstreamassoc>"
                           b"</recording>")
    assert later.paused_labels() == set()
    assert merge(first, later).paused_labels() == {"1"}
    ended = parse_metadata(RECORDING + b"<dataMode>partial</dataMode><participantstreamassoc "
                           b"participant_id='alice'><send>a</send><disassociate-time>"
                           b"2020-01-01T00:00:00Z</disassociate-time></participantstreamassoc>"
                           b"</recording>")
    assert merge(first, ended).paused_labels() == {"1"}


def test_partial_update_adds_and_changes_elements_by_id() -> None:
    complete = parse_metadata(metadata_fixture("rfc7866_metadata.xml"))
    update = parse_metadata(
        RECORDING + b"<dataMode>partial</dataMode>"
        b"<participant participant_id='" + BOB.encode() + b"'><nameID aor='sip:bob@b.example'>"
        b"<name>Robert</name></nameID></participant>"
        b"<participant participant_id='carol'><nameID aor='sip:carol@c.example'/></participant>"
        b"<session session_id='" + SESSION.encode() + b"'>"
        b"<stop-time>2010-12-16T23:45:00Z</stop-time></session>"
        b"<stream stream_id='new' session_id='s'><label>100</label></stream>"
        b"<participantstreamassoc participant_id='carol'><send>new</send>"
        b"</participantstreamassoc></recording>")
    merged = merge(complete, update)
    assert (merged.participants[BOB].aor, merged.participants[BOB].name) == (
        "sip:bob@b.example", "Robert")
    assert merged.participants["carol"].aor == "sip:carol@c.example"
    assert merged.sessions[SESSION].stop_time == datetime(2010, 12, 16, 23, 45, tzinfo=UTC)
    assert merged.sessions[SESSION].group_id == "7+OTCyoxTmqmqyA/1weDAg=="
    carol = merged.participant_for_label("100")
    assert carol is not None
    assert carol.participant_id == "carol"
    assert merge(merged, complete).participants.keys() == complete.participants.keys()


def test_older_metadata_forms_are_understood() -> None:
    # The pre-RFC form some SBCs still send (namespace without :1, id=, <aor>, <send>).
    old = (b"<?xml version='1.0' encoding='UTF-8'?>"
           b"<recording xmlns='urn:ietf:params:xml:ns:recording'><dataMode>complete</dataMode>"
           b"<session id='s1'><start-time>2011-06-27T17:03:57</start-time></session>"
           b"<participant id='p1' session='s1'><aor>sip:sipp@192.0.2.40</aor>"
           b"<name>sipp </name><send>st1</send></participant>"
           b"<participant id='p2' session='s1'><aor>sip:service@192.0.2.60</aor></participant>"
           b"<stream id='st1' session='s1'><label>1</label><mode>separate</mode></stream>"
           b"</recording>")
    metadata = parse_metadata(old)
    assert metadata.sessions["s1"].start_time == datetime(2011, 6, 27, 17, 3, 57)
    sender = metadata.participant_for_label("1")
    assert sender is not None
    assert (sender.aor, sender.name) == ("sip:sipp@192.0.2.40", "sipp")
    assert metadata.streams["st1"].session_id == "s1"


def test_extensions_and_unknown_elements_are_ignored() -> None:
    metadata = parse_metadata(RECORDING + b"<x:ext xmlns:x='urn:x'><participant "
                              b"participant_id='fake'/></x:ext><whatever/></recording>")
    assert metadata.participants == {}


BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + b"".join(f'<!ENTITY lol{i} "{"&lol{};".format(i - 1 or "") * 10}">'.encode()
                             for i in range(1, 9))
                  + b"]><recording>&lol8;</recording>")


def xxe(path: Path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{path}">]>'
            f"<recording xmlns='urn:ietf:params:xml:ns:recording:1'><participant "
            f"participant_id='&x;'/></recording>").encode()


@pytest.mark.parametrize(("data", "reason"), [
    (BILLION_LAUGHS, "DOCTYPE"),
    (b"<!doctype recording><recording/>", "DOCTYPE"),
    (b"<!ENTITY a 'b'><recording/>", "DOCTYPE"),
    ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><recording/>'
     .encode("utf-16"), "DOCTYPE"),
    (b"<recording>", "malformed XML"),
    (b"\xff\xfe\x00", "malformed XML"),
    (b"<session xmlns='urn:ietf:params:xml:ns:recording:1'/>", "root element"),
    (b"<x:recording xmlns:x='urn:other'/>", "root element"),
    (RECORDING + b"<dataMode>sometimes</dataMode></recording>", "dataMode"),
    (RECORDING + b"<participant/></recording>", "participant_id"),
    (RECORDING + b"<stream><label>1</label></stream></recording>", "stream_id"),
    (RECORDING + b"<participantsessionassoc participant_id='a'/></recording>", "two ids"),
    (RECORDING + b"<a/>" * 6000 + b"</recording>", "too many elements"),
    (RECORDING + b" " * 200_000 + b"</recording>", "size limit"),
])
def test_hostile_or_broken_metadata_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(MetadataError, match=reason) as err:
        parse_metadata(data)
    assert err.value.status == 400


def test_an_external_entity_never_reads_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    with pytest.raises(MetadataError, match="DOCTYPE"):
        parse_metadata(xxe(secret))


@FUZZ
@given(st.binary(max_size=1500))
def test_any_bytes_give_metadata_or_metadata_error(data: bytes) -> None:
    with contextlib.suppress(MetadataError):
        parse_metadata(data)


@FUZZ
@given(st.lists(st.sampled_from([
    "<participant participant_id='p'><nameID aor='sip:a@b'><name>A</name></nameID>"
    "</participant>", "<stream stream_id='s'><label>1</label></stream>",
    "<participantstreamassoc participant_id='p'><send>s</send></participantstreamassoc>",
    "<participantstreamassoc participant_id='q'><recv>s</recv></participantstreamassoc>",
    "<session session_id='x'><start-time>nonsense</start-time></session>",
    "<dataMode>partial</dataMode>", "<dataMode>complete</dataMode>", "<group group_id='g'/>",
    "<sessionrecordingassoc session_id='x'><disassociate-time>2020-01-01T00:00:00Z"
    "</disassociate-time></sessionrecordingassoc>"]), max_size=12), st.data())
def test_any_sequence_of_updates_merges(elements: list[str], data: st.DataObject) -> None:
    known = parse_metadata(RECORDING + b"</recording>")
    for chunk in data.draw(st.lists(st.lists(st.sampled_from(elements or ["<x/>"])),
                                    max_size=4)):
        known = merge(known, parse_metadata(RECORDING + "".join(chunk).encode()
                                            + b"</recording>"))
        assert known.data_mode == "complete"
        assert known.paused_labels() <= {"1"}


# --- vendor headers -------------------------------------------------------------------------

def test_cube_parties_and_guid() -> None:
    message = parse_message(cube_invite())
    parties = cisco_participants(message.headers)
    assert [(p.user, p.aor, p.media_indexes) for p in parties] == [
        ("708090", "sip:708090@10.42.30.5", (0,)), ("10000", "sip:10000@10.42.30.32", (1,))]
    assert party_for_media(parties, 1) == parties[1]
    assert party_for_media(parties, 2) is None
    assert global_call_id(message.headers) == VendorCallId(
        "cisco-guid", "1334370502-1348997600-2396699092-3395863316")


def test_cisco_video_indexes_name_addr_and_junk() -> None:
    headers = Headers([
        ("X-Cisco-Recording-Participant", 'sip:1777@10.104.45.207;media-index="0 2"'),
        ("X-Cisco-Recording-Participant", '"Agent" <sip:1888@10.104.45.207>;media-index="1 3"'),
        ("X-Cisco-Recording-Participant", "<not a uri"),
    ])
    parties = cisco_participants(headers)
    assert [(p.user, p.display, p.media_indexes) for p in parties] == [
        ("1777", "", (0, 2)), ("1888", "Agent", (1, 3))]
    assert party_for_media(parties, 3) == parties[1]
    unindexed = cisco_participants(Headers([("X-Cisco-Recording-Participant", "sip:1@a"),
                                            ("X-Cisco-Recording-Participant", "sip:2@a")]))
    assert party_for_media(unindexed, 1) == unindexed[1]


@pytest.mark.parametrize(("headers", "expected"), [
    ([("Cisco-Guid", "0884935168-0000065536-0000000401-3475859466")],
     VendorCallId("cisco-guid", "0884935168-0000065536-0000000401-3475859466")),
    # Avaya: node 25, sequence 16, 0x38F725B3 seconds.
    ([("User-to-User", "00FA080019001038F725B3;encoding=hex")],
     VendorCallId("avaya-ucid", "00025000160955721139")),
    ([("User-to-User", "04FA08000100020000000A")], None),
    ([("X-UCID", "00001002161234567890")], VendorCallId("avaya-ucid", "00001002161234567890")),
    ([("X-Genesys-CallUUID", "4BOKLLA3VH66JF112M1CC9VHKS14F0KP")],
     VendorCallId("genesys", "4BOKLLA3VH66JF112M1CC9VHKS14F0KP")),
    ([("Cisco-Guid", "<script>"), ("X-UCID", "12")], None),
    ([], None),
])
def test_global_call_ids(headers: list[tuple[str, str]], expected: VendorCallId | None) -> None:
    assert global_call_id(Headers(headers)) == expected


def test_avaya_ucid_with_the_ie_prefix() -> None:
    assert avaya_ucid("0400FA080019001038F725B3") == "00025000160955721139"
    assert avaya_ucid("nonsense") is None
