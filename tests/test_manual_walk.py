"""The manual, top to bottom, against a real ``recorderd`` process.

Every request type the manual defines is sent with the manual's example (verbatim, in the
manual's order) and with its documented error cases, once over the socket and once over the
WebAPI, and must get the documented result. Steps marked "setup" create what an example assumes
exists (the agent JDOE, a call on DESK1, ...). A few steps differ by transport: the media
functions (EXPORT, ...) answer 15 over the socket (docs/api-notes.md); EVENTS streams its events
after its RESULT on both, and the walk reads the RESULT. The walk's recorder has no mail server,
so EMAIL answers 31. No type in the manual answers 10 API_UNKNOWN_MESSAGE_TYPE.

Two places where the manual's text cannot be sent as printed: the ADDGROUP and
MODIFYGROUPPERMISSION examples hold a bare "&" (not well-formed XML; sent as "&amp;"), and the
RECORDSTOP example's request says <TYPE>CALLSTOP</TYPE> under a RECORDSTOP result (sent as
RECORDSTOP).
"""

from __future__ import annotations

import http.client
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from lxml import etree

from recorder.api.dispatcher import DEPRECATED, HANDLERS, PLANNED
from tests.helpers.api import result_code
from tests.helpers.recorders import RECORDERD_ONLY, Running

Want = str | re.Pattern[str]

# Every request type the manual names: its table of contents, the WebAPI-only functions and the
# event interface's request (the deprecated ones are in the dispatcher's DEPRECATED table).
MANUAL_TYPES = (
    "TEST", "CALLSTART", "CALLSTOP", "CALLUPDATE", "RECORDSTART", "RECORDSTOP", "DEVICELIST",
    "DEVICESTATUS", "DEVICERECORDINGSTATUS", "SYSTEMSTATUS", "CHANNELS", "STATIONS",
    "FETCHTERMINOLOGY", "CALLLIST", "CHATSTART", "CHATSTOP", "CHATUPDATE", "BLACKOUTSTART",
    "AGENTBLACKOUTSTART", "BLACKOUTSTOP", "AGENTBLACKOUTSTOP", "IMPORTUSER", "IMPORTAGENTPHONE",
    "IMPORTWORKSTATION", "ADDGROUP", "MODIFYGROUPPERMISSION", "MODIFYROLE",
    "MODIFYROLEGROUPPERMISSION", "MODIFYUSERROLE", "MODIFYROLEPERMISSION", "EMAIL",
    "COMBINEDEMAIL", "AGENTWINDOW", "EXPORT", "COMBINEEXPORT", "COMBINEDEXPORT", "MULTIEXPORT",
    "EVENTS",
)
# This release carries these out; every one must be walked with its example.
CARRIED_OUT = (
    "TEST", "CALLSTART", "CALLSTOP", "CALLUPDATE", "DEVICESTATUS", "SYSTEMSTATUS", "CHANNELS",
    "STATIONS", "FETCHTERMINOLOGY", "CALLLIST", "CHATSTART", "CHATSTOP", "CHATUPDATE",
    "IMPORTUSER", "IMPORTAGENTPHONE", "IMPORTWORKSTATION", "ADDGROUP", "MODIFYGROUPPERMISSION",
    "MODIFYROLE", "MODIFYROLEGROUPPERMISSION", "MODIFYUSERROLE", "MODIFYROLEPERMISSION",
    "AGENTWINDOW", "RECORDSTART", "RECORDSTOP", "DEVICELIST", "DEVICERECORDINGSTATUS",
    "BLACKOUTSTART", "BLACKOUTSTOP", "AGENTBLACKOUTSTART", "AGENTBLACKOUTSTOP", "EMAIL",
    "COMBINEDEMAIL", "EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT", "EVENTS",
)
NUMBER = re.compile(r"[1-9][0-9]*")
WEBAPI_ONLY = re.compile(r"this function answers with the recording's media and is only "
                         r"available through the WebAPI: .*")
NO_MAIL = "no mail server is configured (the [smtp] section's host)"
# The devices the manual's examples use, tapped by the walk's board.
DEVICES = ["555", "1111", "7007", "1234"]


@dataclass(frozen=True)
class Step:
    """One request and the result the manual documents for it."""

    kind: str  # "example" (the manual's own), "error" (a documented error case), "setup"
    request: str  # XML; "{name}" takes a value captured from an earlier result
    code: int
    message: Want | None = None
    body: Mapping[str, Want] = field(default_factory=dict)  # path -> text
    capture: Mapping[str, str] = field(default_factory=dict)  # name -> path
    transport: str = ""  # "socket" or "web": the step is only sent over that one

    @property
    def type(self) -> str:
        found = re.search(r"<(?:REQUEST)?TYPE>\s*(\w+)\s*</", self.request)
        assert found, self.request
        return found[1].upper()


def req(request_type: str, **params: Any) -> str:
    """A request the manual describes but gives no example of (setup and error cases)."""
    parts = "".join(f"<{k.upper()}>{v}</{k.upper()}>" for k, v in params.items())
    return f"<REQUEST><TYPE>{request_type}</TYPE><REQUESTID>9</REQUESTID>{parts}</REQUEST>"


