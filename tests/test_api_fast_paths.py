"""The socket API's fast paths give what the general ones give: the framer's split of one-line
flat requests, the pattern parser of flat requests, the string renderer of results (each checked
against the general code with hypothesis), and the scheduler's memory of each device's agent,
which every directory change must reach (a real recorder over real sockets)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from recorder.api.dispatcher import DIRECTORY_CHANGES, HANDLERS, agents_may_have_moved
from recorder.api.protocol.xmlcodec import (
    FLAT_MAX_BYTES,
    NOT_XML,
    parse_flat,
    parse_request,
    parse_tree,
    render_result,
)
from recorder.api.request import ApiRequest, ApiResult, Node, RequestError
from recorder.api.transport.framing import MessageFramer, MessageTooLarge
from recorder.calls.lookup import AgentCache
from recorder.resultcodes import ResultCode
from tests.helpers.api import ApiConnection, add_user, expect, request_xml
from tests.helpers.recorders import Running

CHECKS = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# What a CTI link sends (benchmarks/api.py sends exactly this).
CTI_START = (b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>7</REQUESTID><DEVICEID>2001</DEVICEID>"
             b"<ANI>6145550007</ANI><DNIS>8005550100</DNIS><CALLDIRECTION>I</CALLDIRECTION>"
             b"<USER1>ACCT00000007</USER1></REQUEST>")

# --- hypothesis strategies: messages near the flat shape, and the ways they go wrong ----------

NAMES = st.sampled_from(["REQUEST", "TYPE", "REQUESTID", "DEVICEID", "USER1", "type", "R",
                         "a.b-c_d", "_x", "TEST", "ANI", "Zoë", "1X", "a:b", "X Y", ""])
TEXT = st.lists(st.sampled_from([*"ab 7\t\r\n<>&;\"'=/?-]", "é", "東", "\x01", "\x7f", "&amp;",
                                 "&lt;", "&#10;"]), max_size=12).map("".join)


@st.composite
def near_flat(draw: st.DrawFn) -> bytes:
    """A request of the flat shape, often bent out of it."""
    root = draw(NAMES)
    params = draw(st.lists(st.tuples(NAMES, TEXT), max_size=6))
    parts = [f"<{root}>"]
    for name, text in params:
        close = draw(st.sampled_from([name, name, name, "OTHER"]))
        parts.append(f"<{name}>{text}</{close}>")
        if draw(st.integers(0, 9)) == 0:
            parts.append(draw(st.sampled_from([" ", "\r\n", "<!-- c -->", "<B/>", "x"])))
    parts.append(draw(st.sampled_from([f"</{root}>"] * 5 + ["", f"</{root}", "</OTHER>"])))
    body = "".join(parts)
    if draw(st.integers(0, 9)) == 0:
        body = draw(st.sampled_from(['<?xml version="1.0"?>', "\ufeff", " ",
                                     "<!DOCTYPE R>"])) + body
    return body.encode("utf-8", "surrogatepass")


# --- framing ----------------------------------------------------------------------------------

CHUNKS = st.lists(st.one_of(
    near_flat(),
    st.sampled_from([b"\r\n", b"\n", b"\r", b"  ", b"\xef\xbb\xbf", b"hello\r\n", b"<",
                     b"<REQUEST>\r\n  <TYPE>TEST</TYPE>\r\n</REQUEST>", CTI_START])),
    max_size=8)


def frame(framer: MessageFramer, pieces: Sequence[bytes]) -> list[object]:
    """What a framer makes of ``pieces`` fed one after another, then flushed."""
    seen: list[object] = []
    for piece in pieces:
        try:
            seen.append(framer.feed(piece))
        except MessageTooLarge as exc:
            seen.append(("too large", exc.complete))
        seen.append(framer.pending)
    seen.append(framer.flush())
    return seen


@pytest.mark.slow
@CHECKS
@given(CHUNKS, st.data())
def test_the_flat_split_frames_as_the_general_rules_do(chunks: list[bytes],
                                                       data: st.DataObject) -> None:
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    limit = data.draw(st.sampled_from([64, 4096]))
    assert frame(MessageFramer(limit), pieces) == frame(
        MessageFramer(limit, fast_path=False), pieces)


def test_one_line_requests_take_the_flat_split() -> None:
    framer = MessageFramer(4096)
    assert framer.feed(CTI_START + b"\r\n" + CTI_START + b"\r\n") == [CTI_START, CTI_START]
    assert not framer.pending
    # Half a message: the general rules take it from there.
    assert framer.feed(CTI_START + b"\r\n" + CTI_START[:20]) == [CTI_START]
    assert framer.pending
    assert framer.feed(CTI_START[20:] + b"\r\n") == [CTI_START]


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.slow
@CHECKS
@given(near_flat())
def test_the_flat_parser_reads_what_lxml_reads(message: bytes) -> None:
    flat = parse_flat(message)
    if flat is None:
        return
    assert flat == parse_tree(message)


def test_what_cti_links_send_takes_the_flat_parser() -> None:
    assert parse_flat(CTI_START) == ("REQUEST", [
        ("TYPE", "CALLSTART"), ("REQUESTID", "7"), ("DEVICEID", "2001"), ("ANI", "6145550007"),
        ("DNIS", "8005550100"), ("CALLDIRECTION", "I"), ("USER1", "ACCT00000007")])
    request = parse_request(CTI_START)
    assert (request.type, request.request_id, request.params["USER1"]) == (
        "CALLSTART", "7", "ACCT00000007")


@pytest.mark.parametrize("message", [
    b"<REQUEST><TYPE>TEST</TYPE><USER1>a &amp; b</USER1></REQUEST>",  # an entity
    b"<REQUEST>\n<TYPE>TEST</TYPE></REQUEST>",  # a line end
    b'<REQUEST a="1"><TYPE>TEST</TYPE></REQUEST>',  # an attribute
    "<REQUEST><USER1>Zoë</USER1></REQUEST>".encode(),  # not ASCII
    b"<REQUEST><USER1>a\x01b</USER1></REQUEST>",  # a control character
    b"<REQUEST><TYPE>A</TYPE><TYPE>B</TYPE></REQUEST>" + b" " * 0,
    b"<REQUEST><USER1>" + b"x" * FLAT_MAX_BYTES + b"</USER1></REQUEST>",  # long
])
def test_anything_unusual_goes_to_lxml(message: bytes) -> None:
    if b"<TYPE>A</TYPE><TYPE>B" in message:
        # Flat, and refused the same way by either parser.
        with pytest.raises(RequestError, match="TYPE is given more than once"):
            parse_request(message)
        return
    assert parse_flat(message) is None


# --- rendering --------------------------------------------------------------------------------


def lxml_render(request_type: str, request_id: str | None, result: ApiResult) -> bytes:
    """The renderer the string one replaced: an element tree written by lxml."""
    root = etree.Element("RESULT")
    for tag, text in (("REQUESTTYPE", request_type), ("REQUESTID", request_id or ""),
                      ("RESULTTYPE", result.code.label),
                      ("RESULTCODE", str(int(result.code))), ("RESULTMSG", result.message)):
        etree.SubElement(root, tag).text = NOT_XML.sub("\ufffd", text)

    def append(parent: etree._Element, nodes: Sequence[Node]) -> None:
        for tag, value in nodes:
            element = etree.SubElement(parent, tag)
            if isinstance(value, str):
                element.text = value
            else:
                append(element, value)

    append(root, result.body)
    return etree.tostring(root, encoding="utf-8").replace(b"\n", b"&#10;")


ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=10)
XML_TEXT = st.one_of(ANY_TEXT, st.sampled_from(["", "a&b<c>d\r\ne", "\ufffe", "\x0b", "]]>",
                                                "\ud800", "Zoë 東京", "\t"]))
TAGS = st.sampled_from(["COUNT", "DEVICE", "ANI", "a.b", "Zoë", "1BAD", "A B"])
NODES: st.SearchStrategy[list[Node]] = st.recursive(
    st.lists(st.tuples(TAGS, XML_TEXT), max_size=3),
    lambda children: st.lists(st.tuples(TAGS, st.one_of(XML_TEXT, children)), max_size=3),
    max_leaves=8)


@CHECKS
@given(XML_TEXT, st.one_of(st.none(), XML_TEXT), st.sampled_from(list(ResultCode)), XML_TEXT,
       NODES)
@pytest.mark.slow
def test_the_string_renderer_writes_what_lxml_wrote(request_type: str, request_id: str | None,
                                                    code: ResultCode, message: str,
                                                    body: list[Node]) -> None:
    result = ApiResult(code, message, body)

    def outcome(render: Any) -> object:
        try:
            return render(request_type, request_id, result)
        except ValueError:
            return ValueError

    assert outcome(render_result) == outcome(lxml_render)


# --- the agent of each device -----------------------------------------------------------------


def test_the_agent_cache_keeps_answers_until_cleared() -> None:
    reads: list[str] = []

    def read(device: str) -> tuple[str, str] | None:
        reads.append(device)
        return None if device == "broken" else ("7", f"agent-of-{device}")

    cache = AgentCache(2)
    assert cache.get("1001", read) == ("7", "agent-of-1001")
    assert cache.get("1001", read) == ("7", "agent-of-1001")
    assert reads == ["1001"]
    assert cache.get("broken", read) == ("", "")  # not kept: read again next time
    assert cache.get("broken", read) == ("", "")
    assert reads == ["1001", "broken", "broken"]
    cache.clear()
    assert cache.get("1001", read) == ("7", "agent-of-1001")
    assert reads[-1] == "1001"


def test_an_answer_read_across_a_change_is_not_kept() -> None:
    cache = AgentCache(10)

    def read_during_a_change(device: str) -> tuple[str, str]:
        cache.clear()  # the directory changed while the database was being read
        return "1", "old"

    assert cache.get("1001", read_during_a_change) == ("1", "old")
    assert cache.get("1001", lambda device: ("2", "new")) == ("2", "new")


def test_the_agent_cache_is_bounded() -> None:
    cache = AgentCache(3)
    for n in range(10):
        cache.get(str(n), lambda device: ("", ""))
    reads: list[str] = []

    def read(device: str) -> tuple[str, str]:
        reads.append(device)
        return "", ""

    for n in range(10):
        cache.get(str(n), read)
    assert len(reads) >= 7  # it cannot have kept more than 3


DIRECTORY_WRITES = re.compile(r"\.(add_user|modify_user|delete_user|assign_phone|"
                              r"unassign_phone)\(")


def test_every_request_that_writes_the_directory_clears_the_agents() -> None:
    writers = {request_type for request_type, handler in HANDLERS.items()
               if DIRECTORY_WRITES.search(inspect.getsource(inspect.getmodule(handler)))}
    assert writers == {"IMPORTUSER", "IMPORTAGENTPHONE"}
    assert writers <= DIRECTORY_CHANGES


OK, QUEUE_FULL = ResultCode.API_OK, ResultCode.API_COMMAND_QUEUE_FULL


@pytest.mark.parametrize(("request_type", "params", "code", "moved"), [
    # A user added without phones is on no device: no agent moved (an IMPORTUSER flood is
    # mostly these, and must not make every CALLSTART read the directory again).
    ("IMPORTUSER", {"ACTION": "ADD", "FIRSTNAME": "A", "LASTNAME": "B"}, OK, False),
    ("IMPORTUSER", {"ACTION": "add", "PHONES": " "}, OK, False),
    ("IMPORTUSER", {"ACTION": "ADD", "PHONES": "1002"}, OK, True),
    ("IMPORTUSER", {"ACTION": "MODIFY", "USERID": "4", "USERNAME": "x"}, OK, True),
    ("IMPORTUSER", {"ACTION": "DELETE", "USERID": "4"}, OK, True),
    ("IMPORTAGENTPHONE", {"ACTION": "ADD", "AGENTID": "4", "PHONEID": "1002"}, OK, True),
    # Refused as it stood: nothing was written.
    ("IMPORTUSER", {"ACTION": "MODIFY", "USERID": "4"}, QUEUE_FULL, False),
    ("IMPORTUSER", {"ACTION": "MODIFY", "USERID": "4"}, ResultCode.API_USER_NOT_FOUND, False),
    ("IMPORTAGENTPHONE", {"ACTION": "ADD"}, ResultCode.API_INVALID_MESSAGE_FORMAT, False),
    # Failed part way, perhaps after a write.
    ("IMPORTUSER", {"ACTION": "MODIFY"}, ResultCode.API_DATABASE_QUERY_ERROR, True),
    ("IMPORTAGENTPHONE", {"ACTION": "DELETE"}, ResultCode.API_ERROR_PROCESSING_MESSAGE, True),
])
def test_which_directory_changes_make_callstart_read_the_agents_again(
        request_type: str, params: dict[str, str], code: ResultCode, moved: bool) -> None:
    request = ApiRequest(request_type, "1", params)
    assert agents_may_have_moved(request, ApiResult(code, "")) is moved


class Calls:
    """CALLSTART and CALLSTOP on a device, reading the events each one publishes."""

    def __init__(self, running: Running, device: str) -> None:
        self.running = running
        self.device = device
        self.events = running.connect()
        expect(self.events.request("EVENTS", 1, eventclass="ALL"), 20)
        self.n = 10

    def start(self) -> dict[str, str]:
        """CALLSTART; the AGENTID of its CALLSTART event and its RECORDINGSTARTED's reason."""
        self.n += 1
        expect(self.running.request("CALLSTART", self.n, deviceid=self.device), 20)
        seen: dict[str, str] = {}
        while "RECORDINGSTARTED" not in seen:
            event = etree.fromstring(self.events.read_line())
            kind = event.findtext("EVENTTYPE") or ""
            if event.findtext("EVENTDATA/DEVICEID") != self.device:
                continue
            if kind == "CALLSTART":
                seen[kind] = event.findtext("EVENTDATA/AGENTID") or ""
            elif kind == "RECORDINGSTARTED":
                seen[kind] = event.findtext("EVENTDATA/ERRORREASON") or ""
        self.n += 1
        expect(self.running.request("CALLSTOP", self.n, deviceid=self.device), 20)
        return seen

    def agent(self) -> str:
        return self.start()["CALLSTART"]


