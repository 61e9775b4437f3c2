"""Hostile input: hypothesis over the framing, the XML codec, the WebAPI's parameter merging and
the dispatcher (a real recorder, a real store in a temporary directory); a corpus of attacks
(XML bombs, external entities, deep nesting, binary junk, invalid UTF-8, huge fields, path
tricks in every parameter) sent over real sockets to a live service; and the atheris harness
run for a few seconds. The service must answer every message, never crash, never read or
write outside its directories, and keep serving.

FUZZ_EXAMPLES raises the hypothesis examples (default 60) and FUZZ_SECONDS the atheris run
(default 8 s) for longer local runs.
"""

from __future__ import annotations

import email
import email.policy
import importlib.util
import itertools
import os
import random
import socket
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree

from recorder.api.dispatcher import DEPRECATED, HANDLERS, Dispatcher
from recorder.api.handlers.media import MEDIA_REQUESTS, Media, media_handlers
from recorder.api.protocol.fields import ALIASES, FIELDS, FUNCTION_FIELDS
from recorder.api.protocol.webparams import merge_params
from recorder.api.protocol.xmlcodec import NOT_XML, parse_request, render_result
from recorder.api.request import ApiRequest, ApiResult, RequestError
from recorder.api.transport.framing import MAX_MARKUP, MessageFramer, MessageTooLarge
from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.resultcodes import ResultCode
from tests.helpers.api import request_xml, result_code
from tests.helpers.exports import record
from tests.helpers.net import smtp_server
from tests.helpers.recorders import BIN, IN_PROCESS_AND_RECORDERD, Running, base_config

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
FUZZ_SECONDS = int(os.environ.get("FUZZ_SECONDS", "8"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROOT = Path(__file__).resolve().parent.parent
CODES = {int(code) for code in ResultCode}
WAIT = 30.0

# Every parameter name the recorder knows, and the ones that name files, paths or exports.
PATH_PARAMS = ("DEVICEID", "DEVICEALIAS", "FILENAME", "MEDIA_FORMAT", "UNIQUEFIELD", "UNIQUEID",
               "IDENT", "RECORDID", "TOADDRESS", "FROMADDRESS", "TONAME", "FROMNAME",
               "PASSWORD", "RECORDINGPATH", "STATIONNAME", "COMPUTERNAME", "GROUP", "USER1",
               "USER4", "CALLID", "EVENTVALUE", "SESSIONID", "ROLENAME", "GROUPNAME")
PARAM_NAMES = sorted({*FIELDS, *ALIASES, *PATH_PARAMS,
                      *(name for table in FUNCTION_FIELDS.values() for name in table)})
REQUEST_TYPES = sorted({*HANDLERS, *DEPRECATED, *MEDIA_REQUESTS})


def check_answer(answer: bytes) -> etree._Element:
    """One RESULT on one line, with a code the manual defines and no internal error."""
    assert b"\n" not in answer, answer[:200]
    assert b"\r" not in answer, answer[:200]
    result = etree.fromstring(answer)
    assert result.tag == "RESULT"
    code = result_code(result)
    assert code in CODES, answer[:300]
    # 11 is what the dispatcher answers when a handler raised: a bug, whatever the input.
    assert code != ResultCode.API_ERROR_PROCESSING_MESSAGE, answer[:300]
    assert len(result.findtext("REQUESTTYPE") or "") <= 64
    return result


# --- the framer ------------------------------------------------------------------------------

def feed_all(framer: MessageFramer, chunks: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for chunk in chunks:
        try:
            out += framer.feed(chunk)
        except MessageTooLarge as exc:
            out += exc.complete
            out.append(b"<TOO LARGE>")
        # Never more than one message's worth (and the chunk that overran it) is kept.
        assert len(framer._buf) <= framer.max_bytes + len(chunk)
    tail = framer.flush()
    return out + ([tail] if tail is not None else [])


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


MARKUPISH = st.lists(st.sampled_from([
    b"<", b">", b"</", b"/>", b"<REQUEST>", b"</REQUEST>", b"<TYPE>", b"</TYPE>", b"TEST",
    b"<!--", b"-->", b"<![CDATA[", b"]]>", b"<?", b"?>", b"<!DOCTYPE x [", b"]>", b"\"", b"'",
    b"\r\n", b"\n", b" ", b"x", b"\xef\xbb\xbf", b"\xff", b"&", b";", b"=", b"\0",
]), max_size=60).map(b"".join)


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), MARKUPISH),
       cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
@example(data=b"\x00 \r", cuts=[])  # a text line ending in a blank (found by the fuzzer)
@example(data=b"\x0b", cuts=[])  # a vertical tab is no XML blank: a message (found by the fuzzer)
def test_the_framer_is_the_same_however_the_bytes_are_cut(data: bytes, cuts: list[int]) -> None:
    assert len(data) < MAX_MARKUP  # past it, a tag is judged by what has arrived (documented)
    whole = feed_all(MessageFramer(1 << 20), [data])
    assert feed_all(MessageFramer(1 << 20), chunked(data, cuts)) == whole
    for message in whole:
        assert message
        if not message.startswith((b"\xff\xfe", b"\xfe\xff", b"\0", b"<\0")):
            # Blanks are XML's four (bytes.strip would also take VT and FF, which are not).
            # UTF-16 keeps the NUL halves of its characters.
            assert message.strip(b" \t\r\n") == message


@FUZZ
@given(data=st.binary(max_size=6000), cuts=st.lists(st.integers(0, 6000), max_size=8))
def test_the_framer_holds_no_more_than_its_limit(data: bytes, cuts: list[int]) -> None:
    feed_all(MessageFramer(1024), chunked(data, cuts))


JUNK_LINE = st.one_of(
    # A line holds no line end (CR, LF, NUL).
    st.binary(max_size=80).map(lambda b: b.translate(None, b"<\r\n\0")).filter(bool),
    st.sampled_from([b"<REQUEST><TYPE>TEST</TYPE><BR></REQUEST>", b"<REQUEST><A><B>x</B></A>",
                     b"</REQUEST>", b"<REQUEST>", b"<1>", b"< 3", b"<REQUEST><TYPE>TEST",
                     b"<TEST/>"]),
)


@FUZZ
@given(lines=st.lists(st.one_of(st.integers(0, 10**6), JUNK_LINE), max_size=12))
def test_junk_between_requests_never_swallows_a_request(lines: list[int | bytes]) -> None:
    stream = b"".join((request_xml("TEST", item) if isinstance(item, int) else item) + b"\r\n"
                      for item in lines)
    messages = feed_all(MessageFramer(1 << 20), [stream])
    wanted = [request_xml("TEST", item) for item in lines if isinstance(item, int)]
    assert [m for m in messages if m in wanted] == wanted


# --- the XML codec and the WebAPI's parameters -----------------------------------------------

@FUZZ
@given(data=st.one_of(st.binary(max_size=3000), MARKUPISH,
                      st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))))