def web_only(request: str, code: int, message: Want, kind: str = "example") -> tuple[Step, Step]:
    """A media function: its result over the WebAPI, and 15 pointing there over the socket."""
    return (Step(kind, request, code, message, transport="web"),
            Step(kind, request, 15, WEBAPI_ONLY, transport="socket"))


CORES = " sent to all of the following cores: 1"

WALK: tuple[Step, ...] = (
    # --- inContact WFO API Basics ------------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>TEST</TYPE>
  <REQUESTID>1</REQUESTID>
</REQUEST>""", 20, "API_OK", {"REQUESTID": "1", "REQUESTTYPE": "TEST"}),
    # --- CALLSTART ---------------------------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>CALLSTART</TYPE>
  <REQUESTID>1</REQUESTID>
  <DEVICEID>555</DEVICEID>
  <DEVICEALIAS>3545</DEVICEALIAS>
  <GROUP>12</GROUP>
  <GATE>80</GATE>
  <ANI>6145551212</ANI>
  <DNIS>8889225526</DNIS>
  <USER1>Gold Level</USER1>
  <USER2>Customer 564582</USER2>
</REQUEST>""", 20, "CALLSTART" + CORES),
    Step("error", req("CALLSTART", DEVICEALIAS="NOSUCH"), 8,
         "Could not find a device matching given parameters",
         {"RESULTTYPE": "API_DEVICE_INVALID"}),
    # --- CALLSTOP ----------------------------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>CALLSTOP</TYPE>
  <REQUESTID>2</REQUESTID>
  <DEVICEID>555</DEVICEID>
</REQUEST>""", 20, "CALLSTOP" + CORES),
    Step("error", req("CALLSTOP", DEVICEID="555"), 7, body={"RESULTTYPE":
                                                             "API_DEVICE_NOT_IN_CALL"}),
    # --- CALLUPDATE --------------------------------------------------------------------------
    Step("setup", req("CALLSTART", DEVICEID="555"), 20),
    Step("example", """<REQUEST>
  <TYPE>CALLUPDATE</TYPE>
  <REQUESTID>1</REQUESTID>
  <DEVICEID>555</DEVICEID>
  <USER3>Follow up on order</USER3>
</REQUEST>""", 20, "CALLUPDATE" + CORES),
    Step("setup", req("CALLSTOP", DEVICEID="555"), 20),
    Step("example", """<REQUEST>
  <TYPE>CALLUPDATE</TYPE>