def test_every_directory_change_reaches_the_next_callstart(running: Running) -> None:
    calls = Calls(running, "1002")
    conn: ApiConnection = running.connect()
    assert calls.agent() == ""
    ana = add_user(conn, "Ana", "Lima", username="alima")
    assert calls.agent() == ""
    expect(conn.request("IMPORTAGENTPHONE", 2, action="ADD", agentid=ana, phoneid="1002"), 20)
    assert calls.agent() == str(ana)
    expect(conn.request("IMPORTAGENTPHONE", 3, action="DELETE", agentid=ana, phoneid="1002"), 20)
    assert calls.agent() == ""
    expect(conn.request("IMPORTUSER", 4, action="MODIFY", userid=ana, phones="1003,1002"), 20)
    assert calls.agent() == str(ana)
    expect(conn.request("IMPORTUSER", 5, action="MODIFY", userid=ana, phones="1003"), 20)
    assert calls.agent() == ""
    bob = add_user(conn, "Bob", "Reis", phones="1002")
    assert calls.agent() == str(bob)
    expect(conn.request("IMPORTUSER", 6, action="DELETE", userid=bob), 20)
    assert calls.agent() == ""
    # The WebAPI's changes count the same.
    assert running.web_result(type="IMPORTAGENTPHONE", requestid=8, action="ADD", agentid=ana,
                              phoneid="1002").findtext("RESULTCODE") == "20"
    assert calls.agent() == str(ana)
    assert running.web_result(type="IMPORTAGENTPHONE", requestid=9, action="DELETE",
                              agentid=ana, phoneid="1002").findtext("RESULTCODE") == "20"
    assert calls.agent() == ""
    # A refused change changes nothing, and the answer stays right.
    expect(conn.request("IMPORTAGENTPHONE", 7, action="ADD", agentid=999, phoneid="1002"), 24)
    assert calls.agent() == ""
    conn.close()