def test_parsing_anything_gives_a_request_or_16(data: bytes) -> None:
    try:
        request = parse_request(data)
    except RequestError as exc:
        code = exc.code
    else:
        assert request.type == request.type.upper()
        return
    assert code == ResultCode.API_INVALID_MESSAGE_FORMAT


@pytest.mark.parametrize(("encoding", "refusal"), [
    # Refused for its encoding before lxml, which would read it, sees it.
    ("utf-16", "the message is in UTF-16"),
    ("utf-32", "the message is in UTF-32"),
])
def test_a_doctype_hidden_in_a_wide_encoding_is_refused(encoding: str, refusal: str) -> None:
    message = (f'<?xml version="1.0" encoding="{encoding.upper()}"?><!DOCTYPE r [<!ENTITY x '
               'SYSTEM "file:///etc/passwd">]><REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID>'
               '<USER1>&x;</USER1></REQUEST>').encode(encoding)
    with pytest.raises(RequestError, match=refusal) as refused:
        parse_request(message)
    assert "root:" not in refused.value.message


XML_NAME = st.from_regex(r"\A[A-Z][A-Z0-9_]{0,20}\Z")
XML_TEXT = st.text(max_size=80).map(lambda t: NOT_XML.sub("", t))


@FUZZ
@given(params=st.dictionaries(XML_NAME.filter(lambda n: n not in ("TYPE", "REQUESTTYPE",
                                                                  "REQUESTID")),
                              XML_TEXT, max_size=8),
       request_type=XML_NAME, request_id=XML_TEXT)
