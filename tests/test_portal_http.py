"""The portal over HTTP against a real in-process recorder: signing in and its limits, the
session cookie and CSRF tokens, sessions that end with their user, hostile metadata rendered
escaped, Range requests for the player, download, delete, and the audit trail of it all."""

from __future__ import annotations

import csv
import http.client
import io
import json
import logging
import sqlite3
import time

import pytest

from recorder.api.portal.sessions import SESSION_COOKIE, Signer
from recorder.app import Recorder
from recorder.errors import StoreError
from recorder.store.audit import AuditEntry, AuditQuery
from recorder.store.directory import UserFields, UserQuery
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    PortalClient,
    add_recording,
    add_user,
    cheap_hash,
    portal_fixture,
    portal_port,
)

EVERYTHING = ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD", "ALLOWFILEDELETE")


portal = portal_fixture(max_failed_signins=3)


def client_of(portal: Recorder) -> PortalClient:
    return PortalClient(portal_port(portal))


def audit(portal: Recorder, **query: object) -> list[AuditEntry]:
    assert portal.store is not None
    assert portal.store.audit is not None
    return portal.store.audit.list_audit(AuditQuery(**query))  # type: ignore[arg-type]


def test_signing_in_sets_a_strict_httponly_cookie_and_a_wrong_password_does_not(
        portal: Recorder) -> None:
    add_user(portal, "sam", EVERYTHING)
    client = client_of(portal)
    wrong = client.sign_in("sam", "not the password")
    assert wrong.status == 401
    assert "Wrong user name or password" in wrong.text
    assert SESSION_COOKIE not in client.cookies
    assert client.sign_in("nobody-at-all", "whatever it is").status == 401
    right = client.sign_in("SAM")  # user names match without case, as IMPORTUSER's do
    assert right.status == 303
    cookie = next(c for c in right.headers.get_all("Set-Cookie") or []
                  if c.startswith(SESSION_COOKIE))
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under HTTPS it is Secure
    assert client.get("/recordings").status == 200
    actions = [(e.action, e.username) for e in audit(portal, limit=4)]
    assert actions == [("search", "sam"), ("signin", "sam"),
                       ("signin-failed", "nobody-at-all"), ("signin-failed", "sam")]
    failed = audit(portal, action="signin-failed", limit=2)
    assert [e.target for e in failed] == ["nobody-at-all", "sam"]
    assert failed[0].address == "127.0.0.1"


def test_a_name_is_locked_out_after_repeated_failures_even_with_the_right_password(
        portal: Recorder) -> None:
    add_user(portal, "lou", EVERYTHING)
    client = client_of(portal)
    for _ in range(3):  # portal.max_failed_signins
        assert client.sign_in("lou", "guess guess").status == 401
    locked = client.sign_in("lou")
    assert locked.status == 403
    assert "locked out" in locked.text
    assert SESSION_COOKIE not in client.cookies
    assert audit(portal, username="lou", limit=1)[0].detail == "locked out"
    # Another name is not held up by it.
    add_user(portal, "lia", EVERYTHING)
    assert client.sign_in("lia").status == 303


def test_a_form_without_its_csrf_token_is_refused(portal: Recorder) -> None:
    add_user(portal, "cora", EVERYTHING)
    client = client_of(portal)
    client.get("/signin")
    refused = client.post("/signin", {"username": "cora", "password": "correct horse battery"})
    assert refused.status == 403
    assert SESSION_COOKIE not in client.cookies
    assert client.sign_in("cora").status == 303
    ident, path = add_recording(portal, agent_id=None)
    assert client.post(f"/recordings/{ident}/delete", {}).status == 403
    assert client.post(f"/recordings/{ident}/delete", {"csrf": "forged"}).status == 403
    other = client_of(portal)
    other.sign_in("cora")
    # Another session's token is no good either.
    assert client.post(f"/recordings/{ident}/delete", {"csrf": other.csrf()}).status == 403
    assert client.post("/signout", {}).status == 403
    assert path.exists()
    assert client.get("/recordings").status == 200  # still signed in


def test_a_session_cookie_signed_with_another_key_is_refused(portal: Recorder) -> None:
    add_user(portal, "kim", EVERYTHING)
    client = client_of(portal)
    client.sign_in("kim")
    session_id = client.cookies[SESSION_COOKIE].rpartition(".")[0]
    forged = client_of(portal)
    forged.cookies[SESSION_COOKIE] = Signer(b"another appliance's key!" * 2).sign(
        "session", session_id)
    answer = forged.get("/recordings")
    assert answer.status == 303
    assert answer.location.startswith("/signin")
    assert forged.get("/recordings/1/audio").status == 403
    assert client.get("/recordings").status == 200