<REQUESTID>3</REQUESTID>
<DEVICEID>555</DEVICEID>
<USER3>Follow up on order</USER3>
<UPDATE_IF_NOT_RECORDING>Y</UPDATE_IF_NOT_RECORDING>
</REQUEST>""", 20, "Updated recording in database"),
    Step("error", req("CALLUPDATE", USER3="x"), 8),
    Step("error", req("CALLUPDATE", DEVICEID="7007", UPDATE_IF_NOT_RECORDING="Y"), 40),
    # --- CALLUPDATE - Post-Recording ---------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>CALLUPDATE</TYPE>
  <REQUESTID>1</REQUESTID>
  <RECORDID>554853</RECORDID>
  <USER4>Sales Call</USER4>
</REQUEST>""", 40, body={"RESULTTYPE": "API_RECORDID_INVALID"}),
    Step("setup", req("CALLLIST", DEVICEID="555"), 20, body={"SEARCHRESULT/USER3":
                                                              "Follow up on order"},
         capture={"recordid": "SEARCHRESULT/RECORDID"}),
    Step("example", req("CALLUPDATE", RECORDID="{recordid}", USER4="Sales Call"), 20,
         "Updated recording in database"),
    # --- RECORDSTART, RECORDSTOP -------------------------------------------------------------
    Step("error", req("RECORDSTART", DEVICEID="555"), 7, body={"RESULTTYPE":
                                                                "API_DEVICE_NOT_IN_CALL"}),
    Step("setup", req("CALLSTART", DEVICEID="555"), 20),
    Step("example", """<REQUEST>
<TYPE>RECORDSTART</TYPE>
<REQUESTID>1</REQUESTID>
<DEVICEID>555</DEVICEID>
<DEVICEALIAS>3545</DEVICEALIAS>
<GROUP>12</GROUP>
<GATE>80</GATE>
<ANI>6145551212</ANI>
<DNIS>8889225526</DNIS>
<USER1>Gold Level</USER1>
<USER2>Customer 564582</USER2>
</REQUEST>""", 20, "RECORDSTART" + CORES),
    Step("example", """<REQUEST>
  <TYPE>RECORDSTOP</TYPE>
  <REQUESTID>2</REQUESTID>
  <DEVICEID>555</DEVICEID>
  <USER1>test</USER1>
  <USER3>1</USER3>
</REQUEST>""", 20, "RECORDSTOP" + CORES),
    Step("error", req("RECORDSTOP", DEVICEID="555"), 12, body={"RESULTTYPE":
                                                                "API_DEVICE_NOT_RECORDING"}),
    Step("setup", req("CALLSTOP", DEVICEID="555"), 20),
    # --- Status functions --------------------------------------------------------------------
    Step("example", req("DEVICELIST"), 20, "API_OK", {
        "DEVICES/COUNT": str(len(DEVICES)), "DEVICES/DEVICE/DEVICEID": "555",
        "DEVICES/DEVICE/RECORDING/ISRECORDING": "N"}),
    Step("setup", req("CALLSTART", DEVICEID="1111", DEVICEALIAS="DESK1", SYS_USER="gkerber",
                      CRM_USER="CCGKERBER", GROUP="MANAGER", GATE="prize", USER1="E",
                      USER2="winners", USER3="12345", CALLDIRECTION="I", CALLINSTANCE="2001"),
         20),
    Step("example", """<REQUEST>
  <TYPE>DEVICESTATUS</TYPE>
  <DEVICEALIAS>DESK1</DEVICEALIAS>
  <REQUESTID>24</REQUESTID>
</REQUEST>""", 20, "Found the following matching devices", {
        "DEVICES/COUNT": "1", "DEVICES/DEVICE/DEVICEID": "1111",
        "DEVICES/DEVICE/DEVICEALIAS": "DESK1", "DEVICES/DEVICE/SYS_USER": "gkerber",
        "DEVICES/DEVICE/CRM_USER": "CCGKERBER", "DEVICES/DEVICE/GROUP": "MANAGER",
        "DEVICES/DEVICE/GATE": "prize", "DEVICES/DEVICE/USER2": "winners",
        "DEVICES/DEVICE/CALLDIRECTION": "I", "DEVICES/DEVICE/COREIDENT": "1",
        "DEVICES/DEVICE/STARTTIME": re.compile(r"\d+/\d+/\d{4} \d+:\d\d:\d\d [AP]M"),
        "DEVICES/DEVICE/RECORDING/ISRECORDING": "Y",
        "DEVICES/DEVICE/RECORDING/CALLINSTANCE": "2001"}),
    Step("error", req("DEVICESTATUS", DEVICEALIAS="NOSUCH"), 8),
    Step("example", """<REQUEST>
  <TYPE>DEVICERECORDINGSTATUS</TYPE>
  <DEVICEALIAS>DESK1</DEVICEALIAS>
  <REQUESTID>24</REQUESTID>
</REQUEST>""", 20, "Following active call instances found for specified deviceID, devicealias, "
         "crm_user or sys_user", {
             "DEVICE/DEVICEID": "1111", "DEVICE/SYS_USER": "gkerber", "DEVICE/COREIDENT": "1",
             "DEVICE/RECORDING/USER1": "E", "DEVICE/RECORDING/CALLDIRECTION": "I",
             "DEVICE/RECORDING/ISRECORDING": "Y", "DEVICE/RECORDING/CALLINSTANCE": "2001",
             "DEVICE/RECORDING/STATUS": "recording"}),
    Step("error", req("DEVICERECORDINGSTATUS", DEVICEALIAS="NOSUCH"), 8),
    Step("example", """<REQUEST>
  <TYPE>SYSTEMSTATUS</TYPE>
  <REQUESTID>255</REQUESTID>
</REQUEST>""", 20, "API_OK", {
        "RECORDINGPATH": re.compile(r"/.+/recordings"),
        "RECORDINGSPEACEINFO": re.compile(r"\d+\.\d\dGB of \d+\.\d\dGB"),
        "RECORDINGTOTALDISKCAPACITY": NUMBER, "RECORDINGTOTALDISKFREE": re.compile(r"\d+"),
        "RECORDINGTOTALDISKFREEPCT": re.compile(r"\d+\.\d\d"),
        "SYSTEMUPTIME": re.compile(r"\d+ days, \d+ hours, \d+ minutes, \d+ seconds\."),
        "PROCESSOR0/SYSTEMPROCESSORSPEED": re.compile(r"(\d+MHz)?"),
        "PROCESSOR0/SYSTEMPROCESSORTYPE": re.compile(r".+"),
        "SYSTEMRAMTOTAL": NUMBER, "SYSTEMRAMFREE": NUMBER, "SYSTEMRAMUSED": re.compile(r"\d+"),
        "SYSTEMRAMUSEDPCT": re.compile(r"\d{1,3}")}),
    Step("example", """<REQUEST>
<TYPE>CHANNELS</TYPE>
<REQUESTID>255</REQUESTID>
</REQUEST>""", 20, "API_OK", {"COUNT": "4", "CHANNELS/CHANNEL/ID": "1",
                              "CHANNELS/CHANNEL/RECORDINGDEVICE": "555"}),
    Step("setup", req("IMPORTWORKSTATION", DEVICEID="7007", STATIONNAME="JamesBond",
                      LOCATIONID="1"), 20),
    Step("example", """<REQUEST>
<TYPE>STATIONS</TYPE>
<REQUESTID>29</REQUESTID>
</REQUEST>""", 20, "API_OK", {"COUNT": "1", "STATIONS/STATION/STATIONNAME": "JamesBond",
                              "STATIONS/STATION/DEVICEID": "7007"}),
    Step("example", """<REQUEST>
  <TYPE>FETCHTERMINOLOGY</TYPE>
  <REQUESTID>34</REQUESTID>
</REQUEST>""", 20, "API_OK", {
        "COUNT": "10", "SETTINGS/TERMINOLOGY/NAME": "agent",
        "SETTINGS/TERMINOLOGY/VALUE": "Agent",
        "SETTINGS/TERMINOLOGY[NAME='devicealias']/VALUE": "Agent Number",
        "SETTINGS/TERMINOLOGY[NAME='user2']/VALUE": "CSN"}),
    # The example's dates are in 2011: nothing of this recorder's is that old.
    Step("example", """<REQUEST>
<TYPE>CALLLIST</TYPE>
<REQUESTID>1</REQUESTID>
<DEVICEID>1111</DEVICEID>
<USER3>12345</USER3>
<CALLCOUNT>5</CALLCOUNT>
<CALLDATESTART>1312156800</CALLDATESTART>
<CALLDATEEND>1312934400</CALLDATEEND>
</REQUEST>""", 20, "API_OK", {"TYPE": "CALLLIST", "REQUESTID": "1"}),
    Step("example", req("CALLLIST", DEVICEID="1111", USER3="12345", CALLCOUNT="5"), 20,
         "API_OK", {"TYPE": "CALLLIST", "SEARCHRESULT/CALLNUMBER": "1",
                    "SEARCHRESULT/DEVICEID": "1111", "SEARCHRESULT/DEVICEALIAS": "DESK1",
                    "SEARCHRESULT/USER3": "12345", "SEARCHRESULT/CALLDIRECTION": "I",
                    "SEARCHRESULT/RECORDID": NUMBER, "SEARCHRESULT/SYS_USER": "gkerber"}),
    Step("error", req("CALLLIST", CALLCOUNT="0"), 16),
    Step("error", req("CALLLIST", CALLDATESTART="1312934400", CALLDATEEND="1312156800"), 16),
    # --- Recording control functions ---------------------------------------------------------
    Step("setup", req("IMPORTUSER", ACTION="ADD", USERNAME="JDOE", FIRSTNAME="John",
                      LASTNAME="Doe", SYS_USER="jdoe"), 20, capture={"jdoe": "USERID"}),
    Step("example", """<REQUEST>
  <REQUESTID>37</REQUESTID>
  <TYPE>CHATSTART</TYPE>
  <SESSIONID>82738</SESSIONID>
  <KEYNAME>USERNAME</KEYNAME>
  <KEYVALUE>JDOE</KEYVALUE>
</REQUEST>""", 20, "CHATSTART" + CORES),
    Step("error", req("CHATSTART", KEYNAME="USERNAME", KEYVALUE="JDOE"), 33,
         body={"RESULTTYPE": "API_SESSIONID_UNSPECIFIED"}),
    Step("error", req("CHATSTART", SESSIONID="1", KEYNAME="USERNAME", KEYVALUE="NOBODY"), 24,
         body={"RESULTTYPE": "API_AGENT_NOT_FOUND"}),
    Step("example", """<REQUEST>
  <REQUESTID>52</REQUESTID>
  <TYPE>CHATSTOP</TYPE>
  <SESSIONID>82738</SESSIONID>
</REQUEST>""", 20, "CHATSTOP" + CORES),
    Step("error", req("CHATSTOP"), 33),
    Step("error", req("CHATSTOP", SESSIONID="82738"), 33),
    Step("example", """<REQUEST>
  <REQUESTID>64</REQUESTID>
  <TYPE>CHATUPDATE</TYPE>
  <SESSIONID>82738</SESSIONID>
  <GROUP>53</GROUP>
</REQUEST>""", 20, "CHATUPDATE" + CORES),
    Step("error", req("CHATUPDATE", GROUP="53"), 33),
    Step("setup", req("CALLLIST", SYS_USER="jdoe"), 20, body={
        "SEARCHRESULT/CALLINSTANCE": "82738", "SEARCHRESULT/GROUP": "53",
        "SEARCHRESULT/FILENAME": ""}),
    Step("setup", req("CALLSTART", DEVICEID="7007", SYS_USER="JSMITH"), 20),
    Step("example", """<REQUEST>
  <REQUESTID>124</REQUESTID>
  <TYPE>BLACKOUTSTART</TYPE>
  <SYS_USER>JSMITH</SYS_USER>

  <TIMEOFFSET>-5</TIMEOFFSET>
</REQUEST>""", 20, "BLACKOUTSTART" + CORES),
    Step("error", req("BLACKOUTSTART", SYS_USER="JSMITH"), 38,
         body={"RESULTTYPE": "API_BLACKOUT_INVALID_STATE"}),
    Step("example", req("AGENTBLACKOUTSTART", SYS_USER="JSMITH"), 20,
         "AGENTBLACKOUTSTART" + CORES),
    Step("error", req("AGENTBLACKOUTSTART", SYS_USER="NOBODY"), 24,
         body={"RESULTTYPE": "API_AGENT_NOT_FOUND"}),
    Step("example", """<REQUEST>
  <REQUESTID>125</REQUESTID>
  <TYPE>BLACKOUTSTOP</TYPE>
  <SYS_USER>JSMITH</SYS_USER>
</REQUEST>""", 20, "BLACKOUTSTOP" + CORES),
    Step("error", req("BLACKOUTSTOP", SYS_USER="JSMITH"), 38),
    Step("example", req("AGENTBLACKOUTSTOP", SYS_USER="JSMITH"), 20,
         "AGENTBLACKOUTSTOP" + CORES),
    Step("error", req("AGENTBLACKOUTSTOP", SYS_USER="JSMITH"), 38),
    Step("setup", req("CALLSTOP", DEVICEID="7007"), 20),
    # --- Import functions --------------------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>IMPORTUSER</TYPE>
  <REQUESTID>5</REQUESTID>
  <ACTION>ADD</ACTION>
  <USER_ID>2</USER_ID>
  <USERNAME>Sally Smith</USERNAME>
  <EMPLOYEE_ID>5</EMPLOYEE_ID>
  <FIRST_NAME>Sally</FIRST_NAME>
  <LAST_NAME>Smith</LAST_NAME>
  <STATUS>A</STATUS>
  <ADD_TIME></ADD_TIME>
  <MOD_TIME></MOD_TIME>
  <SYS_USER>smith.1</SYS_USER>
  <DOMAIN>Uptivity</DOMAIN>
  <EMAIL>ssmith@uptiviy.com</EMAIL>
  <CRM_USER>sallys</CRM_USER>
  <SITEID>1</SITEID>
  <PHONES>1123, 3343, 3234</PHONES>
