"""Screen-capture-only sessions over real sockets: CHATSTART, CHATUPDATE, CHATSTOP."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest

from tests.helpers.api import ApiConnection, add_user, expect, fields
from tests.helpers.recorders import Running, shared_recorder, stored_rows

TRICKY = 'a & b <c> "d" Zoë 東京'


def chat_rows(running: Running) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(running.data_dir / "recorder.sqlite3")
    try:
        return conn.execute(
            "SELECT ident, agent_id, recording_type, screen_capture, status, stop_reason,"
            " call_instance FROM recordings ORDER BY ident").fetchall()
    finally:
        conn.close()


def listed(conn: ApiConnection, **params: Any) -> list[dict[str, str]]:
    result = expect(conn.request("CALLLIST", 9, **params), 20)
    return [fields(r) for r in result.findall("SEARCHRESULT")]


@pytest.mark.slow
def test_a_chat_session_is_a_recording_without_audio(running: Running) -> None:
    conn = running.connect()
    jdoe = add_user(conn, "John", "Doe", username="JDOE", sys_user="corp.jdoe",
                    crm_user="CRMJ", phones="4321")
    # The manual's example.
    conn.send(b"<REQUEST>\r\n  <REQUESTID>37</REQUESTID>\r\n  <TYPE>CHATSTART</TYPE>\r\n"
              b"  <SESSIONID>82738</SESSIONID>\r\n  <KEYNAME>USERNAME</KEYNAME>\r\n"
              b"  <KEYVALUE>JDOE</KEYVALUE>\r\n</REQUEST>\r\n")
    expect(conn.read_result(), 20, "CHATSTART sent to all of the following cores: 1")
    (row,) = listed(conn)
    assert (row["DEVICEID"], row["SYS_USER"], row["CRM_USER"], row["FILENAME"],
            row["CALLINSTANCE"]) == ("4321", "corp.jdoe", "CRMJ", "", "82738")
    expect(conn.request("CHATUPDATE", 64, sessionid="82738", group="53", user4=TRICKY,
                        calldirection="o"), 20, "CHATUPDATE sent to all of the following cores: 1")
    time.sleep(1.1)
    expect(conn.request("CHATSTOP", 52, sessionid="82738"), 20,
           "CHATSTOP sent to all of the following cores: 1")
    (row,) = listed(conn, sys_user="corp.jdoe")  # CALLLIST finds it like the agent's calls
    assert (row["GROUP"], row["USER4"], row["CALLDIRECTION"]) == ("53", TRICKY, "O")
    assert 1 <= int(row["DURATION"]) <= 3
    ident = int(row["RECORDID"])
    assert chat_rows(running) == [(ident, jdoe, "screen", 1, "complete", "chatstop", "82738")]
    expect(conn.request("CHATSTOP", 53, sessionid="82738"), 33,
           "no chat session with SESSIONID 82738 is open")
    # CHATUPDATE after the stop still reaches the session's record.
    expect(conn.request("CHATUPDATE", 65, sessionid="82738", user1="late"), 20)
    assert listed(conn)[0]["USER1"] == "late"


@pytest.mark.parametrize(("key", "value"), [
    ("USERNAME", "jdoe"), ("SYS_USER", "CORP.JDOE"), ("EMPLOYEEID", "E-7"),
    ("EMPLOYEE_ID", "E-7"), ("CRM_USER", "crmj"), ("DEVICEALIAS", "4321"), ("phoneid", "4321"),
    ("AGENTID", None), ("USERID", None),
])
def test_every_way_to_name_the_agent(agents: tuple[Running, int], key: str,
                                     value: str | None) -> None:
    running, jdoe = agents
    before = chat_rows(running)
    params = ({key.lower(): str(jdoe)} if value is None
              else {"keyname": key, "keyvalue": value})
    session = f"named by {key}"
    expect(running.request("CHATSTART", 1, sessionid=session, **params), 20)
    rows = chat_rows(running)
    assert rows[:len(before)] == before
    assert [(r[1], r[6]) for r in rows[len(before):]] == [(jdoe, session)]


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, int]]:
    """A recorder with John Doe, named every way the manual allows, and another agent; each
    case of the test above opens a session of its own. (The recorder, John's USERID.)"""
    with shared_recorder(tmp_path_factory.mktemp("agents")) as running, \
            closing(running.connect()) as conn:
        add_user(conn, "Someone", "Else", username="other", phones="1111")
        jdoe = add_user(conn, "John", "Doe", username="JDOE", sys_user="corp.jdoe",
                        crm_user="CRMJ", employeeid="E-7", phones="4321")
        yield running, jdoe


def test_sessions_are_kept_apart_and_a_repeated_start_replaces(running: Running) -> None:
    conn = running.connect()
    agent = add_user(conn, "John", "Doe")
    for session in ("a", "b", "a"):
        expect(conn.request("CHATSTART", 1, sessionid=session, agentid=agent), 20)
    expect(conn.request("CHATSTOP", 2, sessionid="a"), 20)
    rows = chat_rows(running)
    assert [(r[4], r[5], r[6]) for r in rows] == [
        ("complete", "replaced", "a"), ("recording", "", "b"), ("complete", "chatstop", "a")]
    expect(conn.request("CHATSTOP", 3, sessionid="b"), 20)


def test_a_session_outlives_a_restart_of_the_recorder(start_recorder: Any) -> None:
    first = start_recorder()
    conn = first.connect()
    agent = add_user(conn, "John", "Doe")
    expect(conn.request("CHATSTART", 1, sessionid="long chat", agentid=agent), 20)
    conn.close()
    first.recorder.stop()
    second = start_recorder()
    # Not taken for a recording a crash interrupted: it is still open, and its CHATSTOP ends it.
    assert [r[4:6] for r in chat_rows(second)] == [("recording", "")]
    expect(second.request("CHATSTOP", 2, sessionid="long chat"), 20)
    assert [r[4:6] for r in chat_rows(second)] == [("complete", "chatstop")]


@pytest.mark.parametrize(("request_type", "params", "code", "starts"), [
    ("CHATSTART", {"agentid": "1"}, 33, "SESSIONID is required"),
    ("CHATSTART", {"sessionid": "", "agentid": "1"}, 33, "SESSIONID is required"),
    ("CHATSTOP", {}, 33, "SESSIONID is required"),
    ("CHATUPDATE", {"group": "1"}, 33, "SESSIONID is required"),
    ("CHATSTART", {"sessionid": "s" * 256, "agentid": "1"}, 16, "SESSIONID is 256"),
    ("CHATSTART", {"sessionid": "s"}, 24, "AGENTID, or KEYNAME and KEYVALUE, is required"),
    ("CHATSTART", {"sessionid": "s", "agentid": "99"}, 24, "no agent with AGENTID 99"),
    ("CHATSTART", {"sessionid": "s", "keyname": "SHOESIZE", "keyvalue": "9"}, 16,
     "KEYNAME must be one of USERNAME, SYS_USER, EMPLOYEEID, CRM_USER, DEVICEALIAS"),
    ("CHATSTART", {"sessionid": "s", "keyname": "USERNAME"}, 16, "KEYVALUE is required"),
    ("CHATSTART", {"sessionid": "s", "keyvalue": "jdoe"}, 16, "KEYNAME is required"),
    ("CHATSTART", {"sessionid": "s", "keyname": "USERNAME", "keyvalue": "nobody"}, 24,
     "no agent with USERNAME nobody"),
    ("CHATSTART", {"sessionid": "s", "keyname": "DEVICEALIAS", "keyvalue": "9999"}, 24,
     "no agent with DEVICEALIAS 9999"),
    ("CHATSTART", {"sessionid": "s", "keyname": "EMPLOYEEID", "keyvalue": "twin"}, 22,
     "2 users with EMPLOYEEID twin"),
    ("CHATSTART", {"sessionid": "s", "keyname": "USERNAME", "keyvalue": "idle"}, 25,
     "user 3 is not flagged as an agent"),
    ("CHATSTART", {"sessionid": "s", "keyname": "USERNAME", "keyvalue": "gone"}, 24,
     "no agent with USERNAME gone"),
    ("CHATSTOP", {"sessionid": "never"}, 33, "no chat session with SESSIONID never is open"),
    ("CHATUPDATE", {"sessionid": "never", "group": "1"}, 33,
     "no chat session with SESSIONID never; send CHATSTART first"),
    ("CHATUPDATE", {"sessionid": "open", "group": "g" * 21}, 16, "GROUP is 21"),
    ("CHATUPDATE", {"sessionid": "open", "calldirection": "X"}, 16, "CALLDIRECTION must be"),
    ("CHATUPDATE", {"sessionid": "open", "devicealias": "d" * 16}, 16, "DEVICEALIAS is 16"),
    ("CHATUPDATE", {"sessionid": "open", "callid": "c" * 17}, 16, "CALLID is 17"),
    ("CHATUPDATE", {"sessionid": "open", "user9": "u" * 51}, 16, "USER9 is 51"),
])
def test_chat_refusals(refusing: Running, request_type: str, params: dict[str, str], code: int,
                       starts: str) -> None:
    before = stored_rows(refusing)
    expect(refusing.request(request_type, 2, **params), code, starts=starts)
    assert stored_rows(refusing) == before
    assert len(chat_rows(refusing)) == 1  # only the "open" session


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A recorder with agents that CHATSTART cannot take and an open session, shared by the
    refusals (which change nothing: each checks)."""
    with shared_recorder(tmp_path_factory.mktemp("chat")) as running, \
            closing(running.connect()) as conn:
        add_user(conn, "Twin", "One", employeeid="twin")
        add_user(conn, "Twin", "Two", employeeid="twin")
        add_user(conn, "Idle", "User", username="idle", status="I")
        gone = add_user(conn, "Gone", "User", username="gone")
        expect(conn.request("IMPORTUSER", 1, action="DELETE", userid=gone), 20)
        expect(conn.request("CHATSTART", 1, sessionid="open", agentid="1"), 20)
        yield running