def test_signing_out_ends_the_session(portal: Recorder) -> None:
    add_user(portal, "otto", EVERYTHING)
    client = client_of(portal)
    client.sign_in("otto")
    cookie = client.cookies[SESSION_COOKIE]
    assert client.post("/signout", {"csrf": client.csrf()}).status == 303
    replay = client_of(portal)
    replay.cookies[SESSION_COOKIE] = cookie  # a copy kept from before the sign-out
    assert replay.get("/recordings").status == 303
    assert audit(portal, username="otto", limit=1)[0].action == "signout"


def test_a_deleted_users_live_session_ends_at_its_next_request(portal: Recorder) -> None:
    assert portal.store is not None
    user_id = add_user(portal, "dee", EVERYTHING)
    client = client_of(portal)
    client.sign_in("dee")
    ident, _ = add_recording(portal, agent_id=None)
    assert client.get(f"/recordings/{ident}").status == 200
    portal.store.directory.delete_user(user_id, now=time.time())
    assert client.get(f"/recordings/{ident}").status == 303
    assert client.get(f"/recordings/{ident}/audio").status == 403


def test_a_changed_password_ends_the_users_sessions(portal: Recorder) -> None:
    assert portal.store is not None
    user_id = add_user(portal, "pat", EVERYTHING)
    client = client_of(portal)
    client.sign_in("pat")
    portal.store.directory.modify_user(
        user_id, UserFields(password_hash=cheap_hash("a new password")), now=time.time())
    assert client.get("/recordings").status == 303


def test_a_revoked_permission_takes_effect_at_the_next_request(portal: Recorder) -> None:
    assert portal.store is not None
    add_user(portal, "rev", EVERYTHING)
    client = client_of(portal)
    client.sign_in("rev")
    role = portal.store.directory.find_role(name="role of rev")
    assert role is not None
    ident, _ = add_recording(portal, agent_id=None)
    assert client.get(f"/recordings/{ident}/download").status == 200
    portal.store.directory.set_role_permission(role.role_id, "ALLOWEXPORTDOWNLOAD", False)
    assert client.get(f"/recordings/{ident}/download").status == 403


HOSTILE = {"ANI": "<script>alert('ani')</script>",
           "USER1": '"><img src=x onerror=alert(1)>',
           "USER15": "{{ 7*7 }}</td><script>alert(15)</script>",
           "DNIS": "javascript:alert(1)", "GROUP": "&amp;<b>bold</b>"}


def test_what_callers_typed_is_rendered_escaped(portal: Recorder) -> None:
    agent = add_user(portal, "<b>eve</b>", EVERYTHING, first="<i>Eve</i>")
    ident, _ = add_recording(portal, agent_id=agent, meta=HOSTILE)
    client = client_of(portal)
    client.sign_in("<b>eve</b>")
    pages = [client.get(f"/recordings?group={HOSTILE['GROUP'].replace('&', '%26')}"),
             client.get(f"/recordings/{ident}"), client.get(f"/recordings/{ident}/delete")]
    for page in pages:
        assert page.status == 200
        assert "<script>" not in page.text
        assert "<img" not in page.text
        assert "<b>" not in page.text
        assert "<i>" not in page.text
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    shown = pages[1].text
    assert "&lt;script&gt;alert(&#39;ani&#39;)&lt;/script&gt;" in shown
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in shown
    assert "{{ 7*7 }}" in shown  # shown as typed, never evaluated as a template
    assert "&amp;amp;&lt;b&gt;bold&lt;/b&gt;" in shown
    assert f"Open {ident}" in pages[0].text  # the search found it by its hostile GROUP
    assert "&lt;i&gt;Eve&lt;/i&gt;" in pages[0].text


