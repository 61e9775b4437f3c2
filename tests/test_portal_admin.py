"""The portal's supervisor and administrator pages over HTTP against a real in-process recorder:
the live view, the system page, the audit page and its CSV, and users, roles and groups handed
out only as far as the administrator holds them."""

from __future__ import annotations

import csv
import io
import json

from recorder.app import Recorder
from recorder.store.directory import UserQuery
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    add_recording,
    add_user,
    audited,
    client_of,
    portal_fixture,
)

portal = portal_fixture()


def test_the_audit_page_and_its_csv_defuse_what_callers_typed(portal: Recorder) -> None:
    add_user(portal, "aud", ("AUDITREPORTING",))
    client_of(portal).sign_in("=HYPERLINK(\"http://evil\")", "whatever it is")
    client_of(portal).sign_in("<script>x</script>", "whatever it is")
    client = client_of(portal)
    client.sign_in("aud")
    page = client.get("/audit?action=signin-failed")
    assert page.status == 200
    assert "<script>x" not in page.text
    assert "&lt;script&gt;x&lt;/script&gt;" in page.text
    assert "signin" in client.get("/audit?user=aud").text
    sheet = client.get("/audit.csv?action=signin-failed")
    assert sheet.status == 200
    assert sheet.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(sheet.text)))
    assert rows[0] == ["time_utc", "user_id", "user", "action", "target", "detail", "address"]
    users = [row[2] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://evil\")" in users  # text to a spreadsheet, not a formula
    assert "<script>x</script>" in users
    assert not [cell for row in rows[1:] for cell in row if cell.startswith(("=", "+", "@"))]


def test_the_live_view_shows_channels_levels_and_calls_in_progress(portal: Recorder) -> None:
    assert portal.scheduler is not None
    add_user(portal, "liv", ("ALLOWLIVEMONITOR",))
    client = client_of(portal)
    client.sign_in("liv")
    page = client.get("/live")
    assert page.status == 200
    for device in ("1001", "1002", "1003", "1004"):
        assert f"<td>{device}</td>" in page.text
    assert 'data-field="level"' in page.text
    assert portal.api is not None
    conn = ApiConnection(portal.api.socket_address[1])
    try:
        conn.request("CALLSTART", 1, DEVICEID="1002", ANI="<live>")
        status, body = client.first_event("/live/stream")
    finally:
        conn.request("CALLSTOP", 2, DEVICEID="1002")
        conn.close()
    assert status == 200
    view = json.loads(body.split(b"data: ", 1)[1])
    assert {c["device"] for c in view["channels"]} == {"1001", "1002", "1003", "1004"}
    assert all(-60.0 <= c["level"] <= 0.0 for c in view["channels"])
    assert [c["device"] for c in view["calls"]] == ["1002"]
    assert "filename" not in body.decode()  # only what the view shows reaches the browser


def test_an_administrator_adds_a_user_and_a_role_and_hands_out_only_what_they_hold(
        portal: Recorder) -> None:
    add_user(portal, "ada", ("ALLOWAGENTADMIN", "ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    admin = client_of(portal)
    admin.sign_in("ada")
    token = admin.csrf("/admin/users")
    assert admin.post("/admin/users", {"csrf": token, "username": "newbie"}).status == 400
    added = admin.post("/admin/users", {
        "csrf": token, "action": "add", "username": "newbie", "first_name": "<b>New</b>",
        "last_name": "Bie", "password": "a fresh password"})
    assert added.status == 303
    assert admin.post("/admin/roles", {"csrf": token, "action": "add",
                                       "role_name": "Listeners"}).status == 303
    assert portal.store is not None
    role = portal.store.directory.find_role(name="Listeners")
    assert role is not None
    denied = admin.post(f"/admin/roles/{role.role_id}/permissions", {
        "csrf": token, "action": "permissions",
        "permission": "ALLOWFILEDELETE"})  # not ada's to give
    assert denied.status == 403
    assert "ALLOWFILEDELETE" in denied.text
    granted = admin.post(f"/admin/roles/{role.role_id}/permissions", {
        "csrf": token, "action": "permissions", "permission": "ALLOWVIEWALLRECORDS"})
    assert granted.status == 303
    newbie_id = portal.store.directory.find_users(UserQuery(username="newbie"))[0].user_id
    assert admin.post(f"/admin/users/{newbie_id}/roles", {
        "csrf": token, "action": "roles", "role": str(role.role_id)}).status == 303
    listing = admin.get("/admin/users").text
    assert "&lt;b&gt;New&lt;/b&gt; Bie" in listing
    newbie = client_of(portal)
    assert newbie.sign_in("newbie", "a fresh password").status == 303
    assert newbie.get("/recordings").status == 200
    assert newbie.get("/admin/users").status == 403
    ada_id = portal.store.directory.find_users(UserQuery(username="ada"))[0].user_id
    assert admin.post(f"/admin/users/{ada_id}/delete",
                      {"csrf": token, "action": "delete"}).status == 409
    assert admin.post(f"/admin/users/{newbie_id}/delete",
                      {"csrf": token, "action": "delete"}).status == 303
    assert newbie.get("/recordings").status == 303  # their session ended with them
    actions = [(e.action, e.target, e.detail) for e in audited(portal, username="ada", limit=5)]
    assert actions[:5] == [("user", "newbie", "deleted"), ("user", "newbie", "roles Listeners"),
                           ("role", "Listeners", "permissions ALLOWVIEWALLRECORDS"),
                           ("role", "Listeners", "added"), ("user", "newbie", "added")]


def test_the_system_page_shows_health_disk_database_and_boards(portal: Recorder) -> None:
    add_user(portal, "sys", ("ALLOWSYSTEMCONFIG",))
    client = client_of(portal)
    client.sign_in("sys")
    page = client.get("/system")
    assert page.status == 200
    assert "Healthy." in page.text
    assert "free of" in page.text
    assert "boards[0]" in page.text
    assert "synthetic" in page.text
    assert str(portal.config.storage.data_dir) not in page.text  # no paths to the browser


def test_a_group_administrator_narrows_roles_they_fully_hold(portal: Recorder) -> None:
    assert portal.store is not None
    directory = portal.store.directory
    add_user(portal, "gus", ("ALLOWGROUPADMIN", "ALLOWVIEWALLRECORDS"))
    viewer = add_user(portal, "vera", ("ALLOWVIEWALLRECORDS",))
    add_user(portal, "boss2", ("ALLOWVIEWALLRECORDS", "ALLOWFILEDELETE"))
    client = client_of(portal)
    client.sign_in("gus")
    token = client.csrf("/admin/groups")
    assert client.post("/admin/groups", {"csrf": token, "action": "add",
                                         "group_name": "Team <A>"}).status == 303
    group = directory.find_group(name="Team <A>")
    assert group is not None
    assert client.post(f"/admin/groups/{group.group_id}/members", {
        "csrf": token, "action": "members", "op": "add", "username": "vera",
        "device": "4001"}).status == 303
    group = directory.find_group(group_id=group.group_id)
    assert group is not None
    assert (group.user_ids, group.device_ids) == ((viewer,), ("4001",))
    vera_role = directory.find_role(name="role of vera")
    boss_role = directory.find_role(name="role of boss2")
    assert vera_role is not None
    assert boss_role is not None
    assert client.post(f"/admin/groups/{group.group_id}/roles", {
        "csrf": token, "action": "roles", "role": str(vera_role.role_id)}).status == 303
    # boss2's role holds ALLOWFILEDELETE, which gus does not: not his to narrow (or widen).
    refused = client.post(f"/admin/groups/{group.group_id}/roles", {
        "csrf": token, "action": "roles", "role": [str(vera_role.role_id),
                                                   str(boss_role.role_id)]})
    assert refused.status == 403
    role = directory.find_role(role_id=vera_role.role_id)
    assert role is not None
    assert role.group_ids == (group.group_id,)
    page = client.get("/admin/groups").text
    assert "Team &lt;A&gt;" in page
    assert "Agents: vera." in page
    add_recording(portal, agent_id=None, device="4001", meta={"ANI": "in-team"})
    add_recording(portal, agent_id=None, device="4002", meta={"ANI": "off-team"})
    vera = client_of(portal)
    vera.sign_in("vera")
    listing = vera.get("/recordings").text
    assert "in-team" in listing
    assert "off-team" not in listing
    assert audited(portal, username="gus", action="group", limit=1)[0].detail == \
        "roles role of vera"