def test_a_well_formed_request_parses_to_what_was_sent(
        params: dict[str, str], request_type: str, request_id: str) -> None:
    body = "".join(f"<{k.lower()}>{escape(v)}</{k.lower()}>" for k, v in params.items())
    message = (f"<REQUEST><TYPE>{escape(request_type)}</TYPE><REQUESTID>{escape(request_id)}"
               f"</REQUESTID>{body}</REQUEST>").encode()
    request = parse_request(message)
    assert request.type == request_type
    # XML reads a CR as LF (end-of-line handling); the recorder strips the ends of values.
    assert request.request_id == request_id.replace("\r\n", "\n").replace("\r", "\n").strip()
    assert request.params == {k: v.replace("\r\n", "\n").replace("\r", "\n").strip()
                              for k, v in params.items()}


@FUZZ
@given(request_type=st.text(max_size=100), request_id=st.text(max_size=100),
       message=st.text(max_size=300))
def test_a_result_is_one_line_of_xml_whatever_it_echoes(
        request_type: str, request_id: str, message: str) -> None:
    answer = render_result(request_type, request_id, ApiResult(ResultCode.API_OK, message))
    result = etree.fromstring(answer)
    assert b"\n" not in answer
    assert result.findtext("RESULTMSG") == NOT_XML.sub("\ufffd", message)


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(["type", "TYPE", "Type", "deviceid", "ident"])
                                | st.text(max_size=12), st.text(max_size=30)), max_size=10))
def test_webapi_parameters_merge_or_are_refused_with_16(pairs: list[tuple[str, str]]) -> None:
    try:
        merged = merge_params(pairs)
    except RequestError as exc:
        refused: RequestError | None = exc
    else:
        refused = None
    if refused is not None:
        assert refused.code == ResultCode.API_INVALID_MESSAGE_FORMAT
        bad_text = any(NOT_XML.search(n) or NOT_XML.search(v) for n, v in pairs)
        spellings: dict[str, set[str]] = {}
        for name, _ in pairs:
            spellings.setdefault(name.upper(), set()).add(name)
        assert bad_text or any(len(s) > 1 for s in spellings.values())
        return
    names = [name for name, _ in merged]
    assert len({n.upper() for n in names}) == len(names)
    for name, value in merged:
        assert value == ",".join(v for n, v in pairs if n == name)


# --- the dispatcher, on a real recorder --------------------------------------------------------

@pytest.fixture(scope="module")
def dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Dispatcher, Path]]:
    tmp = tmp_path_factory.mktemp("fuzzed")
    recorder = Recorder(config_from_dict(base_config(tmp), base_dir=tmp))
    recorder.start()
    try:
        assert recorder.dispatcher is not None
        dispatcher = recorder.dispatcher
        for request_type in ("CALLSTART", "CALLSTOP"):  # one recording to export
            check_answer(dispatcher.handle(ApiRequest(request_type, "1",
                                                      {"DEVICEID": "1001"})))
        yield dispatcher, tmp / "data"
    finally:
        recorder.stop()


TRICKS = ["../../etc/passwd", "/etc/passwd", "..\\..\\..\\etc\\passwd", "C:\\Windows\\win.ini",
          "file:///etc/passwd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "~/.ssh/id_rsa",
          "\\\\server\\share\\file", "recordings/../../../etc/shadow", "CON", "nul",
          "a/b/c/../../../../../../tmp/x", "x" * 300, "1; DROP TABLE recordings", "*", "%",
          "' OR '1'='1", "1,2,3,../4", "-1", "0", "99999999999999999999999", "ident", "filename"]
VALUES = st.one_of(st.sampled_from(TRICKS), st.text(max_size=40),
                   st.integers(-(10**20), 10**20).map(str), st.just("1"), st.just(""),
                   st.sampled_from(["WAV", "mp3", "cav", "Y", "N", "ALL", "1001", "ADD",
                                    "qa@example.com", "1,1"]))


@FUZZ
@given(request_type=st.sampled_from(REQUEST_TYPES) | st.text(max_size=20),
       request_id=st.sampled_from(["1", "0", "", "-1", "x", "2147483648"]) | st.text(max_size=5),
       params=st.lists(st.tuples(st.sampled_from(PARAM_NAMES) | st.text(max_size=10), VALUES),
                       max_size=8))
def test_the_dispatcher_answers_any_request_without_an_internal_error(
        dispatcher: tuple[Dispatcher, Path], request_type: str, request_id: str,
        params: list[tuple[str, str]]) -> None:
    handler, data_dir = dispatcher
    pairs = [("type", request_type), ("requestid", request_id), *params]
    try:
        merged = merge_params(pairs)
    except RequestError:
        return  # the WebAPI answers these itself (16), before the dispatcher
    delivered: list[Media] = []
    answer = handler.handle_params(merged, media_handlers(delivered.append))
    check_answer(answer)
    for media in delivered:  # exports are written in the recorder's own directory only
        assert media.path.resolve().is_relative_to((data_dir / "tmp").resolve())
        assert "/" not in media.filename
        assert "\\" not in media.filename
        media.path.unlink()