def test_the_player_gets_range_requests_and_playing_sets_listenedto(portal: Recorder) -> None:
    assert portal.store is not None
    add_user(portal, "ray", ("ALLOWVIEWALLRECORDS",))
    ident, path = add_recording(portal, agent_id=None, seconds=2.0)
    data = path.read_bytes()
    client = client_of(portal)
    client.sign_in("ray")
    page = client.get(f"/recordings/{ident}").text
    assert f'<audio controls preload="none" src="/recordings/{ident}/audio"' in page
    seek = client.get(f"/recordings/{ident}/audio", Range="bytes=1000-1999")
    assert seek.status == 206
    assert seek.body == data[1000:2000]
    assert seek.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert seek.headers["Content-Type"] == "audio/wav"
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert not row.listened_to  # a seek is not a new listening
    assert not [e for e in audit(portal, username="ray") if e.action == "play"]
    tail = client.get(f"/recordings/{ident}/audio", Range="bytes=-100")
    assert tail.status == 206
    assert tail.body == data[-100:]
    start = client.get(f"/recordings/{ident}/audio", Range="bytes=0-")
    assert start.status == 206
    assert start.body == data
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.listened_to
    assert [(e.action, e.target) for e in audit(portal, username="ray", limit=1)] == [
        ("play", str(ident))]
    assert "Download" not in page  # ALLOWEXPORTDOWNLOAD is not ray's
    assert "Delete" not in page