</REQUEST>""", 20, re.compile(r"User \d+ added"), {"USERID": NUMBER},
         capture={"sally": "USERID"}),
    Step("error", req("IMPORTUSER", ACTION="ADD", FIRSTNAME="Sally", LASTNAME="Smith",
                      EMAIL="changed@example.com"), 54,
         body={"RESULTTYPE": "API_USER_ALREADY_EXIST"}),
    Step("example", """<REQUEST>
  <TYPE>IMPORTUSER</TYPE>
  <REQUESTID>5</REQUESTID>
  <ACTION>LIST</ACTION>
</REQUEST>""", 20, "API_OK", {
        "USERS/COUNT": "2",
        "USERS/USER[USERNAME='Sally Smith']/USER_ID": "{sally}",
        "USERS/USER[USERNAME='Sally Smith']/EMPLOYEEID": "5",
        "USERS/USER[USERNAME='Sally Smith']/FIRSTNAME": "Sally",
        "USERS/USER[USERNAME='Sally Smith']/LASTNAME": "Smith",
        "USERS/USER[USERNAME='Sally Smith']/AGENT": "TRUE",
        "USERS/USER[USERNAME='Sally Smith']/STATUS": "A",
        "USERS/USER[USERNAME='Sally Smith']/ADD_TIME": re.compile(
            r"\d+/\d+/\d{4} \d+:\d\d:\d\d [AP]M [+-]\d\d:\d\d"),
        "USERS/USER[USERNAME='Sally Smith']/MOD_TIME": re.compile(r".+"),
        "USERS/USER[USERNAME='Sally Smith']/SYS_USER": "smith.1",
        "USERS/USER[USERNAME='Sally Smith']/SYS_DOMAIN": "Uptivity",
        "USERS/USER[USERNAME='Sally Smith']/EMAIL": "ssmith@uptiviy.com",
        "USERS/USER[USERNAME='Sally Smith']/CRM_USER": "sallys",
        "USERS/USER[USERNAME='Sally Smith']/SITE_ID": "1",
        "USERS/USER[USERNAME='Sally Smith']/PHONES": "1123,3343,3234"}),
    Step("error", req("IMPORTUSER", ACTION="MODIFY", USERID="9999", EMAIL="x"), 28),
    Step("error", req("IMPORTUSER", ACTION="ARCHIVE"), 21),
    Step("error", req("IMPORTUSER", ACTION="ADD", LASTNAME="Smith"), 16,
         "FIRSTNAME is required to ADD a user"),
    Step("example", """<REQUEST>
  <TYPE>IMPORTAGENTPHONE</TYPE>
  <REQUESTID>2</REQUESTID>
  <ACTION>ADD</ACTION>
  <PHONEID>1234</PHONEID>
  <AGENTID>0</AGENTID>
  <FIRSTNAME>John</FIRSTNAME>
  <LASTNAME>Doe</LASTNAME>
