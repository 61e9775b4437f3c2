"""Groups and roles over real sockets: ADDGROUP, MODIFYGROUPPERMISSION, MODIFYROLE,
MODIFYROLEGROUPPERMISSION, MODIFYUSERROLE, MODIFYROLEPERMISSION."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import pytest

from recorder.api.protocol.permissions import CORRECTED, PERMISSIONS
from recorder.store.directory import DirectoryStore
from tests.helpers.api import ApiConnection, add_user, expect, fields
from tests.helpers.recorders import Running, shared_recorder, stored_rows

# Every PERMISSION NAME in the manual's table, in its order and spelling.
MANUAL_PERMISSIONS = [
    "ALLOWCHANGEPASSWORD", "ALLOWQAVIEW", "CALLREPORTING", "QAREPORTING", "VIEWOWNRECORDS",
    "ALLOWAGENTADMIN", "ALLOWAPIAUTH", "ALLOWARCHIVEADMIN", "ALLOWCOMMENT", "ALLOWEDITCOMPLETEDQA",
    "ALLOWEXPORTDOWNLOAD", "ALLOWEXPORTEMAIL", "ALLOWFILEDELETE", "ALLOWGROUPADMIN",
    "ALLOWLIVEMONITOR", "ALLOWQAEDIT", "ALLOWQADELETE", "ALLOWSYSTEMCONFIG", "ALLOWSYSTEMREPORTS",
    "ALLOWVIEWALLRECORDS", "AUDITREPORTING", "CONTENTUPLOAD", "REPORTSUBSCRIPTION",
    "ALLOWWIDGETADMINISTRATION", "ALLOWVIEWVIDEO", "ALLOWBLACKOUT", "ALLOWRECORDINGALIAS",
    "ALLOWRECORDDESKTOP", "ALLOWRECORDID", "ALLOWRECORDSTOP", "ALLOWUPDATEAUDIO", "PROMPTID",
    "SECUREALL", "SECUREID", "ALLOWWEBONDEMAND", "ANALYTICSREPORTING", "ALLOWVIEWANALYTICS",
    "ALLOWANALYTICSADMIN", "SURVEYREPORTING", "ALLWSURVEYEDIT", "ALLWSURVEYADMIN",
    "ALLWSURVEYDELETE", "ALLWSURVEYVIEW", "ALLOWFUSIONADMIN", "CONFIGURATIONSECTION",
    "EDITNEWSWIDGET", "EMPLOYEECREATE", "EMPLOYEEPROFILEALLVIEW", "EMPLOYEEPROFILETEAMVIEW",
    "EMPLOYEEESCHEDULEALLEEDIT", "EMPLOYEEESCHEDULEALLVIEW", "EMPLOYEEESCHEDULETEAMEDIT",
    "EMPLOYEEESCHEDULETEAMVIEW", "EMPLOYEESEARCH", "EMPLOYEESECTION", "EMPLOYEESELFEDIT",
    "FORECASTACQUIRE", "FORECASTPREDICT", "FORECASTSECTION", "FORECASTTREND", "HISTORICALWIDGETS",
    "HOMEPAGEWIDGETS", "LEAVEREQUESTAPPROVALALL", "LEAVEREQUESTAPPROVALTEAM", "REALTIMEWIDGETS",
    "REPORTSHISTORICAL", "REPORTSPROCESSES", "REPORTSREALTIME", "REPORTSSECTION", "ROSTERALL",
    "ROSTERTEAM", "SCHEDULECREATE", "SCHEDULELOAD", "SCHEDULEPUBLISH", "SCHEDULESECTION",
    "SWAPREQUESTAPPROVALALL", "SWAPREQUESTAPPROVALTEAM",
]


def store_of(running: Running) -> DirectoryStore:
    assert running.recorder is not None
    assert running.recorder.store is not None
    return running.recorder.store.directory


def test_addgroup_is_idempotent_and_keeps_names_exactly(running: Running) -> None:
    conn = running.connect()
    name = "Sales & Marketing <EMEA> \"Zoë\""
    result = expect(conn.request("ADDGROUP", 2, groupname=name), 20,
                    f"group: {name} has been added")
    assert [e.tag for e in result][5:] == ["GROUPID", "GROUPNAME"]
    group = fields(result)
    assert group["GROUPNAME"] == name
    again = fields(expect(conn.request("ADDGROUP", 3, groupname=name.upper()), 20,
                          f"group: {name} already exists"))
    assert (again["GROUPID"], again["GROUPNAME"]) == (group["GROUPID"], name)
    other = fields(expect(conn.request("ADDGROUP", 4, groupname="Support"), 20))
    assert other["GROUPID"] != group["GROUPID"]
    expect(conn.request("ADDGROUP", 5), 16, "GROUPNAME is required")
    expect(conn.request("ADDGROUP", 6, groupname=""), 16, "GROUPNAME is required")
    expect(conn.request("ADDGROUP", 7, groupname="g" * 256), 16, starts="GROUPNAME is 256")


def test_modifygrouppermission_adds_and_removes_agents_and_devices(running: Running) -> None:
    conn = running.connect()
    john = add_user(conn, "John", "Doe", phones="1234")
    group_id = int(expect(conn.request("ADDGROUP", 1, groupname="Sales & Marketing"), 20)
                   .findtext("GROUPID") or 0)
    # The manual's example: names for both, and a device.
    result = expect(conn.request("MODIFYGROUPPERMISSION", 2, action="ADD",
                                 groupname="Sales & Marketing", firstname="John",
                                 lastname="Doe", deviceid="1234"), 20)
    assert fields(result) | {"RESULTMSG": ""} == {
        "REQUESTTYPE": "MODIFYGROUPPERMISSION", "REQUESTID": "2", "RESULTTYPE": "API_OK",
        "RESULTCODE": "20", "RESULTMSG": "", "ACTION": "ADD", "GROUPID": str(group_id),
        "GROUPNAME": "Sales & Marketing", "AGENTID": str(john), "FIRSTNAME": "John",
        "LASTNAME": "Doe", "DEVICEID": "1234"}
    group = store_of(running).find_group(group_id=group_id)
    assert group is not None
    assert (group.user_ids, group.device_ids) == ((john,), ("1234",))
    expect(conn.request("MODIFYGROUPPERMISSION", 3, action="ADD", groupld=group_id,
                        agentid=john), 20, starts=f"Agent {john} already in group")
    expect(conn.request("MODIFYGROUPPERMISSION", 4, action="DELETE", groupid=group_id,
                        agentid=john, phoneid="1234"), 20,
           f"Agent {john} and device 1234 removed from group Sales & Marketing")
    group = store_of(running).find_group(group_id=group_id)
    assert group is not None
    assert (group.user_ids, group.device_ids) == ((), ())


@pytest.mark.parametrize(("params", "code", "starts"), [
    ({"groupname": "G", "agentid": "1"}, 26, "ACTION is required"),
    ({"action": "MODIFY", "groupname": "G", "agentid": "1"}, 21, "ACTION must be ADD or DELETE"),
    ({"action": "ADD", "agentid": "1"}, 26, "GROUPNAME or GROUPID is required"),
    ({"action": "ADD", "groupname": "Nope", "agentid": "1"}, 27, "no group named Nope"),
    ({"action": "ADD", "groupid": "99", "agentid": "1"}, 27, "no group with GROUPID 99"),
    ({"action": "ADD", "groupname": "G"}, 26, "AGENTID, or FIRSTNAME and LASTNAME"),
    ({"action": "ADD", "groupname": "G", "agentid": "99"}, 24, "no agent with AGENTID 99"),
    ({"action": "ADD", "groupname": "G", "firstname": "No", "lastname": "One"}, 24,
     "no agent named No One"),
    ({"action": "ADD", "groupname": "G", "agentid": "1", "phoneid": "1", "deviceid": "2"}, 16,
     "PHONEID and DEVICEID name different devices"),
    ({"action": "ADD", "groupname": "G", "agentid": "1", "phoneid": "12345678901"}, 16,
     "PHONEID is 11"),
    ({"action": "ADD", "groupname": "G", "agentid": "1", "firstname": "x" * 21,
      "lastname": "y"}, 16, "FIRSTNAME is 21"),
])
def test_modifygrouppermission_refusals(group_g: Running, params: dict[str, str], code: int,
                                        starts: str) -> None:
    before = stored_rows(group_g)
    expect(group_g.request("MODIFYGROUPPERMISSION", 2, **params), code, starts=starts)
    assert stored_rows(group_g) == before


@pytest.fixture(scope="module")
def group_g(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A recorder with John Doe (USERID 1) and group G, shared by the refusals above."""
    with shared_recorder(tmp_path_factory.mktemp("group")) as running, \
            closing(running.connect()) as conn:
        assert add_user(conn, "John", "Doe") == 1
        expect(conn.request("ADDGROUP", 1, groupname="G"), 20)
        yield running


