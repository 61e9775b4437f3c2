"""HTTP Basic checks the WebAPI remembers (api.basic_auth_cache_seconds, docs/security.md):
against a real recorderd whose cache keeps a check for ten minutes, a password changed by
another process, a user deleted, or a role that loses ALLOWAPIAUTH is refused at the very next
request; wrong passwords still lock a user name out, whatever was remembered. The cache itself
with a clock of the test's. (How much it saves: benchmarks/webauth.py, BENCHMARKS.md.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recorder.api.transport.basiccache import CheckedPasswords
from recorder.store.directory import UserFields
from recorder.store.sqlite import SqliteStore
from tests.helpers.access import add_api_user, basic, web
from tests.helpers.ctl import recorderctl
from tests.helpers.portal import PASSWORD, cheap_hash
from tests.helpers.recorders import RecorderProcess, Running, write_toml

PROCESS_FIXTURES = {"cached"}  # its recorderd serves the module's tests (conftest.py)
pytestmark = pytest.mark.xdist_group("basic-cache")

STATUS = {"type": "SYSTEMSTATUS", "requestid": 1}


@dataclass
class Cached:
    running: Running
    config: Path
    database: Path

    def status(self, username: str, password: str = PASSWORD) -> int:
        return web(self.running.web_port, STATUS, headers=basic(username, password)).status

    def user_id(self, username: str) -> int:
        store = SqliteStore(self.database)
        store.open()
        try:
            (user,) = [u for u in store.list_users() if u.username == username]
            return user.user_id
        finally:
            store.close()


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cached]:
    tmp = tmp_path_factory.mktemp("basic-cache")
    data = tmp / "data"
    config = write_toml(tmp / "r.toml", f"""
[storage]
data_dir = "{data}"
[api]
socket_port = 0
web_port = 0
require_auth = true
basic_auth_cache_seconds = 600
max_failed_auth = 3
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")
    proc = RecorderProcess(["--config", str(config)])
    try:
        running = proc.wait_ready()
        yield Cached(running, config, data / "recorder.sqlite3")
    finally:
        code = proc.stop()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


def test_a_password_changed_by_another_process_is_refused_at_the_next_request(
        cached: Cached) -> None:
    add_api_user(cached.database, "poller", ("ALLOWAPIAUTH",))
    assert cached.status("poller") == 200
    assert cached.status("poller") == 200  # remembered now
    done = recorderctl("user", "passwd", "poller", "--password-stdin", "--config",
                       cached.config, stdin="another long password\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert cached.status("poller") == 401
    assert cached.status("poller", "another long password") == 200


def test_a_deleted_user_is_refused_at_the_next_request(cached: Cached) -> None:
    add_api_user(cached.database, "leaver", ("ALLOWAPIAUTH",))
    assert cached.status("leaver") == 200
    assert cached.status("leaver") == 200
    store = SqliteStore(cached.database)
    store.open()
    try:
        assert store.delete_user(cached.user_id("leaver"), now=time.time())
    finally:
        store.close()
    assert cached.status("leaver") == 401
    # Back under the same name with the same password, but another user (a new hash): the
    # new user's own roles decide, here none.
    store.open()
    try:
        store.add_user(UserFields(username="leaver", first_name="L", last_name="Again",
                                  password_hash=cheap_hash(PASSWORD)), now=time.time())
    finally:
        store.close()
    assert cached.status("leaver") == 403  # checked in full, then lacks ALLOWAPIAUTH


def test_a_role_that_loses_allowapiauth_is_refused_at_the_next_request(
        cached: Cached) -> None:
    add_api_user(cached.database, "demoted", ("ALLOWAPIAUTH",))
    assert cached.status("demoted") == 200
    assert cached.status("demoted") == 200
    store = SqliteStore(cached.database)
    store.open()
    try:
        role = store.find_role(name="role of demoted")
        assert role is not None
        assert store.set_role_permission(role.role_id, "ALLOWAPIAUTH", False)
    finally:
        store.close()
    answer = web(cached.running.web_port, STATUS, headers=basic("demoted"))
    assert answer.status == 403
    assert "ALLOWAPIAUTH" in answer.message


def test_wrong_passwords_lock_out_a_user_whose_right_one_was_remembered(
        cached: Cached) -> None:
    add_api_user(cached.database, "targeted", ("ALLOWAPIAUTH",))
    assert cached.status("targeted") == 200
    for _ in range(3):  # max_failed_auth: each checked in full, none remembered
        assert cached.status("targeted", "a wrong guess") == 401
    answer = web(cached.running.web_port, STATUS, headers=basic("targeted"))
    assert answer.status == 401
    assert "too many wrong passwords" in answer.message


# --- the cache alone, on the test's clock --------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_check_is_remembered_for_its_user_and_hash_until_the_ttl() -> None:
    clock = Clock()
    checked = CheckedPasswords(60.0, clock=clock)
    checked.remember("alice", "secret one", 7, "scrypt$hash-a")
    assert checked.holds("alice", "secret one", 7, "scrypt$hash-a")
    assert not checked.holds("alice", "secret two", 7, "scrypt$hash-a")  # another password
    assert not checked.holds("alice", "secret one", 7, "scrypt$hash-b")  # password changed
    assert not checked.holds("alice", "secret one", 8, "scrypt$hash-a")  # another user
    assert not checked.holds("Alice", "secret one", 7, "scrypt$hash-a")  # another name
    # The name and the password are not one string run together.
    assert not checked.holds("alicesecret", " one", 7, "scrypt$hash-a")
    clock.now += 59.9
    assert checked.holds("alice", "secret one", 7, "scrypt$hash-a")
    clock.now += 0.1
    assert not checked.holds("alice", "secret one", 7, "scrypt$hash-a")
    assert len(checked) == 0  # an expired check is dropped when found


def test_a_ttl_of_zero_remembers_nothing_and_the_oldest_check_goes_first() -> None:
    off = CheckedPasswords(0.0)
    off.remember("alice", "secret one", 7, "h")
    assert not off.holds("alice", "secret one", 7, "h")
    assert len(off) == 0
    small = CheckedPasswords(60.0, capacity=2)
    for user_id, name in enumerate(("a", "b", "c")):
        small.remember(name, "pw", user_id, "h")
    assert len(small) == 2
    assert not small.holds("a", "pw", 0, "h")
    assert small.holds("b", "pw", 1, "h")
    assert small.holds("c", "pw", 2, "h")


def test_nothing_of_the_password_is_kept() -> None:
    checked = CheckedPasswords(60.0)
    checked.remember("alice", "a very secret password", 7, "h")
    kept = repr(vars(checked)).encode()
    assert b"a very secret password" not in kept
    assert b"alice" not in kept