def test_a_renamed_agent_is_matched_by_the_new_name(start_recorder: Any) -> None:
    running: Running = start_recorder(recording={"schedules": [
        {"name": "quiet-agent", "record": False, "agents": ["alima"]},
        {"name": "everyone else", "record": True}]})
    calls = Calls(running, "1002")
    conn = running.connect()
    ana = add_user(conn, "Ana", "Lima", username="alima", phones="1002")
    first = calls.start()
    assert first["CALLSTART"] == str(ana)
    assert first["RECORDINGSTARTED"] not in ("", "NONE")  # the schedule's refusal
    expect(conn.request("IMPORTUSER", 3, action="MODIFY", userid=ana, username="ana.lima"), 20)
    assert calls.start() == {"CALLSTART": str(ana), "RECORDINGSTARTED": "NONE"}
    conn.close()


def test_callstart_and_callstop_still_answer_bad_input(running: Running) -> None:
    conn = running.connect()
    conn.send(request_xml("CALLSTART", "x", deviceid="1001") + b"\r\n")
    expect(conn.read_result(), 14)
    conn.send(b"<REQUEST><TYPE>CALLSTOP</TYPE><REQUESTID>1</REQUESTID></REQUEST>\r\n")
    assert conn.read_result().findtext("RESULTCODE") != "20"
    conn.send(b"<REQUEST><TYPE>CALLSTART</TYPE><REQUESTID>2</REQUESTID><DEVICEID>1001"
              b"</DEVICEID><TYPE>X</TYPE></REQUEST>\r\n")
    result = expect(conn.read_result(), 16)
    assert result.findtext("REQUESTID") == "2"
    conn.close()


def test_answers_come_in_order_whichever_thread_gives_them(running: Running) -> None:
    # TEST is answered on the event loop, CALLSTART and CALLSTOP on workers, the bad REQUESTID
    # by the dispatcher's checks: pipelined on one connection, they are answered in turn.
    conn = running.connect()
    conn.send(b"".join(request_xml(kind, n, **params) + b"\r\n" for kind, n, params in (
        ("CALLSTART", 1, {"deviceid": "1003"}), ("TEST", 2, {}),
        ("CALLSTOP", 3, {"deviceid": "1003"}), ("TEST", 4, {}), ("TEST", "x", {}),
        ("FETCHTERMINOLOGY", 6, {}))))
    answers = [conn.read_result() for _ in range(6)]
    assert [(a.findtext("REQUESTTYPE"), a.findtext("REQUESTID"), a.findtext("RESULTCODE"))
            for a in answers] == [
        ("CALLSTART", "1", "20"), ("TEST", "2", "20"), ("CALLSTOP", "3", "20"),
        ("TEST", "4", "20"), ("TEST", "x", "14"), ("FETCHTERMINOLOGY", "6", "20")]
    conn.close()
