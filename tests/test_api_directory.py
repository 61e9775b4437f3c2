"""Import functions over real sockets: IMPORTUSER, IMPORTAGENTPHONE, IMPORTWORKSTATION, STATIONS."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing

import pytest
from lxml import etree

from recorder.store.passwords import verify_password
from tests.helpers.api import ApiConnection, add_user, expect, fields, result_code
from tests.helpers.recorders import Running, shared_recorder, stored_rows

# "10/30/2006 4:05:38 PM -05:00"
MANUAL_TIME = re.compile(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M [+-]\d{2}:\d{2}")
TRICKY_FIRST = "Zoë & <Ann>"
TRICKY_LAST = "O'Brien \"Jr\""


def users(conn: ApiConnection) -> list[dict[str, str]]:
    result = expect(conn.request("IMPORTUSER", 2, action="LIST"), 20, "API_OK")
    listed = result.findall("USERS/USER")
    assert result.findtext("USERS/COUNT") == str(len(listed))
    return [fields(u) for u in listed]


def test_importuser_add_list_modify_delete(running: Running) -> None:
    conn = running.connect()
    # The manual's ADD example, with the LIST example's values where they differ.
    result = expect(conn.request(
        "IMPORTUSER", 5, action="ADD", user_id="2", username="Sally Smith", employee_id="5",
        first_name="Sally", last_name="Smith", status="A", add_time="", mod_time="",
        sys_user="smith.1", domain="Uptivity", email="ssmith@uptivity.com", crm_user="sally",
        siteid="1", phones="1123, 3343, 3234", password="correct horse"), 20)
    sally = int(result.findtext("USERID") or 0)
    assert sally >= 1
    tricky = add_user(conn, TRICKY_FIRST, TRICKY_LAST, email="zoë@例え.jp", status="I")
    listed = users(conn)
    assert [u["USER_ID"] for u in listed] == [str(sally), str(tricky)]
    first = listed[0]
    # The manual's LIST example: its 15 fields in its order, one spelling each; then the two
    # the recorder adds.
    assert list(first) == [
        "USER_ID", "USERNAME", "EMPLOYEEID", "FIRSTNAME", "LASTNAME", "AGENT", "STATUS",
        "ADD_TIME", "MOD_TIME", "SYS_USER", "SYS_DOMAIN", "EMAIL", "CRM_USER", "SITE_ID",
        "PHONES", "ALLOWSELFRECORD", "ALLOWSELFDOWNLOAD"]
    assert {k: first[k] for k in (
        "USER_ID", "USERNAME", "EMPLOYEEID", "FIRSTNAME", "LASTNAME", "AGENT", "STATUS",
        "SYS_USER", "SYS_DOMAIN", "EMAIL", "CRM_USER", "SITE_ID", "PHONES")} == {
        "USER_ID": str(sally), "USERNAME": "Sally Smith", "EMPLOYEEID": "5",
        "FIRSTNAME": "Sally", "LASTNAME": "Smith", "AGENT": "TRUE", "STATUS": "A",
        "SYS_USER": "smith.1", "SYS_DOMAIN": "Uptivity", "EMAIL": "ssmith@uptivity.com",
        "CRM_USER": "sally", "SITE_ID": "1", "PHONES": "1123,3343,3234"}
    assert listed[1]["SITE_ID"] == "-1"  # no site set
    assert MANUAL_TIME.fullmatch(first["ADD_TIME"]), first["ADD_TIME"]
    added = time.strptime(first["ADD_TIME"][:-7], "%m/%d/%Y %I:%M:%S %p")
    assert abs(time.mktime(added) - time.time()) < 120
    assert first["MOD_TIME"] == first["ADD_TIME"]
    assert (listed[1]["FIRSTNAME"], listed[1]["LASTNAME"], listed[1]["EMAIL"]) == (
        TRICKY_FIRST, TRICKY_LAST, "zoë@例え.jp")
    assert (listed[1]["AGENT"], listed[1]["STATUS"]) == ("FALSE", "I")

    expect(conn.request("IMPORTUSER", 6, action="modify", userid=sally, email="s@x.example",
                        status="I"), 20, f"User {sally} modified")
    after = users(conn)[0]
    assert (after["EMAIL"], after["STATUS"], after["AGENT"], after["SYS_USER"]) == (
        "s@x.example", "I", "FALSE", "smith.1")
    expect(conn.request("IMPORTUSER", 7, action="Delete", userid=sally), 20,
           f"User {sally} deleted")
    assert [u["USER_ID"] for u in users(conn)] == [str(tricky)]


def test_add_with_the_names_of_an_existing_user_changes_nothing(running: Running) -> None:
    conn = running.connect()
    sally = add_user(conn, "Sally", "Smith", email="first@example.com", username="ssmith")
    for _ in range(3):  # "you can write an automated script that continuously calls ADD"
        result = expect(conn.request("IMPORTUSER", 3, action="ADD", firstname="SALLY",
                                     lastname="smith", email="second@example.com"), 54)
        assert result.findtext("RESULTTYPE") == "API_USER_ALREADY_EXIST"
        assert str(sally) in (result.findtext("RESULTMSG") or "")
    expect(conn.request("IMPORTUSER", 4, action="ADD", firstname="Other", lastname="Person",
                        username="SSMITH"), 54, starts="USERNAME SSMITH is already taken")
    assert [(u["USER_ID"], u["EMAIL"]) for u in users(conn)] == [
        (str(sally), "first@example.com")]
    twin = add_user(conn, "Sally", "Smith", allowduplicate="Y")
    assert twin != sally


def test_userid_is_ignored_on_add(running: Running) -> None:
    conn = running.connect()
    first = add_user(conn, "A", "One", userid="77")
    second = add_user(conn, "B", "Two", user_id=str(first))
    assert (first, second) == (1, 2)


def test_delete_flags_the_user_frees_its_phones_and_keeps_the_row(running: Running) -> None:
    conn = running.connect()
    sally = add_user(conn, "Sally", "Smith", phones="1123,3343")
    expect(conn.request("IMPORTUSER", 2, action="DELETE", userid=sally), 20)
    assert users(conn) == []
    for verb in ("DELETE", "MODIFY"):
        expect(conn.request("IMPORTUSER", 3, action=verb, userid=sally, email="x"), 28)
    john = add_user(conn, "John", "Doe", phones="1123")  # the phone is free again
    again = add_user(conn, "Sally", "Smith")  # and the name
    assert again not in (sally, john)
    row = sqlite3.connect(running.data_dir / "recorder.sqlite3").execute(
        "SELECT first_name, deleted FROM users WHERE user_id = ?", (sally,)).fetchone()
    assert row == ("Sally", 1)


def test_password_is_kept_only_as_a_salted_slow_hash(running: Running) -> None:
    conn = running.connect()
    secret = "pässwörd-&-<s3cret>"
    a = add_user(conn, "A", "One", password=secret)
    b = add_user(conn, "B", "Two", password=secret)
    listed = expect(conn.request("IMPORTUSER", 2, action="LIST"), 20)
    assert "s3cret" not in etree.tostring(listed, encoding="unicode")
    db = running.data_dir / "recorder.sqlite3"
    rows = dict(sqlite3.connect(db).execute("SELECT user_id, password_hash FROM users"))
    assert rows[a].startswith("scrypt$")
    assert rows[b].startswith("scrypt$")
    assert rows[a] != rows[b]  # salted
    assert verify_password(secret, rows[a])
    assert not verify_password("guess", rows[a])
    for path in db.parent.glob("recorder.sqlite3*"):  # the database, its WAL and index
        assert secret.encode() not in path.read_bytes()
    expect(conn.request("IMPORTUSER", 3, action="MODIFY", userid=a, password=""), 20)
    assert dict(sqlite3.connect(db).execute("SELECT user_id, password_hash FROM users"))[a] \
        == rows[a]  # a blank PASSWORD leaves it as it was


def test_both_spellings_of_the_manuals_user_fields(running: Running) -> None:
    conn = running.connect()
    a = add_user(conn, "A", "One", employeeid="E1")
    b = int(expect(conn.request("IMPORTUSER", 1, action="ADD", first_name="B", last_name="Two",
                                employee_id="E2"), 20).findtext("USERID") or 0)
    expect(conn.request("IMPORTUSER", 2, action="MODIFY", user_id=a, sys_domain="DOM"), 20)
    expect(conn.request("IMPORTUSER", 3, action="MODIFY", userid=b, site_id="7"), 20)
    listed = users(conn)
    assert [(u["EMPLOYEEID"], u["SYS_DOMAIN"], u["SITE_ID"]) for u in listed] == [
        ("E1", "DOM", "-1"), ("E2", "", "7")]
    result = expect(conn.request("IMPORTUSER", 4, action="ADD", firstname="C", first_name="C",
                                 lastname="Three"), 16)
    assert "FIRST_NAME and FIRSTNAME are the same parameter" in (
        result.findtext("RESULTMSG") or "")


@pytest.mark.parametrize(("params", "code", "starts"), [
    ({}, 16, "ACTION is required"),
    ({"action": "PURGE"}, 21, "ACTION must be ADD, MODIFY, DELETE or LIST"),
    ({"action": "ADD", "lastname": "Smith"}, 16, "FIRSTNAME is required"),
    ({"action": "ADD", "firstname": "Sally"}, 16, "LASTNAME is required"),
    ({"action": "ADD", "firstname": "x" * 21, "lastname": "S"}, 16, "FIRSTNAME is 21 characters"),
    ({"action": "ADD", "firstname": "S", "lastname": "x" * 31}, 16, "LASTNAME is 31 characters"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "status": "X"}, 16, "STATUS must be"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "email": "e" * 256}, 16, "EMAIL is"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "domain": "d" * 31}, 16, "DOMAIN is"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "employeeid": "1" * 21}, 16,
     "EMPLOYEEID is"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "sys_user": "u" * 256}, 16,
     "SYS_USER is"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "crm_user": "u" * 31}, 16,
     "CRM_USER is"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "siteid": "north"}, 53, "SITEID"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "phones": "1, 12345678901"}, 16,
     "PHONES: '12345678901' is 11 characters long"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "add_time": "yesterday"}, 16,
     "ADD_TIME must be a date and time"),
    ({"action": "ADD", "firstname": "S", "lastname": "S", "allowselfrecord": "maybe"}, 16,
     "ALLOWSELFRECORD must be one of Y, N"),
    ({"action": "MODIFY", "email": "x"}, 16, "USERID is required to MODIFY"),
    ({"action": "DELETE"}, 16, "USERID is required to DELETE"),
    ({"action": "DELETE", "userid": "abc"}, 16, "USERID must be a whole number"),
    ({"action": "MODIFY", "userid": "999"}, 28, "no user with USERID 999"),
    ({"action": "DELETE", "userid": "999"}, 28, "no user with USERID 999"),
])
def test_importuser_refusals_name_what_is_wrong(shared_running: Running, params: dict[str, str],
                                                code: int, starts: str) -> None:
    before = stored_rows(shared_running)
    expect(shared_running.request("IMPORTUSER", 9, **params), code, starts=starts)
    assert stored_rows(shared_running) == before


def test_modify_changes_what_is_sent_and_refuses_clashes(running: Running) -> None:
    conn = running.connect()
    sally = add_user(conn, "Sally", "Smith", email="s@example.com", phones="100,101",
                     add_time="10/30/2006 4:05:38 PM -05:00")
    john = add_user(conn, "John", "Doe", phones="200")
    before = users(conn)[0]
    assert before["ADD_TIME"].startswith(("10/30/2006", "10/31/2006"))  # any local zone
    expect(conn.request("IMPORTUSER", 2, action="MODIFY", userid=sally, lastname="Jones",
                        phones="101, 102"), 20)
    after = users(conn)[0]
    assert (after["LASTNAME"], after["EMAIL"], after["PHONES"]) == (
        "Jones", "s@example.com", "101,102")
    assert after["ADD_TIME"] == before["ADD_TIME"]
    expect(conn.request("IMPORTUSER", 3, action="MODIFY", userid=john, firstname="sally",
                        lastname="JONES"), 54)
    expect(conn.request("IMPORTUSER", 4, action="MODIFY", userid=john, email="j@x",
                        phones="200,102"), 57, starts="phone 102 is assigned to agent")
    expect(conn.request("IMPORTUSER", 5, action="MODIFY", userid=john, firstname=""), 16,
           "FIRSTNAME cannot be blank")
    listed = {u["USER_ID"]: u for u in users(conn)}
    assert (listed[str(john)]["EMAIL"], listed[str(john)]["PHONES"]) == ("", "200")
    expect(conn.request("IMPORTUSER", 6, action="ADD", firstname="New", lastname="Person",
                        phones="300,200"), 57)
    assert len(users(conn)) == 2  # nothing was added


def test_importagentphone_by_id_or_name(running: Running) -> None:
    conn = running.connect()
    john = add_user(conn, "John", "Doe")
    jane = add_user(conn, "Jane", "Roe")
    # The manual's example: AGENTID 0 with the names.
    result = expect(conn.request("IMPORTAGENTPHONE", 2, action="ADD", phoneid="1234",
                                 agentid="0", firstname="John", lastname="Doe"), 20)
    assert (result.findtext("AGENTID"), result.findtext("PHONEID")) == (str(john), "1234")
    expect(conn.request("IMPORTAGENTPHONE", 3, action="ADD", phoneid="1234", agentid=john), 20,
           f"Phone 1234 was already assigned to agent {john}")
    result = expect(conn.request("IMPORTAGENTPHONE", 4, action="ADD", phoneid="1234",
                                 agentid=jane), 57)
    assert result.findtext("RESULTTYPE") == "API_PHONEID_IN_USE"
    expect(conn.request("IMPORTAGENTPHONE", 5, action="DELETE", phoneid="1234", agentid=jane),
           57)
    expect(conn.request("IMPORTAGENTPHONE", 6, action="DELETE", phoneid="1234", userid=john),
           20, f"Phone 1234 removed from agent {john}")
    expect(conn.request("IMPORTAGENTPHONE", 7, action="ADD", phoneid="1234", agentid=jane), 20)
    assert [u["PHONES"] for u in users(conn)] == ["", "1234"]


@pytest.mark.parametrize(("params", "code", "starts"), [
    ({"phoneid": "1", "agentid": "1"}, 26, "ACTION is required"),
    ({"action": "MOVE", "phoneid": "1", "agentid": "1"}, 21, "ACTION must be ADD or DELETE"),
    ({"action": "ADD", "agentid": "1"}, 26, "PHONEID is required"),
    ({"action": "ADD", "phoneid": "1"}, 26, "AGENTID, or FIRSTNAME and LASTNAME, is required"),
    ({"action": "ADD", "phoneid": "1", "firstname": "John"}, 26, "LASTNAME is required"),
    ({"action": "ADD", "phoneid": "12345678901", "agentid": "1"}, 16, "PHONEID is 11"),
    ({"action": "ADD", "phoneid": "1", "agentid": "99"}, 24, "no agent with AGENTID 99"),
    # AGENTID first: the names are ignored when it is given, even if they would match.
    ({"action": "ADD", "phoneid": "1", "agentid": "99", "firstname": "John",
      "lastname": "Doe"}, 24, "no agent with AGENTID 99"),
    ({"action": "ADD", "phoneid": "1", "firstname": "No", "lastname": "Body"}, 24,
     "no agent named No Body"),
    ({"action": "ADD", "phoneid": "1", "firstname": "Twin", "lastname": "Doe"}, 22, "2 users"),
])
def test_importagentphone_refusals(agents: Running, params: dict[str, str], code: int,
                                   starts: str) -> None:
    before = stored_rows(agents)
    expect(agents.request("IMPORTAGENTPHONE", 8, **params), code, starts=starts)
    assert stored_rows(agents) == before


@pytest.fixture(scope="module")
def agents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A recorder with John Doe (USERID 1) and two Twin Does, shared by the refusals above."""
    with shared_recorder(tmp_path_factory.mktemp("agents")) as running, \
            closing(running.connect()) as conn:
        assert add_user(conn, "John", "Doe") == 1
        add_user(conn, "Twin", "Doe")
        add_user(conn, "Twin", "Doe", allowduplicate="Y")
        yield running