</REQUEST>""", 20, "Phone 1234 assigned to agent {jdoe}", {"AGENTID": "{jdoe}"}),
    Step("error", req("IMPORTAGENTPHONE", ACTION="ADD", PHONEID="1234", AGENTID="{sally}"), 57,
         body={"RESULTTYPE": "API_PHONEID_IN_USE"}),
    Step("error", req("IMPORTAGENTPHONE", ACTION="ADD", PHONEID="1", AGENTID="9999"), 24),
    Step("example", """<REQUEST>
  <TYPE>IMPORTWORKSTATION</TYPE>
  <REQUESTID>2</REQUESTID>
  <DEVICEID>1234</DEVICEID>
  <STATIONNAME>COMPUTER1</STATIONNAME>
  <LOCATIONID>1</LOCATIONID>
</REQUEST>""", 20, "API_OK", {"DEVICEID": "1234", "STATIONNAME": "COMPUTER1"}),
    Step("error", req("IMPORTWORKSTATION", DEVICEID="1234", STATIONNAME="COMPUTER1"), 16,
         "LOCATIONID is required"),
    # --- User, group and role functions ------------------------------------------------------
    Step("example", """<REQUEST>
  <TYPE>ADDGROUP</TYPE>
  <REQUESTID>2</REQUESTID>
  <GROUPNAME>Sales & Marketing</GROUPNAME>