def role_request(conn: ApiConnection, request_type: str, **params: str) -> dict[str, str]:
    return fields(expect(conn.request(request_type, 1, **params), 20))


def test_roles_from_creation_to_deletion(running: Running) -> None:
    conn = running.connect()
    # The manual's MODIFYROLE example, padded type and all.
    conn.send(b"<REQUEST>\r\n  <REQUESTTYPE> MODIFYROLE </REQUESTTYPE>\r\n"
              b"  <REQUESTID>1</REQUESTID>\r\n  <ACTION>ADD</ACTION>\r\n"
              b"  <ROLENAME>DefaultRole</ROLENAME>\r\n"
              b"  <DESCRIPTION>Adding Default Role</DESCRIPTION>\r\n</REQUEST>\r\n")
    role = fields(expect(conn.read_result(), 20, "Role Added"))
    assert (role["ROLENAME"], role["DESCRIPTION"]) == ("DefaultRole", "Adding Default Role")
    expect(conn.request("MODIFYROLE", 2, action="ADD", rolename="defaultrole"), 50)
    changed = role_request(conn, "MODIFYROLE", action="MODIFY", rolename="DefaultRole",
                           description="Agents & <QA>")
    assert (changed["RESULTMSG"], changed["DESCRIPTION"]) == ("Role Modified", "Agents & <QA>")
    tester = add_user(conn, "Test", "User", username="TestUser")
    assigned = role_request(conn, "MODIFYUSERROLE", action="ADD", rolename="DefaultRole",
                            username="TestUser")
    assert assigned["RESULTMSG"] == f"User {tester} is assigned role DefaultRole"
    expect(conn.request("ADDGROUP", 3, groupname="CALLCOPYTESTGROUP"), 20)
    linked = role_request(conn, "MODIFYROLEGROUPPERMISSION", action="ADD",
                          roleid=role["ROLEID"], groupname="callcopytestgroup")
    assert linked["RESULTMSG"] == "Group CALLCOPYTESTGROUP is assigned to role DefaultRole"
    granted = role_request(conn, "MODIFYROLEPERMISSION", action="ADD", rolename="DefaultRole",
                           permissionname="HOMEPAGEWIDGETS")
    assert (granted["RESULTMSG"], granted["PERMISSIONNAME"]) == ("Permission Added",
                                                                 "HOMEPAGEWIDGETS")
    revoked = role_request(conn, "MODIFYROLEPERMISSION", action="delete", rolename="DefaultRole",
                           permissionname="homepagewidgets")
    assert revoked["RESULTMSG"] == "Permission Removed"
    deleted = role_request(conn, "MODIFYROLE", action="DELETE", rolename="DefaultRole")
    assert deleted["RESULTMSG"] == "Role Deleted"
    expect(conn.request("MODIFYROLE", 4, action="DELETE", rolename="DefaultRole"), 52)
    expect(conn.request("MODIFYUSERROLE", 5, action="ADD", rolename="DefaultRole",
                        username="TestUser"), 52)