def test_importworkstation_replaces_by_device_or_station(running: Running) -> None:
    conn = running.connect()
    expect(conn.request("STATIONS", 1), 20)
    assert conn.request("STATIONS", 1).findtext("COUNT") == "0"
    result = expect(conn.request("IMPORTWORKSTATION", 2, deviceid="1234",
                                 stationname="COMPUTER1", locationid="1"), 20)
    assert (result.findtext("DEVICEID"), result.findtext("STATIONNAME")) == ("1234", "COMPUTER1")
    expect(conn.request("IMPORTWORKSTATION", 3, deviceid="7007", stationname="JamesBond",
                        locationid="2"), 20)
    expect(conn.request("IMPORTWORKSTATION", 4, deviceid="7007", stationname="Zoë's PC & Co",
                        locationid="2"), 20)  # same device: JamesBond goes
    expect(conn.request("IMPORTWORKSTATION", 5, deviceid="4321", stationname="computer1",
                        locationid="1"), 20)  # same station (any case): device 1234 goes

    def listed() -> list[tuple[str, str]]:
        result = expect(conn.request("STATIONS", 6), 20, "API_OK")
        stations = [(s.findtext("STATIONNAME") or "", s.findtext("DEVICEID") or "")
                    for s in result.findall("STATIONS/STATION")]
        assert result.findtext("COUNT") == str(len(stations))
        return stations

    assert listed() == [("computer1", "4321"), ("Zoë's PC & Co", "7007")]