</REQUEST>""", 20, "group: Sales & Marketing has been added",
         {"GROUPID": NUMBER, "GROUPNAME": "Sales & Marketing"}, capture={"sales": "GROUPID"}),
    Step("example", req("ADDGROUP", GROUPNAME="Sales &amp; Marketing"), 20,
         "group: Sales & Marketing already exists", {"GROUPID": "{sales}"}),
    Step("error", req("ADDGROUP"), 16, "GROUPNAME is required"),
    Step("example", """<REQUEST>
  <TYPE>MODIFYGROUPPERMISSION</TYPE>
  <REQUESTID>2</REQUESTID>
  <ACTION>ADD</ACTION>
  <GROUPNAME>Sales & Marketing</GROUPNAME>
  <FIRSTNAME>John</FIRSTNAME>
  <LASTNAME>Doe</LASTNAME>
  <DEVICEID>1234</DEVICEID>
</REQUEST>""", 20, body={"GROUPID": "{sales}", "AGENTID": "{jdoe}", "DEVICEID": "1234"}),
    Step("error", req("MODIFYGROUPPERMISSION", ACTION="ADD", GROUPNAME="Nope",
                      AGENTID="{jdoe}"), 27),
    Step("error", req("MODIFYGROUPPERMISSION", ACTION="ADD", GROUPID="{sales}",
                      FIRSTNAME="No", LASTNAME="Body"), 24),
    Step("example", """<REQUEST>
  <REQUESTTYPE>MODIFYROLE</REQUESTTYPE>
  <REQUESTID>1</REQUESTID>
  <ACTION>ADD</ACTION>
  <ROLENAME>DefaultRole</ROLENAME>
  <DESCRIPTION>Adding Default Role</DESCRIPTION>
</REQUEST>""", 20, "Role Added"),
    Step("error", req("MODIFYROLE", ACTION="ADD", ROLENAME="DefaultRole"), 50),
    Step("error", req("MODIFYROLE", ACTION="MODIFY", ROLENAME="NoRole", DESCRIPTION="x"), 52),
    Step("error", req("MODIFYROLE", ACTION="RENAME", ROLENAME="DefaultRole"), 21),
    Step("error", req("MODIFYROLE", ACTION="ADD"), 16, "ROLENAME is required"),
    Step("example", """<REQUEST>
  <REQUESTTYPE> MODIFYROLEGROUPPERMISSION </REQUESTTYPE>
  <REQUESTID>1</REQUESTID>
  <ACTION>ADD</ACTION>
  <ROLENAME>DefaultRole</ROLENAME>
  <GROUPNAME>CALLCOPYTESTGROUP</GROUPNAME>
</REQUEST>""", 20, "Group CALLCOPYTESTGROUP does not exist or it is not active"),
    Step("setup", req("ADDGROUP", GROUPNAME="CALLCOPYTESTGROUP"), 20),
    Step("example", """<REQUEST>
  <REQUESTTYPE> MODIFYROLEGROUPPERMISSION </REQUESTTYPE>
  <REQUESTID>1</REQUESTID>
  <ACTION>ADD</ACTION>
  <ROLENAME>DefaultRole</ROLENAME>
  <GROUPNAME>CALLCOPYTESTGROUP</GROUPNAME>
</REQUEST>""", 20, "Group CALLCOPYTESTGROUP is assigned to role DefaultRole"),
    Step("error", req("MODIFYROLEGROUPPERMISSION", ACTION="MODIFY", ROLENAME="DefaultRole",
                      GROUPNAME="CALLCOPYTESTGROUP"), 21),
    Step("error", req("MODIFYROLEGROUPPERMISSION", ACTION="ADD", ROLENAME="DefaultRole"), 16),
    Step("setup", req("IMPORTUSER", ACTION="ADD", USERNAME="TestUser", FIRSTNAME="Test",
                      LASTNAME="User"), 20, capture={"tester": "USERID"}),
    Step("example", """<REQUEST>
  <REQUESTTYPE> MODIFYUSERROLE </REQUESTTYPE>
  <REQUESTID>1</REQUESTID>
  <ACTION>ADD</ACTION>
  <ROLENAME>DefaultRole</ROLENAME>
  <USERNAME>TestUser</USERNAME>