def test_assignments_are_kept_and_removed(running: Running) -> None:
    conn = running.connect()
    store = store_of(running)
    role_id = int(role_request(conn, "MODIFYROLE", action="ADD", rolename="QA")["ROLEID"])
    group_id = int(role_request(conn, "ADDGROUP", groupname="Team")["GROUPID"])
    user = add_user(conn, "Ann", "Lee", sys_user="CORP\\alee")
    role_request(conn, "MODIFYROLEGROUPPERMISSION", action="ADD", rolename="QA",
                 groupname="Team")
    role_request(conn, "MODIFYUSERROLE", action="ADD", roleid=str(role_id),
                 systemusername="corp\\ALEE")
    role_request(conn, "MODIFYROLEPERMISSION", action="ADD", rolename="QA",
                 permissionname="ALLOWQAVIEW")
    role_request(conn, "MODIFYROLEPERMISSION", action="ADD", rolename="QA",
                 permissionname="ALLOWQAEDIT")
    role = store.find_role(role_id=role_id)
    assert role is not None
    assert (role.group_ids, role.user_ids, role.permissions) == (
        (group_id,), (user,), frozenset({"ALLOWQAVIEW", "ALLOWQAEDIT"}))
    expect(conn.request("MODIFYROLEPERMISSION", 2, action="DELETE", rolename="QA",
                        permissionname="ALLOWQAVIEW"), 44, starts="ALLOWQAVIEW cannot be removed")
    for request_type, params in (
            ("MODIFYROLEGROUPPERMISSION", {"groupname": "Team"}),
            ("MODIFYUSERROLE", {"userid": str(user)}),
            ("MODIFYROLEPERMISSION", {"permissionname": "ALLOWQAEDIT"})):
        role_request(conn, request_type, action="DELETE", rolename="QA", **params)
    role = store.find_role(role_id=role_id)
    assert role is not None
    assert (role.group_ids, role.user_ids, role.permissions) == (
        (), (), frozenset({"ALLOWQAVIEW"}))