@pytest.mark.parametrize("request_type", ["COMBINEDEXPORT", "MULTIEXPORT", "EMAIL"])
def test_an_ident_too_big_for_the_database_is_refused_with_16(
        dispatcher: tuple[Dispatcher, Path], request_type: str) -> None:
    # Found by the corpus: SQLite cannot take the number, and the export answered 11.
    handler, _ = dispatcher
    answer = check_answer(handler.handle_params(
        [("type", request_type), ("requestid", "1"), ("ident", "1,99999999999999999999"),
         ("media_format", "WAV"), ("toaddress", "qa@example.com")],
        media_handlers(lambda media: media.path.unlink())))
    assert result_code(answer) == 16
    assert (answer.findtext("RESULTMSG") or "").startswith("IDENT must be RECORDIDs")


# --- the attack corpus over real sockets ------------------------------------------------------

@dataclass
class Mailbox:
    """What an aiosmtpd server on 127.0.0.1 received."""

    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        self.received.append(content)
        return "250 accepted"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with smtp_server(box) as port:
        yield box, port


def exchange(port: int, data: bytes) -> list[bytes]:
    """Send ``data`` on a connection of its own, end it, and read every answer to the close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(1 << 16):
            received += chunk
    except ConnectionResetError:
        received = b"<RESET>"  # what a client over a limit may see; checked below
    finally:
        sock.close()
    assert received.endswith(b"\r\n") or received == b"", received[-200:]
    return received.split(b"\r\n")[:-1]


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    """Every file under ``root`` but outside ``skip``, with its content (links by target)."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path == skip or path.is_relative_to(skip):
            continue
        if path.is_symlink():
            files[str(path)] = b"-> " + str(path.readlink()).encode()
        elif path.is_file():
            files[str(path)] = path.read_bytes()
        else:
            files[str(path)] = b"<dir>"
    return files


def corpus(canary: Path, escape_link: Path, data_dir: Path) -> list[tuple[str, bytes]]:
    """Named attacks, each one socket exchange."""
    secret = canary / "secret.txt"
    def req(inner: str) -> bytes:
        return f"<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID>{inner}</REQUEST>".encode()
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    xxe = (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID><USER1>&x;</USER1></REQUEST>')
    rng = random.Random(9)
    attacks = [
        ("billion laughs", (f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]>'
                            + req("<USER1>&l9;</USER1>").decode()).encode()),
        ("external entity: canary", xxe.encode()),
        ("external entity: /etc/passwd", xxe.replace(f"file://{secret}",
                                                      "file:///etc/passwd").encode()),
        ("external entity in UTF-16", xxe.replace('version="1.0"',
                                                  'version="1.0" encoding="UTF-16"')
         .encode("utf-16")),
        ("parameter entity", f'<!DOCTYPE r [<!ENTITY % p SYSTEM "file://{secret}"> %p;]>'
         .encode() + req("")),
        ("lower-case doctype", b"<!doctype REQUEST>" + req("")),
        ("undeclared entity", req("<USER1>&passwd;</USER1>")),
        ("xinclude", ('<REQUEST xmlns:xi="http://www.w3.org/2001/XInclude"><TYPE>TEST</TYPE>'
                      f'<REQUESTID>1</REQUESTID><USER1><xi:include href="file://{secret}" '
                      'parse="text"/></USER1></REQUEST>').encode()),
        ("10,000-deep nesting", req("<USER1>" + "<d>" * 10000 + "</d>" * 10000 + "</USER1>")),
        ("deep nesting, no root end", b"<a>" * 10000),
        ("random binary", rng.randbytes(64 * 1024)),
        ("binary with CRLF", b"\r\n".join(rng.randbytes(100) for _ in range(50))),
        ("invalid UTF-8", req("<USER1>\xff\xfe\xc3\x28\xed\xa0\x80</USER1>".encode("latin-1"))),
        ("overlong UTF-8 slash", req("<USER1>").replace(b"</REQUEST>", b"")
         + b"\xc0\xaf</USER1></REQUEST>"),
        ("NUL byte", req("<USER1>a\x00b</USER1>")),
        ("NUL reference", req("<USER1>a&#0;b</USER1>")),
        ("1 MB field", req("<USER4>" + "x" * 1_000_000 + "</USER4>")),
        ("1 MB of tags", b"<x a='1'>" * 120_000),
        ("huge attribute", b'<REQUEST a="' + b"y" * 200_000 + b'"><TYPE>TEST</TYPE>'
         b"<REQUESTID>1</REQUESTID></REQUEST>"),
        ("unterminated comment", b"<!--" + b"z" * 40_000),
        ("CDATA", req(f"<USER1><![CDATA[{secret}]]></USER1>")),
        ("processing instruction", f'<?xml-stylesheet href="file://{secret}"?>'.encode()
         + req("")),
    ]
    tricks = [*TRICKS, str(secret), str(Path(os.path.relpath(secret, data_dir))),
              str(escape_link / "secret.txt"), "recordings/escape/secret.txt",
              str(data_dir / ".." / canary.name / "secret.txt"), f"{secret}\x00.wav",
              str(secret).replace("/", "\\")]
    # Every request type with every path-like parameter set to each trick at once, then each
    # parameter on its own beside valid ones, so the trick reaches the code behind the checks.
    for trick in tricks:
        text = escape(NOT_XML.sub("\ufffd", trick)).replace("\ufffd", "&#0;")
        batch = b""
        for request_type in REQUEST_TYPES:
            inner = "".join(f"<{p}>{text}</{p}>" for p in PATH_PARAMS)
            batch += (f"<REQUEST><TYPE>{request_type}</TYPE><REQUESTID>1</REQUESTID>{inner}"
                      "</REQUEST>\r\n").encode()
        attacks.append((f"every parameter = {trick[:30]!r}", batch))
    return attacks