@pytest.mark.parametrize(("params", "starts"), [
    ({"stationname": "PC", "locationid": "1"}, "DEVICEID is required"),
    ({"deviceid": "1", "locationid": "1"}, "STATIONNAME is required"),
    ({"deviceid": "1", "stationname": "PC"}, "LOCATIONID is required"),
    ({"deviceid": "1", "stationname": "PC", "locationid": "first"}, "LOCATIONID must be"),
    ({"deviceid": "1" * 16, "stationname": "PC", "locationid": "1"}, "DEVICEID is 16"),
    ({"deviceid": "1", "stationname": "P" * 51, "locationid": "1"}, "STATIONNAME is 51"),
    ({"deviceid": "", "stationname": "PC", "locationid": "1"}, "DEVICEID is required"),
])
def test_importworkstation_refusals(shared_running: Running, params: dict[str, str],
                                    starts: str) -> None:
    before = stored_rows(shared_running)
    expect(shared_running.request("IMPORTWORKSTATION", 1, **params), 16, starts=starts)
    assert shared_running.request("STATIONS", 2).findtext("COUNT") == "0"
    assert stored_rows(shared_running) == before


def test_a_database_that_fails_answers_23_and_the_service_goes_on(running: Running) -> None:
    assert running.recorder is not None
    store = running.recorder.store
    assert store is not None
    store.close()  # every query now fails inside the store
    for request_type, params in (("IMPORTUSER", {"action": "LIST"}), ("STATIONS", {}),
                                 ("ADDGROUP", {"groupname": "G"})):
        result = expect(running.request(request_type, 1, **params), 23,
                        starts=f"{request_type} could not read or write the database")
        assert result.findtext("RESULTTYPE") == "API_DATABASE_QUERY_ERROR"
    expect(running.request("TEST", 2), 20)