</REQUEST>""", 20, "User {tester} is assigned role DefaultRole"),
    Step("error", req("MODIFYUSERROLE", ACTION="ADD", ROLENAME="DefaultRole",
                      USERNAME="NoSuchUser"), 28, body={"RESULTTYPE": "API_USER_NOT_FOUND"}),
    Step("error", req("MODIFYUSERROLE", ACTION="ADD", ROLENAME="NoRole", USERNAME="TestUser"),
         52, body={"RESULTTYPE": "API_ROLE_NOT_FOUND"}),
    Step("example", """<REQUEST>
  <REQUESTTYPE> MODIFYROLEPERMISSION </REQUESTTYPE>
  <REQUESTID>1</REQUESTID>
  <ACTION>ADD</ACTION>
  <ROLENAME>DefaultRole</ROLENAME>
  <PERMISSIONNAME>HOMEPAGEWIDGETS</PERMISSIONNAME>
</REQUEST>""", 20, "Permission Added"),
    Step("error", req("MODIFYROLEPERMISSION", ACTION="ADD", ROLENAME="DefaultRole",
                      PERMISSIONNAME="FLYING"), 51,
         body={"RESULTTYPE": "API_PERMISSIONIDENT_NOT_FOUND"}),
    Step("error", req("MODIFYROLEPERMISSION", ACTION="ADD", ROLENAME="NoRole",
                      PERMISSIONNAME="HOMEPAGEWIDGETS"), 52),
    Step("error", req("MODIFYROLEPERMISSION", ACTION="MODIFY", ROLENAME="DefaultRole",
                      PERMISSIONNAME="HOMEPAGEWIDGETS"), 21),
    # --- EMAIL, COMBINEDEMAIL (the walk's recorder has no [smtp] server) ----------------------
    Step("example", """<REQUEST>
<TYPE>EMAIL</TYPE>
<REQUESTID>14</REQUESTID>
<IDENT>488373</IDENT>
<TOADDRESS>jdoe@uptivity.com</TOADDRESS>
<MEDIA_FORMAT>wav</MEDIA_FORMAT>
</REQUEST>""", 31, NO_MAIL, {"RESULTTYPE": "API_ERROR_CLIENT_NOT_FOUND"}),
    Step("error", req("EMAIL", IDENT="488373", TOADDRESS="jdoe", MEDIA_FORMAT="wav"), 45,
         body={"RESULTTYPE": "API_EMAIL_NOT_VALID"}),
    Step("error", req("EMAIL", IDENT="488373", TOADDRESS="jdoe@uptivity.com"), 16,
         "MEDIA_FORMAT is required"),
    Step("example", """<REQUEST>
<TYPE>COMBINEDEMAIL</TYPE>
<REQUESTID>1</REQUESTID>
<TOADDRESS>jane.doe@uptivity.com</TOADDRESS>
<TONAME>jane</TONAME>
<FROMADDRESS>jane.doe@uptivity.com</FROMADDRESS>
<FROMNAME>jane</FROMNAME>
<IDENT>1509</IDENT>
<UNIQUEID>IDENT</UNIQUEID>
</REQUEST>""", 31, NO_MAIL),
    Step("error", req("COMBINEDEMAIL", IDENT="1509", TOADDRESS="jane.doe@uptivity.com",
                      FROMADDRESS="jane.doe"), 45),
    Step("error", """<REQUEST>
<TYPE>AGENTWINDOW</TYPE>
<REQUESTID>7</REQUESTID>
<COMPUTERNAME>ceddy</COMPUTERNAME>
<USERNAME>ceddy</USERNAME>
</REQUEST>""", 24, body={"RESULTTYPE": "API_AGENT_NOT_FOUND"}),
    Step("setup", req("AGENTWINDOW", ACTION="UPDATE", COMPUTERNAME="ceddy", USERNAME="ceddy",
                      DOMAIN="uptivity.com", IPADDRESS="10.100.5.91", STATUS="AVAILABLE",
                      APPLICATIONTITLE="Internet Explorer"), 20),
    Step("example", """<REQUEST>