def test_every_permission_name_in_the_manual_is_accepted(running: Running) -> None:
    assert list(PERMISSIONS) == MANUAL_PERMISSIONS
    conn = running.connect()
    role_id = int(role_request(conn, "MODIFYROLE", action="ADD", rolename="All")["ROLEID"])
    for name in MANUAL_PERMISSIONS:
        if name == "ALLOWQAEDIT":
            continue  # needs ALLOWQAVIEW first, which the table lists before it
        result = role_request(conn, "MODIFYROLEPERMISSION", action="ADD", roleid=str(role_id),
                              permissionname=name)
        assert result["RESULTMSG"] == "Permission Added", name
    role_request(conn, "MODIFYROLEPERMISSION", action="ADD", roleid=str(role_id),
                 permissionname="ALLOWQAEDIT")
    for corrected, manual in CORRECTED.items():
        result = role_request(conn, "MODIFYROLEPERMISSION", action="ADD", roleid=str(role_id),
                              permissionname=corrected)
        assert result["PERMISSIONNAME"] == manual
    role = store_of(running).find_role(role_id=role_id)
    assert role is not None
    assert role.permissions == frozenset(MANUAL_PERMISSIONS)


@pytest.mark.parametrize(("request_type", "params", "code", "starts"), [
    ("MODIFYROLE", {"rolename": "R"}, 16, "ACTION is required"),
    ("MODIFYROLE", {"action": "RENAME", "rolename": "R"}, 21,
     "ACTION must be ADD, MODIFY or DELETE"),
    ("MODIFYROLE", {"action": "ADD"}, 16, "ROLENAME is required"),
    ("MODIFYROLE", {"action": "ADD", "rolename": "Existing"}, 50, "role Existing already exists"),
    ("MODIFYROLE", {"action": "MODIFY", "rolename": "Nope", "description": "d"}, 52,
     "no role named Nope"),
    ("MODIFYROLE", {"action": "MODIFY", "rolename": "Existing"}, 16, "DESCRIPTION is required"),
    ("MODIFYROLE", {"action": "DELETE", "roleid": "99"}, 52, "no role with ROLEID 99"),
    ("MODIFYROLE", {"action": "DELETE"}, 16, "ROLEID or ROLENAME is required"),
    ("MODIFYROLEGROUPPERMISSION", {"rolename": "Existing", "groupname": "G"}, 16,
     "ACTION is required"),
    ("MODIFYROLEGROUPPERMISSION", {"action": "MODIFY", "rolename": "Existing",
                                   "groupname": "G"}, 21, "ACTION must be ADD or DELETE"),
    ("MODIFYROLEGROUPPERMISSION", {"action": "ADD", "rolename": "Existing"}, 16,
     "GROUPNAME is required"),
    ("MODIFYROLEGROUPPERMISSION", {"action": "ADD", "groupname": "G"}, 16,
     "ROLEID or ROLENAME is required"),
    ("MODIFYROLEGROUPPERMISSION", {"action": "ADD", "rolename": "Nope", "groupname": "G"}, 52,
     "no role named Nope"),
    # The manual's own example result for a group that does not exist.
    ("MODIFYROLEGROUPPERMISSION", {"action": "ADD", "rolename": "Existing",
                                   "groupname": "Group01"}, 20,
     "Group Group01 does not exist or it is not active"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Existing"}, 16,
     "one of USERID, USERNAME, SYSTEMUSERNAME, FIRSTNAME or LASTNAME is required"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Existing", "username": "nobody"}, 28,
     "no user matching USERNAME nobody"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Existing", "lastname": "Doe"}, 22,
     "2 users matching LASTNAME Doe"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Existing", "lastname": "Doe",
                        "firstname": "Jane"}, 20, "User 2 is assigned role Existing"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Nope", "userid": "1"}, 52,
     "no role named Nope"),
    ("MODIFYUSERROLE", {"action": "GRANT", "rolename": "Existing", "userid": "1"}, 21,
     "ACTION must be ADD or DELETE"),
    ("MODIFYUSERROLE", {"action": "ADD", "rolename": "Existing", "systemusername": "a",
                        "sys_user": "b"}, 16, "SYSTEMUSERNAME and SYS_USER name different"),
    ("MODIFYROLEPERMISSION", {"action": "ADD", "rolename": "Existing",
                              "permissionname": "FLY"}, 51,
     "PERMISSIONNAME 'FLY' is not a permission the manual lists"),
    ("MODIFYROLEPERMISSION", {"action": "ADD", "rolename": "Existing"}, 16,
     "PERMISSIONNAME is required"),
    ("MODIFYROLEPERMISSION", {"action": "ADD", "rolename": "Nope",
                              "permissionname": "SECUREID"}, 52, "no role named Nope"),
    ("MODIFYROLEPERMISSION", {"action": "MODIFY", "rolename": "Existing",
                              "permissionname": "SECUREID"}, 21, "ACTION must be ADD or DELETE"),
    ("MODIFYROLEPERMISSION", {"action": "ADD", "rolename": "Existing",
                              "permissionname": "ALLOWQAEDIT"}, 44,
     "ALLOWQAEDIT cannot be granted unless role Existing also has ALLOWQAVIEW"),
    ("MODIFYROLEPERMISSION", {"action": "ADD", "roleid": "x", "permissionname": "SECUREID"},
     16, "ROLEID must be a whole number"),
])
def test_role_refusals(roles: Running, request_type: str, params: dict[str, str], code: int,
                       starts: str) -> None:
    before = stored_rows(roles)
    expect(roles.request(request_type, 2, **params), code, starts=starts)
    after = stored_rows(roles)
    if starts.startswith("User 2 is assigned"):  # the one that does something: undone
        assert after["user_roles"] != before["user_roles"]
        expect(roles.request("MODIFYUSERROLE", 3, action="DELETE", rolename="Existing",
                             userid="2"), 20)
        after = stored_rows(roles)
    assert after == before


@pytest.fixture(scope="module")
def roles(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A recorder with John and Jane Doe (USERIDs 1 and 2) and role Existing, shared by the
    refusals above."""
    with shared_recorder(tmp_path_factory.mktemp("roles")) as running, \
            closing(running.connect()) as conn:
        assert [add_user(conn, "John", "Doe"), add_user(conn, "Jane", "Doe")] == [1, 2]
        expect(conn.request("MODIFYROLE", 1, action="ADD", rolename="Existing"), 20)
        yield running