def test_download_is_the_stored_file_as_an_attachment(portal: Recorder) -> None:
    add_user(portal, "dot", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, path = add_recording(portal, agent_id=None)
    client = client_of(portal)
    client.sign_in("dot")
    answer = client.get(f"/recordings/{ident}/download")
    assert answer.status == 200
    assert answer.body == path.read_bytes()
    assert answer.headers["Content-Disposition"] == \
        f'attachment; filename="recording-{ident}-{path.name}"'
    assert audit(portal, username="dot", limit=1)[0].action == "download"


def _lock(portal: Recorder, ident: int) -> None:
    # No request sets LOCKED yet; the test sets it as an integration would.
    conn = sqlite3.connect(portal.config.storage.database_path)
    with conn:
        conn.execute("UPDATE recordings SET locked = 1 WHERE ident = ?", (ident,))
    conn.close()


def test_delete_asks_first_and_refuses_locked_and_held_recordings(portal: Recorder) -> None:
    assert portal.store is not None
    add_user(portal, "del", ("ALLOWVIEWALLRECORDS", "ALLOWFILEDELETE"))
    client = client_of(portal)
    client.sign_in("del")
    locked, locked_path = add_recording(portal, agent_id=None)
    _lock(portal, locked)
    held, held_path = add_recording(portal, agent_id=None, keep_days=30)
    for ident, reason in ((locked, "it is locked"), (held, "its KEEPDAYS (30) holds it")):
        assert reason in client.get(f"/recordings/{ident}/delete").text
        refused = client.post(f"/recordings/{ident}/delete", {"csrf": client.csrf()})
        assert refused.status == 409
        assert reason in refused.text
    assert locked_path.exists()
    assert held_path.exists()
    ident, path = add_recording(portal, agent_id=None)
    confirm = client.get(f"/recordings/{ident}/delete")
    assert "will be deleted for good" in confirm.text
    assert path.exists()  # asking is not deleting
    done = client.post(f"/recordings/{ident}/delete", {"csrf": client.csrf()})
    assert done.status == 303
    assert not path.exists()
    assert portal.store.recordings.get_recording(ident) is None
    assert client.get(f"/recordings/{ident}").status == 404
    entry = audit(portal, username="del", limit=1)[0]
    assert (entry.action, entry.target, entry.detail) == ("delete", str(ident), str(path))


def test_searching_is_audited_with_its_filters(portal: Recorder) -> None:
    add_user(portal, "sue", ("ALLOWVIEWALLRECORDS",))
    add_recording(portal, agent_id=None, meta={"ANI": "6145551212", "USER7": "acct-7"})
    client = client_of(portal)
    client.sign_in("sue")
    found = client.get("/recordings?ani=6145551212&user7=acct-7&order=oldest")
    assert found.status == 200
    assert "6145551212" in found.text
    assert "No recordings match" in client.get("/recordings?ani=0000").text
    bad = client.get("/recordings?from=yesterday")
    assert "from: not a date and time" in bad.text
    assert "agent: no user named nobody-here" in client.get("/recordings?agent=nobody-here").text
    assert "No recordings match" in client.get("/recordings?agent=SUE&ani=6145551212").text
    entries = [e for e in audit(portal, username="sue") if e.action == "search"]
    assert entries[-1].detail == "ani=6145551212&user7=acct-7&order=oldest"


def test_groups_narrow_what_view_all_shows(portal: Recorder) -> None:
    assert portal.store is not None
    directory = portal.store.directory
    boss = add_user(portal, "gil", ("ALLOWVIEWALLRECORDS", "VIEWOWNRECORDS"))
    member = add_user(portal, "gwen", ())
    group, _ = directory.add_group("Sales & <Marketing>")
    directory.set_group_member(group.group_id, member, "2001", True)
    role = directory.find_role(name="role of gil")
    assert role is not None
    directory.set_role_group(role.role_id, group.group_id, True)
    on_device, _ = add_recording(portal, agent_id=None, device="2001", meta={"ANI": "g-dev"})
    by_agent, _ = add_recording(portal, agent_id=member, device="3001", meta={"ANI": "g-agt"})
    own, _ = add_recording(portal, agent_id=boss, device="3002", meta={"ANI": "g-own"})
    outside, _ = add_recording(portal, agent_id=None, device="3003", meta={"ANI": "g-out"})
    client = client_of(portal)
    client.sign_in("gil")
    listing = client.get("/recordings").text
    for ani in ("g-dev", "g-agt", "g-own"):
        assert ani in listing
    assert "g-out" not in listing
    for ident in (on_device, by_agent, own):
        assert client.get(f"/recordings/{ident}").status == 200
    assert client.get(f"/recordings/{outside}").status == 404
    assert client.get(f"/recordings/{outside}/audio").status == 404
    # Taking the group from the role widens the view again at the next request.
    directory.set_role_group(role.role_id, group.group_id, False)
    assert client.get(f"/recordings/{outside}").status == 200


def test_changing_ones_password_keeps_this_session_and_ends_the_others(
        portal: Recorder) -> None:
    add_user(portal, "cap", ("ALLOWCHANGEPASSWORD", "ALLOWVIEWALLRECORDS"))
    client, other = client_of(portal), client_of(portal)
    client.sign_in("cap")
    other.sign_in("cap")
    token = client.csrf("/password")
    wrong = client.post("/password", {"csrf": token, "current": "not it at all",
                                      "new": "a brand new secret", "again": "a brand new secret"})
    assert wrong.status == 403
    differ = client.post("/password", {"csrf": token, "current": "correct horse battery",
                                       "new": "a brand new secret", "again": "another one"})
    assert differ.status == 400
    done = client.post("/password", {"csrf": token, "current": "correct horse battery",
                                     "new": "a brand new secret", "again": "a brand new secret"})
    assert done.status == 200
    assert "has been changed" in done.text
    assert client.get("/recordings").status == 200
    assert other.get("/recordings").status == 303
    assert client_of(portal).sign_in("cap", "a brand new secret").status == 303
    assert audit(portal, username="cap", action="password", limit=1)


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


def test_a_kept_alive_connection_plays_and_downloads_in_turn_without_an_error(
        portal: Recorder, caplog: pytest.LogCaptureFixture) -> None:
    add_user(portal, "kay", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, path = add_recording(portal, agent_id=None)
    client = client_of(portal)
    client.sign_in("kay")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    conn = http.client.HTTPConnection("127.0.0.1", portal_port(portal), timeout=10)
    try:
        for target, headers in ((f"/recordings/{ident}/audio", {"Range": "bytes=0-"}),
                                (f"/recordings/{ident}/audio", {"Range": "bytes=10-19"}),
                                (f"/recordings/{ident}/download", {}),
                                (f"/recordings/{ident}", {})):
            conn.request("GET", target, headers={"Cookie": cookie, **headers})
            response = conn.getresponse()
            body = response.read()
            assert response.status in (200, 206), target
            if "Range" in headers and headers["Range"] == "bytes=10-19":
                assert body == path.read_bytes()[10:20]
    finally:
        conn.close()
    assert "Unhandled exception" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_vox_recording_plays_from_a_wav_rendition_with_range(portal: Recorder) -> None:
    add_user(portal, "vic", ("ALLOWVIEWALLRECORDS",))
    ident, path = add_recording(portal, agent_id=None, seconds=2.0, media_format="vox")
    assert path.suffix == ".vox"
    client = client_of(portal)
    client.sign_in("vic")
    assert f'src="/recordings/{ident}/audio"' in client.get(f"/recordings/{ident}").text
    whole = client.get(f"/recordings/{ident}/audio")
    assert whole.status == 200
    assert whole.headers["Content-Type"] == "audio/wav"
    assert whole.body[:4] == b"RIFF"
    assert len(whole.body) == 44 + 2 * 8000 * 2  # 2 s of 16-bit PCM at 8 kHz
    seek = client.get(f"/recordings/{ident}/audio", Range="bytes=8044-8143")
    assert seek.status == 206
    assert seek.body == whole.body[8044:8144]
    renditions = list((portal.config.storage.data_dir / "tmp" / "portal").glob("play-*"))
    assert [p.name.split("-")[1] for p in renditions].count(str(ident)) == 1


def test_a_download_in_another_format_is_made_for_it_and_removed(portal: Recorder) -> None:
    add_user(portal, "fay", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"))
    ident, _ = add_recording(portal, agent_id=None, seconds=1.0)
    client = client_of(portal)
    client.sign_in("fay")
    assert '<option value="mp3">' in client.get(f"/recordings/{ident}").text
    mp3 = client.get(f"/recordings/{ident}/download?format=mp3")
    assert mp3.status == 200
    assert mp3.headers["Content-Type"] == "audio/mpeg"
    assert mp3.body[:3] == b"ID3" or mp3.body[0] == 0xFF
    assert mp3.headers["Content-Disposition"].endswith('.mp3"')
    vox = client.get(f"/recordings/{ident}/download?format=vox")
    assert vox.status == 200
    assert len(vox.body) == 4000  # 4 bits a sample
    assert client.get(f"/recordings/{ident}/download?format=cav").status == 400
    assert client.get(f"/recordings/{ident}/download?format=../../etc").status == 400
    left = list((portal.config.storage.data_dir / "tmp" / "portal").glob("download-*"))
    assert left == []
    assert audit(portal, username="fay", limit=1)[0].detail.startswith("vox ")


def test_bookmarks_are_listed_in_time_order_escaped_and_go_with_their_recording(
        portal: Recorder) -> None:
    assert portal.store is not None
    assert portal.store.bookmarks is not None
    add_user(portal, "bo", ("ALLOWVIEWALLRECORDS", "ALLOWCOMMENT", "ALLOWFILEDELETE"))
    add_user(portal, "reader", ("ALLOWVIEWALLRECORDS",))
    ident, _ = add_recording(portal, agent_id=None, seconds=90)
    client = client_of(portal)
    client.sign_in("bo")
    token = client.csrf(f"/recordings/{ident}")
    for offset, comment in (("1:05", "<script>alert('mark')</script>"), ("7", "greeting")):
        done = client.post(f"/recordings/{ident}/bookmarks",
                           {"csrf": token, "offset": offset, "comment": comment})
        assert done.status == 303
        assert done.location == f"/recordings/{ident}#bookmarks"
    assert client.post(f"/recordings/{ident}/bookmarks",
                       {"csrf": token, "offset": "5:00", "comment": "past the end"}
                       ).status == 400
    assert client.post(f"/recordings/{ident}/bookmarks",
                       {"csrf": token, "offset": "0:10", "comment": ""}).status == 400
    reader = client_of(portal)
    reader.sign_in("reader")
    page = reader.get(f"/recordings/{ident}").text
    assert page.index("greeting") < page.index("&lt;script&gt;alert(&#39;mark&#39;)")
    assert "<script>alert" not in page
    assert 'data-offset="65.0">0:01:05</a>' in page
    assert 'action="/recordings/' not in page.split("bookmarks-title", 1)[1].split(
        "</section>", 1)[0]  # no ALLOWCOMMENT: no form to add one
    assert audit(portal, username="bo", action="bookmark", limit=1)[0].target == str(ident)
    assert client.post(f"/recordings/{ident}/delete", {"csrf": token}).status == 303
    assert portal.store.bookmarks.list_bookmarks(ident) == []


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
    actions = [(e.action, e.target, e.detail) for e in audit(portal, username="ada", limit=5)]
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
    assert audit(portal, username="gus", action="group", limit=1)[0].detail == \
        "roles role of vera"


def test_a_database_failure_is_a_503_page_not_a_traceback(
        portal: Recorder, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    assert portal.store is not None
    add_user(portal, "dora", ("ALLOWVIEWALLRECORDS",))
    client = client_of(portal)
    client.sign_in("dora")

    def fails(query: object) -> None:
        raise StoreError("list recordings: disk I/O error")

    monkeypatch.setattr(portal.store.recordings, "list_recordings", fails)
    answer = client.get("/recordings")
    assert answer.status == 503
    assert "database cannot be read" in answer.text
    assert "Traceback" not in caplog.text
    assert "the database failed: list recordings: disk I/O error" in caplog.text
