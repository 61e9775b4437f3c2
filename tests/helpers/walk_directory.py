"""The manual's walk (tests/test_manual_walk.py), its second part: import functions, users,
groups and roles, EMAIL, and the WebAPI-only functions and the event interface."""

from __future__ import annotations

import re

from tests.helpers.walk import NO_MAIL, NUMBER, Step, req, web_only

DIRECTORY: tuple[Step, ...] = (
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