BASELINES: dict[str, dict[str, str]] = {
    "EXPORT": {"UNIQUEFIELD": "ident", "UNIQUEID": "{ident}", "MEDIA_FORMAT": "WAV"},
    "COMBINEDEXPORT": {"IDENT": "{ident}", "MEDIA_FORMAT": "WAV"},
    "MULTIEXPORT": {"IDENT": "{ident}", "MEDIA_FORMAT": "WAV"},
    "EMAIL": {"IDENT": "{ident}", "TOADDRESS": "qa@example.com", "MEDIA_FORMAT": "WAV"},
    "COMBINEDEMAIL": {"IDENT": "{ident}", "TOADDRESS": "qa@example.com", "UNIQUEID": "IDENT",
                      "FROMADDRESS": "rec@example.com", "FROMNAME": "rec"},
    "CALLLIST": {"DEVICEID": "1001", "CALLCOUNT": "5"},
    "CALLSTART": {"DEVICEID": "1002", "DEVICEALIAS": "a", "USER4": "u"},
    "DEVICESTATUS": {"DEVICEID": "1001"},
    "IMPORTWORKSTATION": {"ACTION": "ADD", "STATIONNAME": "s", "COMPUTERNAME": "c",
                          "DEVICEID": "1003"},
}


def web_tricks(ident: str, tricks: list[str]) -> list[dict[str, str]]:
    """Each baseline request with one of its parameters replaced by each trick: the others
    valid, so the trick gets past the checks of the rest. (PASSWORD only keys a CAV's
    encryption, slowly on purpose; the socket batches give it every trick.)"""
    out = []
    for request_type, baseline in BASELINES.items():
        base = {k: v.replace("{ident}", ident) for k, v in baseline.items()}
        for name in sorted(base):
            for trick in tricks:
                out.append({"type": request_type, "requestid": "7", **base, name: trick})
        if request_type == "CALLSTART":
            out.append({"type": "CALLSTOP", "requestid": "8", "DEVICEID": "1002"})
    return out


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
@pytest.mark.timeout(240)
def test_the_attack_corpus_is_answered_and_nothing_escapes(
        start_recorder: Any, tmp_path: Path, mailbox: tuple[Mailbox, int]) -> None:
    box, smtp_port = mailbox
    canary = tmp_path / "canary"
    canary.mkdir()
    token = f"CANARY-{random.Random().getrandbits(64):016x}"
    (canary / "secret.txt").write_text(f"{token}\n")
    (canary / "secret.wav").write_text(f"{token}\n")
    running: Running = start_recorder(
        api={"socket_port": 0, "web_port": 0, "max_message_bytes": 1 << 21},
        smtp={"host": "127.0.0.1", "port": smtp_port})
    data_dir = running.data_dir
    escape_link = data_dir / "recordings" / "escape"
    escape_link.parent.mkdir(parents=True, exist_ok=True)
    escape_link.symlink_to(canary, target_is_directory=True)
    conn = running.connect()
    ident = record(conn, "1001", 0.3)["RECORDID"]
    conn.close()
    outside = snapshot(tmp_path, data_dir)

    answers: list[bytes] = []
    for name, data in corpus(canary, escape_link, data_dir):
        got = exchange(running.socket_port, data)
        assert got or name.startswith(("random", "binary", "unterminated", "1 MB of")), name
        for answer in got:
            assert token.encode() not in answer, name
            assert b"root:x:0:0" not in answer, name
            check_answer(answer)
        answers += got
        assert result_code(running.request("TEST", 2)) == 20, f"not serving after {name}"

    tricks = ["../../etc/passwd", "/etc/passwd", "..\\..\\..\\etc\\passwd",
              "file:///etc/passwd", "99999999999999999999999", str(canary / "secret.txt"),
              str(escape_link / "secret.wav"), "recordings/escape/secret.wav",
              f"{canary}/secret.txt\x00.wav"]
    for params in web_tricks(ident, tricks):
        status, body = running.web(urllib.parse.urlencode(params))
        assert token.encode() not in body, params
        assert b"root:x:0:0" not in body, params
        assert status == 200, (params, body[:300])
        if body.startswith(b"<RESULT>"):
            check_answer(body)
    # A huge query string and a huge form body: refused, not choked on.
    status, body = running.web("type=TEST&requestid=1&user1=" + "x" * 100_000)
    assert status in (400, 414), status
    status, body = running.web("", method="POST", body=b"type=TEST&requestid=1&user4="
                               + b"x" * 3_000_000)
    assert status == 413
    check_answer(body)
    status, body = running.web("type=TEST&requestid=1&user1=%FF%FE%00")
    assert status == 200
    assert result_code(etree.fromstring(body)) == 16

    # E-mails went out only with the recorder's own exports attached.
    for content in box.received:
        assert token.encode() not in content
        message = email.message_from_bytes(content, policy=email.policy.default)
        for part in message.iter_attachments():  # type: ignore[attr-defined]
            assert token.encode() not in part.get_payload(decode=True)
    assert snapshot(tmp_path, data_dir) == outside, "a file outside the data directory changed"
    assert (canary / "secret.txt").read_text() == f"{token}\n"
    assert sorted(p.name for p in canary.iterdir()) == ["secret.txt", "secret.wav"]
    for path in data_dir.rglob("*"):  # and nothing inside named after what clients sent
        assert "passwd" not in path.name, path
        assert "secret" not in path.name, path
    assert result_code(running.request("TEST", 3)) == 20
    assert result_code(running.web_result(type="TEST", requestid=4)) == 20


