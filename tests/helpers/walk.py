"""The manual's walk (tests/test_manual_walk.py), as data: each request the manual prints, its
documented error cases and the setup the examples assume, with the result the manual documents.
Its first part: the API's basics, calls and recordings, status and recording control;
tests/helpers/walk_directory.py holds the rest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Want = str | re.Pattern[str]

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

CALLS: tuple[Step, ...] = (
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
)