<TYPE>AGENTWINDOW</TYPE>
<REQUESTID>7</REQUESTID>
<COMPUTERNAME>ceddy</COMPUTERNAME>
<USERNAME>ceddy</USERNAME>
</REQUEST>""", 20, "API_OK", {
        "DOMAIN": "uptivity.com", "IPADDRESS": "10.100.5.91", "STATUS": "AVAILABLE",
        "APPLICATIONTITLE": "Internet Explorer",
        "LASTUPDATE": re.compile(r"[A-Z][a-z]{2} [ \d]\d \d{4} [ \d]\d:\d\d[AP]M")}),
    Step("error", req("AGENTWINDOW"), 26, body={"RESULTTYPE": "API_BLANK_REQUIRED_VALUE"}),
    # --- WebAPI-only functions and the event interface ---------------------------------------
    *web_only(req("EXPORT", UNIQUEFIELD="user2", UNIQUEID="10121968", MEDIA_FORMAT="mp3"), 41,
              "no recording with UNIQUEFIELD user2 = '10121968'"),
    *web_only(req("EXPORT", UNIQUEFIELD="user2", MEDIA_FORMAT="mp3"), 16,
              "UNIQUEID is required", "error"),
    *web_only(req("COMBINEDEXPORT", IDENT="10121967,10121968", MEDIA_FORMAT="mp3"), 41,
              "no recording with IDENT 10121967"),
    *web_only(req("COMBINEDEXPORT", IDENT="10121967,x", MEDIA_FORMAT="mp3"), 16,
              "IDENT must be RECORDIDs separated by commas; 'x' is not one", "error"),
    *web_only(req("COMBINEEXPORT", IDENT="10121967,10121968", MEDIA_FORMAT="mp3"), 41,
              "no recording with IDENT 10121967"),
    *web_only(req("COMBINEEXPORT", IDENT="10121967"), 16, "MEDIA_FORMAT is required", "error"),
    *web_only(req("MULTIEXPORT", IDENT="10121967,10121968", MEDIA_FORMAT="mp3"), 41,
              "no recording with IDENT 10121967"),
    *web_only(req("MULTIEXPORT", IDENT="10121967", MEDIA_FORMAT="ogg"), 16,
              re.compile(r"MEDIA_FORMAT must be one of WAV, MP3, VOX, CAV.*"), "error"),
    Step("example", """<REQUEST>
  <REQUESTID>0</REQUESTID>
  <TYPE>EVENTS</TYPE>
  <EVENTCLASS>ALL</EVENTCLASS>
  <EVENTVALUE></EVENTVALUE>
</REQUEST>""", 20, "API_OK", {"EVENTXREF": "0", "EVENTCLASS": "ALL", "EVENTTYPE": ""}),
    Step("error", req("EVENTS", EVENTCLASS="PHONE"), 30,
         body={"RESULTTYPE": "API_EVENT_TYPE_INVALID"}),
)

_BARE_AMPERSAND = re.compile(r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);)")


def well_formed(xml: str) -> str:
    """The manual's text with a bare "&" escaped, as XML requires."""
    return _BARE_AMPERSAND.sub("&amp;", xml)


def send(running: Running, transport: str, xml: str) -> etree._Element:
    if transport == "socket":
        conn = running.connect()
        try:
            conn.send(xml.encode() + b"\r\n")
            return conn.read_result()
        finally:
            conn.close()
    root = etree.fromstring(xml.encode())
    params = [(child.tag.lower(), (child.text or "").strip()) for child in root]
    conn = http.client.HTTPConnection("127.0.0.1", running.web_port, timeout=10)
    try:
        conn.request("GET", "/webAPI.aspx?" + urllib.parse.urlencode(params))
        response = conn.getresponse()
        # The RESULT is the first line (an EVENTS answer goes on with the events after it).
        body = response.readline()
        assert response.status == 200, body
        return etree.fromstring(body)
    finally:
        conn.close()


def check(step: Step, result: etree._Element, captured: Mapping[str, str]) -> None:
    shown = f"{step.kind} {step.type}: {etree.tostring(result, encoding='unicode')}"
    assert result_code(result) == step.code, shown
    assert result.findtext("REQUESTTYPE") == step.type, shown
    wanted = {"RESULTMSG": step.message} if step.message is not None else {}
    for path, want in {**wanted, **step.body}.items():
        got = result.findtext(path)
        assert got is not None, f"{path} missing from {shown}"
        if isinstance(want, re.Pattern):
            assert want.fullmatch(got), f"{path}={got!r} in {shown}"
        else:
            assert got == want.format_map(captured), f"{path}={got!r} in {shown}"


@RECORDERD_ONLY
@pytest.mark.parametrize("transport", ["socket", "web"])
def test_the_manual_top_to_bottom(start_recorder: Any, transport: str) -> None:
    running = start_recorder(boards=[{"driver": "synthetic", "devices": DEVICES}])
    captured: dict[str, str] = {}
    for step in WALK:
        if step.transport not in ("", transport):
            continue
        result = send(running, transport, well_formed(step.request.format_map(captured)))
        check(step, result, captured)
        for name, path in step.capture.items():
            captured[name] = result.findtext(path) or ""
    # No request type the manual names, nor any it deprecates, is unknown to the recorder.
    for request_type in (*MANUAL_TYPES, *DEPRECATED):
        result = send(running, transport, req(request_type))
        assert result_code(result) != 10, request_type


def test_the_walk_covers_every_request_type() -> None:
    examples = {step.type for step in WALK if step.kind == "example"}
    assert set(MANUAL_TYPES) <= examples
    assert set(CARRIED_OUT) <= set(HANDLERS)
    assert set(MANUAL_TYPES) <= set(HANDLERS) | PLANNED
    errors = {step.type for step in WALK if step.kind == "error"}
    assert set(CARRIED_OUT) - {"TEST", "SYSTEMSTATUS", "CHANNELS", "STATIONS",
                               "FETCHTERMINOLOGY", "DEVICELIST"} <= errors  # no error case