# --- atheris ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_atheris_harness_finds_no_crash_in_a_short_run(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    proc = subprocess.run(
        [str(BIN / "python"), str(ROOT / "fuzz" / "fuzz_api.py"),
         f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=2048", "-timeout=20",
         f"-artifact_prefix={tmp_path}/"],
        cwd=tmp_path, capture_output=True, text=True, timeout=FUZZ_SECONDS + 120,
        env={**os.environ, "FUZZ_DATA_DIR": str(tmp_path / "data")}, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "Done" in output, output[-4000:]
    assert "cov:" in output, output[-4000:]
    assert not list(tmp_path.glob("crash-*")), output[-4000:]


def test_the_harness_answers_what_it_is_given(tmp_path: Path) -> None:
    """The harness's check itself: each input runs to its answers without an error."""
    pytest.importorskip("atheris")
    spec = importlib.util.spec_from_file_location("fuzz_api", ROOT / "fuzz" / "fuzz_api.py")
    assert spec is not None
    assert spec.loader is not None
    fuzz_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fuzz_api)
    recorder = fuzz_api.start_recorder(tmp_path / "data")
    try:
        assert recorder.dispatcher is not None
        answers = fuzz_api.run_input(recorder.dispatcher, request_xml("TEST", 1) + b"\r\n<x",
                                     [5, 17, 100])
    finally:
        recorder.stop()
    assert [result_code(etree.fromstring(a)) for a in answers] == [20, 16]