def test_callstart_by_stationname_uses_the_workstation_mapping(running: Running) -> None:
    assert result_code(running.request("IMPORTWORKSTATION", 1, deviceid="1004",
                                       stationname="WS-Front-2", locationid="1")) == 20
    assert result_code(running.request("CALLSTART", 2, stationname="ws-front-2")) == 20
    status = running.request("DEVICESTATUS", 3, deviceid="1004")
    assert status.findtext("DEVICES/DEVICE/RECORDING/ISRECORDING") == "Y"
    assert result_code(running.request("CALLSTOP", 4, stationname="WS-Front-2")) == 20
    assert result_code(running.request("CALLSTART", 5, stationname="WS-Nowhere")) == 8


def test_calllist_names_the_agent_whose_phone_it_was(running: Running) -> None:
    assert result_code(running.request("IMPORTUSER", 1, action="ADD", firstname="Ana",
                                       lastname="Lima", username="alima")) == 20
    assert result_code(running.request("IMPORTAGENTPHONE", 2, action="ADD", firstname="Ana",
                                       lastname="Lima",
                                       phoneid="1002")) == 20
    assert result_code(running.request("CALLSTART", 3, deviceid="1002")) == 20
    assert result_code(running.request("CALLSTOP", 4, deviceid="1002")) == 20
    found = running.request("CALLLIST", 5, deviceid="1002").find("SEARCHRESULT")
    assert found is not None
    assert (found.findtext("AGENTFIRSTNAME"), found.findtext("AGENTLASTNAME")) == ("Ana", "Lima")
