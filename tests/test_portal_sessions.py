"""The portal's sign-in and sessions over HTTP against a real in-process recorder: the session
cookie and its flags, lockout after failed sign-ins, CSRF tokens, a cookie signed with another
key, signing out, and sessions that end with their user, their password or a permission."""

from __future__ import annotations

import sqlite3
import time

from recorder.api.portal.sessions import SESSION_COOKIE, Signer
from recorder.app import Recorder
from recorder.store.directory import UserFields
from tests.helpers.portal import (
    add_recording,
    add_user,
    audited,
    cheap_hash,
    client_of,
    portal_fixture,
)

EVERYTHING = ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD", "ALLOWFILEDELETE")

portal = portal_fixture(max_failed_signins=3)


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
    actions = [(e.action, e.username) for e in audited(portal, limit=4)]
    assert actions == [("search", "sam"), ("signin", "sam"),
                       ("signin-failed", "nobody-at-all"), ("signin-failed", "sam")]
    failed = audited(portal, action="signin-failed", limit=2)
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
    assert audited(portal, username="lou", limit=1)[0].detail == "locked out"
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
    assert audited(portal, username="otto", limit=1)[0].action == "signout"


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


def test_a_permission_revoked_by_another_process_takes_effect_at_the_next_request(
        portal: Recorder) -> None:
    # What recorderctl, an integration's script or a sqlite3 shell changes: not through this
    # store, so only SQLite's own count of other connections' commits tells the portal.
    assert portal.portal is not None
    add_user(portal, "ext", EVERYTHING)
    client = client_of(portal)
    client.sign_in("ext")
    ident, _ = add_recording(portal, agent_id=None)
    assert client.get(f"/recordings/{ident}/download").status == 200
    # Pages read the user's access once while nothing changes.
    reads = portal.portal.ctx.access.reads
    for _ in range(5):
        assert client.get(f"/recordings/{ident}").status == 200
    assert portal.portal.ctx.access.reads == reads
    database = portal.config.storage.database_path
    with sqlite3.connect(database) as other:
        other.execute("DELETE FROM role_permissions WHERE permission = 'ALLOWEXPORTDOWNLOAD'"
                      " AND role_id = (SELECT role_id FROM roles WHERE role_name = ?)",
                      ("role of ext",))
    assert client.get(f"/recordings/{ident}/download").status == 403
    with sqlite3.connect(database) as other:
        other.execute("UPDATE users SET password_hash = 'scrypt$1024$8$1$AAAA$AAAA'"
                      " WHERE username = 'ext'")
    assert client.get(f"/recordings/{ident}").status == 303


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
    assert audited(portal, username="cap", action="password", limit=1)
