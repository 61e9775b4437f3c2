"""The portal's pure parts, with tables: the permission check (recorder.rules.access), the
sign-in limits, sessions and their expiry, the signing key, the search form, the [portal]
settings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from recorder.api.portal.forms import parse_duration, read_search
from recorder.api.portal.render import duration
from recorder.api.portal.routes import ROUTES
from recorder.api.portal.sessions import Sessions, Signer, load_key
from recorder.api.portal.throttle import SignInThrottle
from recorder.api.protocol.permissions import PERMISSIONS
from recorder.config.loader import config_from_dict
from recorder.errors import ConfigError, StartupError
from recorder.rules.access import (
    VIEW,
    Principal,
    Scope,
    Within,
    agent_filter,
    bookmark_refused,
    deletion_refused,
    may_see,
    needs,
    permits,
    record_scope,
    ungrantable,
    view_groups,
)
from recorder.store.records import STATUS_COMPLETE, STATUS_RECORDING, RecordingRow

DOWNLOAD = needs(VIEW, "ALLOWEXPORTDOWNLOAD")


@pytest.mark.parametrize(("granted", "requirement", "allowed"), [
    (set(), (), True),
    (set(), DOWNLOAD, False),
    ({"VIEWOWNRECORDS"}, DOWNLOAD, False),
    ({"ALLOWEXPORTDOWNLOAD"}, DOWNLOAD, False),
    ({"VIEWOWNRECORDS", "ALLOWEXPORTDOWNLOAD"}, DOWNLOAD, True),
    ({"ALLOWVIEWALLRECORDS", "ALLOWEXPORTDOWNLOAD"}, DOWNLOAD, True),
    ({"ALLOWVIEWALLRECORDS"}, needs(VIEW), True),
    ({"ALLOWFILEDELETE"}, needs(VIEW), False),
])
def test_a_requirement_needs_one_permission_of_every_clause(granted, requirement, allowed):
    assert permits(granted, requirement) is allowed


def test_every_route_names_the_manuals_permissions():
    for route in ROUTES:
        for clause in route.requires:
            assert clause, route.path
            assert clause <= set(PERMISSIONS), route.path
    assert {(r.method, r.path) for r in ROUTES if r.public} == {
        ("GET", "/signin"), ("POST", "/signin"), ("GET", "/static/{name}")}


def _row(**fields) -> RecordingRow:
    base = dict(ident=1, device_id="1001", call_instance="", channel=0, filename="/r/a.wav",
                media_format="wav", sample_rate=8000, recording_time=1000, start_time=1000.0,
                stop_time=1010.0, duration=10.0, audio_size=100, audio_hash="", status=
                STATUS_COMPLETE, stop_reason="callstop", lost_samples=0, core_ident=1, meta={},
                priority=None, keep_days=None, archive_action=None, cti_initiated="",
                agent_initiated="", agent_id=7)
    base.update(fields)
    return RecordingRow(**base)


@pytest.mark.parametrize(("granted", "user", "agent", "scope", "sees"), [
    (set(), 7, 7, Scope.NONE, False),
    ({"VIEWOWNRECORDS"}, 7, 7, Scope.OWN, True),
    ({"VIEWOWNRECORDS"}, 7, 8, Scope.OWN, False),
    ({"VIEWOWNRECORDS"}, 7, None, Scope.OWN, False),
    ({"ALLOWVIEWALLRECORDS"}, 7, 8, Scope.ALL, True),
    ({"ALLOWVIEWALLRECORDS", "VIEWOWNRECORDS"}, 7, None, Scope.ALL, True),
])
def test_who_sees_which_recording(granted, user, agent, scope, sees):
    assert record_scope(granted) is scope
    assert may_see(granted, user, _row(agent_id=agent)) is sees


@pytest.mark.parametrize(("granted", "wanted", "expected"), [
    ({"ALLOWVIEWALLRECORDS"}, None, (True, None)),
    ({"ALLOWVIEWALLRECORDS"}, 9, (True, 9)),
    ({"VIEWOWNRECORDS"}, None, (True, 7)),
    ({"VIEWOWNRECORDS"}, 7, (True, 7)),
    ({"VIEWOWNRECORDS"}, 9, (False, None)),
    (set(), None, (False, None)),
])
def test_a_search_is_narrowed_to_what_the_user_sees(granted, wanted, expected):
    assert agent_filter(granted, 7, wanted) == expected


@pytest.mark.parametrize(("fields", "now", "refused"), [
    ({}, 2000.0, None),
    ({"status": STATUS_RECORDING}, 2000.0, "it is still recording"),
    ({"locked": True}, 2000.0, "it is locked"),
    ({"keep_days": 1}, 1000.0 + 86399, "its KEEPDAYS (1) holds it"),
    ({"keep_days": 1}, 1000.0 + 86400, None),
    ({"keep_days": 1}, 1000.0 + 30 * 86400, None),  # long after its KEEPDAYS
    # KEEPDAYS 0 and -1 hold nothing, even with the clock set back before the call's start.
    ({"keep_days": 0}, 2000.0, None),
    ({"keep_days": 0}, 500.0, None),
    ({"keep_days": -1}, 1000.0 - 2 * 86400, None),
])
def test_what_may_not_be_deleted(fields, now, refused):
    assert deletion_refused(_row(**fields), now) == refused


@pytest.mark.parametrize(("user", "granted", "author", "refused"), [
    (7, {"ALLOWCOMMENT"}, 7, None),
    (7, {"ALLOWCOMMENT", "ALLOWAGENTADMIN"}, 8, "only its author changes a bookmark"),
    (7, {"ALLOWVIEWALLRECORDS"}, 7, "bookmarks need ALLOWCOMMENT"),  # since revoked
])
def test_who_changes_a_bookmark(user, granted, author, refused):
    assert bookmark_refused(user, granted, author) == refused


def test_a_recording_read_back_from_the_database_is_not_deleted_while_it_records():
    status = STATUS_RECORDING.encode().decode()  # an equal string, as SQLite returns it
    assert deletion_refused(_row(status=status), 2000.0) == "it is still recording"


def test_a_user_sees_their_own_calls_whatever_their_id():
    # The ids as the session and the database give them: equal numbers, not the same object.
    for user_id in (7, 300, 70_000, 2**31 - 1):
        row = _row(agent_id=int(str(user_id)))
        assert may_see({"VIEWOWNRECORDS"}, user_id, row)
        assert Principal(user_id, "ann", frozenset({"VIEWOWNRECORDS"})).may_see(row)


def test_a_name_is_locked_out_after_failures_in_a_row_and_a_success_resets_it():
    throttle = SignInThrottle(per_minute=100, max_failures=3, lockout_seconds=60)
    assert not throttle.failed("Ann", 0)
    assert not throttle.failed("ann", 1)
    throttle.succeeded("ANN")
    assert not throttle.failed("ann", 2)
    assert not throttle.failed("ann", 3)
    assert throttle.failed("ann", 4)  # the third in a row
    assert throttle.locked("Ann", 5) == 59
    assert throttle.locked("ann", 64) == 0
    assert throttle.locked("bob", 5) == 0


def test_sign_in_attempts_are_limited_per_address_and_minute():
    throttle = SignInThrottle(per_minute=2, max_failures=5, lockout_seconds=60)
    assert throttle.admit("10.0.0.1", 0)
    assert throttle.admit("10.0.0.1", 1)
    assert not throttle.admit("10.0.0.1", 2)
    assert throttle.admit("10.0.0.2", 2)
    assert throttle.admit("10.0.0.1", 60.5)


def test_sessions_end_when_idle_or_old_and_refuse_another_keys_cookie():
    sessions = Sessions(Signer(b"k" * 32), idle_seconds=100, max_seconds=250)
    session, cookie = sessions.start(7, "ann", "mark", now=0)
    assert sessions.find(cookie, 99) is session
    assert sessions.find(cookie, 198) is session  # each use moves the idle clock
    assert sessions.find(cookie, 251) is None  # but not the absolute one
    _, cookie = sessions.start(7, "ann", "mark", now=0)
    assert sessions.find(cookie, 101) is None
    _, cookie = sessions.start(7, "ann", "mark", now=0)
    other = Sessions(Signer(b"x" * 32), 100, 250)
    assert other.find(cookie, 1) is None
    value, _, mac = cookie.rpartition(".")
    assert sessions.find(f"{value}x.{mac}", 1) is None
    assert sessions.find(cookie, 1) is not None
    sessions.end_user(7)
    assert sessions.find(cookie, 2) is None


def test_the_sign_in_forms_token_is_bound_to_its_cookie():
    sessions = Sessions(Signer(b"k" * 32), 100, 250)
    cookie, token = sessions.presession()
    _other_cookie, other_token = sessions.presession()
    assert sessions.signin_token_ok(cookie, token)
    assert not sessions.signin_token_ok(cookie, other_token)
    assert not sessions.signin_token_ok("", token)


def test_the_signing_key_is_made_private_once_and_refused_when_others_may_read_it(tmp_path):
    key = load_key(tmp_path)
    path = tmp_path / "portal-key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(tmp_path) == key
    assert len(key) == 32
    os.chmod(path, 0o644)
    with pytest.raises(StartupError, match="chmod 600"):
        load_key(tmp_path)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("1:30", 90), ("1:02:03", 3723)])
def test_durations_are_typed_as_people_write_them(text, seconds):
    assert parse_duration(text) == seconds
    assert duration(seconds) == {90: "0:01:30", 3723: "1:02:03"}[seconds]


def test_the_search_form_becomes_the_stores_query_and_names_its_mistakes():
    form = read_search({"ani": " 555 ", "user3": "acct", "from": "2026-01-01T10:00",
                        "tz": "-60", "min_duration": "1:00", "order": "oldest", "page": "3"})
    q = form.query
    assert form.problems == []
    assert q.equals == {"ANI": "555", "USER3": "acct"}
    assert q.start == 1767258000  # 10:00 at UTC+1 is 09:00 UTC
    assert (q.min_duration, q.oldest_first, q.offset, q.limit) == (60, True, 100, 51)
    bad = read_search({"from": "yesterday", "page": "0", "agent": "x", "max_duration": "z"})
    assert [p.split(":")[0] for p in bad.problems] == ["from", "max_duration", "page"]
    assert (bad.agent_id, bad.agent_name) == (None, "x")  # a user name, looked up by the page


def test_portal_settings_are_checked_each_naming_its_key(tmp_path: Path):
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"portal": {"tls_cert": "c.pem", "session_idle_seconds": 7200,
                                     "session_max_seconds": 3600, "prot": 1}},
                         base_dir=tmp_path)
    problems = "\n".join(caught.value.problems)
    assert "portal.prot: unknown key (did you mean 'port'?)" in problems
    assert "portal.tls_key: required with portal.tls_cert" in problems
    assert "portal.session_idle_seconds: 7200.0 is longer than portal.session_max_seconds" \
        in problems
    assert config_from_dict({}).portal.enabled is False


@pytest.mark.parametrize(("roles", "groups"), [
    ([], frozenset()),
    ([({"ALLOWVIEWALLRECORDS"}, ())], None),
    ([({"ALLOWVIEWALLRECORDS"}, (1, 2))], {1, 2}),
    ([({"ALLOWVIEWALLRECORDS"}, (1,)), ({"ALLOWVIEWALLRECORDS"}, (3,))], {1, 3}),
    ([({"ALLOWVIEWALLRECORDS"}, (1,)), ({"ALLOWVIEWALLRECORDS"}, ())], None),
    # A role's groups narrow only what that role grants.
    ([({"ALLOWVIEWALLRECORDS"}, (1,)), ({"ALLOWCOMMENT"}, (2,))], {1}),
])
def test_groups_narrow_view_all_role_by_role(roles, groups):
    assert view_groups(roles) == groups


@pytest.mark.parametrize(("granted", "device", "agent", "sees"), [
    ({"ALLOWVIEWALLRECORDS"}, "2001", None, True),
    ({"ALLOWVIEWALLRECORDS"}, "3001", 5, True),  # an agent of the group, on any device
    ({"ALLOWVIEWALLRECORDS"}, "3001", 6, False),
    ({"ALLOWVIEWALLRECORDS"}, "3001", 7, False),
    ({"ALLOWVIEWALLRECORDS", "VIEWOWNRECORDS"}, "3001", 7, True),  # their own call
])
def test_a_narrowed_view_all_sees_its_groups_devices_and_agents(granted, device, agent, sees):
    within = Within(frozenset({"2001"}), frozenset({5}))
    assert may_see(granted, 7, _row(device_id=device, agent_id=agent), within) is sees
    principal = Principal(7, "ann", frozenset(granted), within)
    expected = (5, 7) if "VIEWOWNRECORDS" in granted else (5,)
    assert principal.visible() == (("2001",), expected)
    assert Principal(7, "ann", frozenset(granted)).visible() == (None, ())


@pytest.mark.parametrize(("granted", "wanted", "beyond"), [
    ({"ALLOWAGENTADMIN"}, set(), set()),
    ({"ALLOWAGENTADMIN", "ALLOWCOMMENT"}, {"ALLOWCOMMENT"}, set()),
    ({"ALLOWAGENTADMIN"}, {"ALLOWCOMMENT", "ALLOWFILEDELETE"}, {"ALLOWCOMMENT", "ALLOWFILEDELETE"}),
])
def test_nobody_hands_out_more_than_they_hold(granted, wanted, beyond):
    assert ungrantable(granted, wanted) == beyond
