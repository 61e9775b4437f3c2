"""Parsing requests safely and rendering results the way the manual shows them."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from recorder.api.protocol.xmlcodec import parse_flat_request, parse_request, render_result
from recorder.api.request import ApiResult, RequestError
from recorder.resultcodes import ResultCode


def test_request_with_type() -> None:
    req = parse_request(b"<REQUEST>\n  <TYPE>TEST</TYPE>\n  <REQUESTID>1</REQUESTID>\n</REQUEST>")
    assert (req.type, req.request_id, dict(req.params)) == ("TEST", "1", {})


def test_request_with_requesttype_and_padded_values() -> None:
    # The manual's MODIFYROLE examples pad the type with spaces.
    req = parse_request(b"<REQUEST><REQUESTTYPE> CALLLIST </REQUESTTYPE><REQUESTID> 7 </REQUESTID>"
                        b"<DEVICEID> 1001 </DEVICEID></REQUEST>")
    assert (req.type, req.request_id, dict(req.params)) == ("CALLLIST", "7", {"DEVICEID": "1001"})


def test_root_tag_can_be_the_message_type() -> None:
    req = parse_request(b"<test><requestid>3</requestid><deviceid>5</deviceid></test>")
    assert (req.type, req.request_id, dict(req.params)) == ("TEST", "3", {"DEVICEID": "5"})


def test_entities_and_unicode_come_through_exactly() -> None:
    req = parse_request('<REQUEST><TYPE>X</TYPE><USER1>a &amp; b &lt;c&gt; "d" \'e\' Zoë 東京'
                        "</USER1></REQUEST>".encode())
    assert req.params["USER1"] == "a & b <c> \"d\" 'e' Zoë 東京"


@pytest.mark.parametrize(("message", "reason"), [
    (b"<REQUEST><TYPE>TEST</TYPE>", "malformed XML"),
    (b"hello", "malformed XML"),
    (b"\xff\xfe<REQUEST/>", "the message is in UTF-16; the socket API reads UTF-8"),
    ("<REQUEST><TYPE>TEST</TYPE></REQUEST>".encode("utf-16"), "the message is in UTF-16"),
    ("<REQUEST><TYPE>TEST</TYPE></REQUEST>".encode("utf-16-be"), "the message is in UTF-16"),
    (b"<REQUEST><TYPE>A</TYPE><TYPE>B</TYPE></REQUEST>", "TYPE is given more than once"),
    (b"<REQUEST><USER1><B>x</B></USER1></REQUEST>", "USER1 must hold text, not elements"),
    (b'<!DOCTYPE R [<!ENTITY a "aaaa">]><REQUEST><USER1>&a;</USER1></REQUEST>',
     "DOCTYPE and ENTITY declarations are not accepted"),
    (b"<!doctype REQUEST><REQUEST/>", "DOCTYPE and ENTITY declarations are not accepted"),
    # A NUL past the first two bytes is no sign of UTF-16 or UTF-32 (whose "<" has its NUL
    # beside it): just a character XML cannot hold.
    (b"<R\0/>", "malformed XML at line 1, column 3: Invalid character"),
    # Cut short after its first character: "<" in UTF-16, too short for UTF-32's four bytes.
    (b"<\0", "the message is in UTF-16"),
])
def test_bad_messages_get_code_16(message: bytes, reason: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request(message)
    assert err.value.code is ResultCode.API_INVALID_MESSAGE_FORMAT
    assert reason in err.value.message


@pytest.mark.parametrize(("message", "words", "ids"), [
    (b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>7</REQUESTID><X></REQUEST>",
     "malformed XML at line 1, column 64: <X> is closed by </REQUEST>; every element must end "
     "with its own end tag", ("TEST", "7")),
    (b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID> 42 </REQUESTID><ANI>1</ANI>",
     "the message ends before <REQUEST> is closed (its </REQUEST> is missing)",
     ("CALLSTART", "42")),
    (b"<CALLSTOP><REQUESTID>9</REQUESTID><DEVICEID>1</DEVICE></CALLSTOP>",
     "<DEVICEID> is closed by </DEVICE>", ("CALLSTOP", "9")),
    # The root names the type whatever its name sorts after; <REQUEST> names none.
    (b"<TEST><REQUESTID>4</REQUESTID><X></TEST>", "<X> is closed by </TEST>", ("TEST", "4")),
    (b"<REQUEST><REQUESTID>3</REQUESTID><X></REQUEST>", "<X> is closed by </REQUEST>",
     ("", "3")),
    (b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>8</REQUESTID><USER1>&bogus;</USER1></REQUEST>",
     "&bogus; is not an XML entity (write &amp; for a literal &)", ("TEST", "8")),
    (b"<REQUEST><TYPE>TEST</TYPE><REQUESTID>5</REQUESTID><USER1>a < b</USER1></REQUEST>",
     "a < that starts no element (write &lt; for a literal <)", ("TEST", "5")),
    (b"hello", "the message is not XML: it must start with an element such as <REQUEST>",
     ("", None)),
    (b"<REQUEST><TYPE>TEST</TYPE></REQUEST><REQUEST/>",
     "something follows the end tag of the root element", ("TEST", None)),
])
def test_a_broken_request_is_answered_in_words_with_its_type_and_id(
        message: bytes, words: str, ids: tuple[str, str | None]) -> None:
    """An integrator matches answers by REQUESTID, and needs to know what to fix."""
    with pytest.raises(RequestError) as err:
        parse_request(message)
    assert err.value.code is ResultCode.API_INVALID_MESSAGE_FORMAT
    assert words in err.value.message
    assert (err.value.request_type, err.value.request_id) == ids


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_refused_with_its_type_and_id(encoding: str) -> None:
    with pytest.raises(RequestError) as err:
        parse_request("<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>12</REQUESTID></REQUEST>"
                      .encode(encoding))
    assert (err.value.request_type, err.value.request_id) == ("CALLSTART", "12")


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-le", "utf-32-be"])
def test_utf32_is_refused_as_utf32_with_its_type_and_id(encoding: str) -> None:
    """With a byte-order mark or without, either end first: named as UTF-32 (not UTF-16, whose
    NULs it also has), and read in the right byte order, or TYPE and REQUESTID would be lost."""
    with pytest.raises(RequestError) as err:
        parse_request("<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>12</REQUESTID></REQUEST>"
                      .encode(encoding))
    assert err.value.code is ResultCode.API_INVALID_MESSAGE_FORMAT
    assert err.value.message.startswith("the message is in UTF-32; the socket API reads UTF-8")
    assert (err.value.request_type, err.value.request_id) == ("CALLSTART", "12")


def test_the_manuals_bare_ampersand_is_read_as_printed() -> None:
    # ADDGROUP's and MODIFYGROUPPERMISSION's examples in the manual hold a raw "&".
    req = parse_request(b"<REQUEST>\r\n  <TYPE>ADDGROUP</TYPE>\r\n  <REQUESTID>1</REQUESTID>\r\n"
                        b"  <GROUPNAME>Sales & Marketing</GROUPNAME>\r\n"
                        b"  <DESCRIPTION>Q&A &amp; &#38; &#x26; &lt;</DESCRIPTION>\r\n</REQUEST>")
    assert req.params["GROUPNAME"] == "Sales & Marketing"
    assert req.params["DESCRIPTION"] == "Q&A & & & <"
    # Real references still mean what they say; "&D;" is not one XML knows, so it is refused
    # below rather than guessed at.
    with pytest.raises(RequestError, match="&D; is not an XML entity"):
        parse_request(b"<REQUEST><TYPE>X</TYPE><USER1>R&D;</USER1></REQUEST>")
    req = parse_request(b"<REQUEST><TYPE>X</TYPE><USER1>a & b &amp; &#38;&#x26;&lt;</USER1>"
                        b"</REQUEST>")
    assert req.params["USER1"] == "a & b & &&<"


def test_an_external_entity_never_reads_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    xxe = (f'<?xml version="1.0"?><!DOCTYPE R [<!ENTITY x SYSTEM "file://{secret}">]>'
           "<REQUEST><TYPE>TEST</TYPE><USER1>&x;</USER1></REQUEST>").encode()
    with pytest.raises(RequestError) as err:
        parse_request(xxe)
    assert "TOP-SECRET" not in err.value.message


def test_billion_laughs_is_refused_without_expanding() -> None:
    lol = b'<!DOCTYPE l [<!ENTITY a "lol">' + b"".join(
        b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), (b"&%s;" % chr(97 + i).encode()) * 10)
        for i in range(9)) + b"]><l>&j;</l>"
    with pytest.raises(RequestError):
        parse_request(lol)


def test_result_has_the_manual_fields_escaped_on_one_line() -> None:
    out = render_result("CALLSTART", "1", ApiResult(
        ResultCode.API_DEVICE_INVALID, 'no <device> & "quotes" Zoë',
        [("DEVICES", [("COUNT", "1"), ("DEVICE", [("ANI", "a&b")])])]))
    assert b"\n" not in out
    assert b"\r" not in out
    root = etree.fromstring(out)
    assert [e.tag for e in root][:5] == ["REQUESTTYPE", "REQUESTID", "RESULTTYPE", "RESULTCODE",
                                         "RESULTMSG"]
    assert root.findtext("RESULTTYPE") == "API_DEVICE_INVALID"
    assert root.findtext("RESULTCODE") == "8"
    assert root.findtext("RESULTMSG") == 'no <device> & "quotes" Zoë'
    assert root.findtext("DEVICES/DEVICE/ANI") == "a&b"
    assert b"a&amp;b" in out


def test_code_17_carries_the_manuals_label() -> None:
    out = render_result("X", "1", ApiResult(ResultCode.API_INVALID_MESSAGE_FORMAT_17, "m"))
    assert etree.fromstring(out).findtext("RESULTTYPE") == "API_INVALID_MESSAGE_FORMAT"


def test_a_flat_request_of_up_to_64_kib_takes_the_flat_path() -> None:
    """The flat parser runs in the event loop, so it is bounded: 64 KiB, a byte more goes to
    lxml (which reads it the same)."""
    head, tail = b"<REQUEST><TYPE>CALLSTART</TYPE><USER4>", b"</USER4></REQUEST>"
    fits = head + b"x" * (64 * 1024 - len(head) - len(tail)) + tail
    request = parse_flat_request(fits)
    assert request is not None
    assert (request.type, len(request.params["USER4"])) == ("CALLSTART", 64 * 1024 - 56)
    over = head + b"x" * (64 * 1024 + 1 - len(head) - len(tail)) + tail
    assert parse_flat_request(over) is None
    assert len(parse_request(over).params["USER4"]) == 64 * 1024 + 1 - 56


def test_both_type_tags_are_taken_out_of_the_parameters() -> None:
    req = parse_request(b"<REQUEST><TYPE>TEST</TYPE><REQUESTTYPE>TEST</REQUESTTYPE>"
                        b"<REQUESTID>1</REQUESTID></REQUEST>")
    assert (req.type, req.request_id, dict(req.params)) == ("TEST", "1", {})


def test_a_body_tag_xml_does_not_allow_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="tag name"):
            render_result("X", "1", ApiResult(ResultCode.API_OK, "m", [("NOT A TAG", "x")]))


def test_the_root_names_the_type_only_when_no_type_tag_does() -> None:
    assert parse_request(b"<CALLSTART><REQUESTID>1</REQUESTID></CALLSTART>").type == "CALLSTART"
    assert parse_request(b"<MESSAGE><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID></MESSAGE>"
                         ).type == "TEST"
    assert parse_request(b"<REQUEST><REQUESTID>1</REQUESTID></REQUEST>").type == ""


def test_the_result_echoes_the_requestid() -> None:
    out = render_result("TEST", "42", ApiResult(ResultCode.API_OK, "m"))
    assert etree.fromstring(out).findtext("REQUESTID") == "42"
    out = render_result("TEST", None, ApiResult(ResultCode.API_OK, "m"))
    assert etree.fromstring(out).findtext("REQUESTID") == ""
