"""Who may reach the APIs (docs/security.md), against a real recorderd: api.require_auth on the
WebAPI (HTTP Basic, bearer tokens made and revoked by recorderctl, each permission of the
table in recorder.rules.access), the socket API over TLS with client certificates (a good
one, one of another CA, none), administration over the plain socket, and the audit trail of
media and changes. Clients see the manual's RESULT with code 44 and HTTP 401 or 403."""

from __future__ import annotations

import re
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recorder.rules.access import REQUEST_PERMISSIONS
from tests.helpers.access import (
    Authority,
    add_api_user,
    authority,
    basic,
    bearer,
    other_address,
    tls_request,
    web,
)
from tests.helpers.api import ApiConnection, expect
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import record
from tests.helpers.portal import PASSWORD
from tests.helpers.recorders import RecorderProcess, Running, write_toml
from tests.helpers.waiting import wait_for

PROCESS_FIXTURES = {"secured"}  # its recorderd serves the module's tests (conftest.py)
pytestmark = pytest.mark.xdist_group("api-access")

SOCKET_TLS_PORT = re.compile(r"socket API over TLS listening on [^:]+:(\d+)")
HTTPS_PORT = re.compile(r"WebAPI listening on https://[^:]+:(\d+)/")
ADMIN = ("ALLOWAPIAUTH", "ALLOWAGENTADMIN", "ALLOWGROUPADMIN", "ALLOWSYSTEMCONFIG",
         "ALLOWARCHIVEADMIN")


@dataclass
class Secured:
    """recorderd with api.require_auth, HTTPS and the socket API over mutual TLS."""

    running: Running
    config: Path
    database: Path
    ca: Authority
    tls_port: int
    https_port: int
    record_id: str

    @property
    def web_port(self) -> int:
        return self.running.web_port

    def audit(self, action: str) -> list[sqlite3.Row]:
        conn = sqlite3.connect(self.database)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute("SELECT * FROM audit WHERE action = ? ORDER BY entry_id",
                                (action,)).fetchall()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("secured")
    ca = authority(tmp, "good")
    server_cert, server_key = ca.issue("127.0.0.1", server=True)
    data = tmp / "data"
    config = write_toml(tmp / "r.toml", f"""
[storage]
data_dir = "{data}"
[api]
socket_port = 0
web_port = 0
tls_port = 0
tls_cert = "{server_cert}"
tls_key = "{server_key}"
require_auth = true
socket_tls = true
socket_tls_port = 0
socket_tls_client_ca = "{ca.cert_path}"
socket_tls_users = ["cti-host-7=ctiadmin"]
max_failed_auth = 3
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")
    proc = RecorderProcess(["--config", str(config)])
    try:
        running = proc.wait_ready()
        tls = SOCKET_TLS_PORT.search(proc.log)
        https = HTTPS_PORT.search(proc.log)
        assert tls, proc.log
        assert https, proc.log
        database = data / "recorder.sqlite3"
        for name, permissions in {
                "apiuser": ("ALLOWAPIAUTH",), "noauth": ("ALLOWEXPORTDOWNLOAD",),
                "exporter": ("ALLOWAPIAUTH", "ALLOWEXPORTDOWNLOAD"),
                "mailer": ("ALLOWAPIAUTH", "ALLOWEXPORTEMAIL"), "admin": ADMIN,
                "ctiadmin": ("ALLOWAPIAUTH", "ALLOWAGENTADMIN"),
                "weak": ("ALLOWAPIAUTH",), "guessed": ("ALLOWAPIAUTH",)}.items():
            add_api_user(database, name, permissions)
        conn = running.connect()
        try:
            row = record(conn, "1001", 0.5)  # call control: open to the allowed CTI
        finally:
            conn.close()
        yield Secured(running, config, database, ca, int(tls.group(1)), int(https.group(1)),
                      row["RECORDID"])
    finally:
        code = proc.stop()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


# --- the WebAPI under api.require_auth ----------------------------------------------------------


def test_a_request_without_credentials_is_answered_401_saying_how_to_authenticate(
        secured: Secured) -> None:
    answer = web(secured.web_port, {"type": "SYSTEMSTATUS", "requestid": 7})
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert answer.code == 44
    assert answer.result.findtext("REQUESTTYPE") == "SYSTEMSTATUS"
    assert answer.result.findtext("REQUESTID") == "7"
    assert "Bearer" in answer.message
    assert "Basic" in answer.message


def test_a_wrong_password_is_answered_401_and_the_right_one_is_served(
        secured: Secured) -> None:
    wrong = web(secured.web_port, {"type": "SYSTEMSTATUS", "requestid": 1},
                headers=basic("apiuser", "not the password"))
    assert (wrong.status, wrong.code) == (401, 44)
    assert wrong.message == "wrong user name or password"
    unknown = web(secured.web_port, {"type": "SYSTEMSTATUS", "requestid": 1},
                  headers=basic("nobody", PASSWORD))
    assert (unknown.status, unknown.message) == (401, "wrong user name or password")
    right = web(secured.web_port, {"type": "SYSTEMSTATUS", "requestid": 1},
                headers=basic("apiuser"))
    assert right.status == 200
    assert right.code == 20


def test_a_user_name_is_locked_out_after_max_failed_auth_wrong_passwords(
        secured: Secured) -> None:
    query = {"type": "SYSTEMSTATUS", "requestid": 1}
    for _ in range(3):  # max_failed_auth = 3
        wrong = web(secured.web_port, query, headers=basic("guessed", "a guess"))
        assert wrong.message == "wrong user name or password"
    # Now even the right password is refused, saying why; other users are not affected.
    locked = web(secured.web_port, query, headers=basic("guessed"))
    assert (locked.status, locked.code) == (401, 44)
    assert locked.message == "too many wrong passwords: guessed is refused for about 15 minute(s)"
    assert web(secured.web_port, query, headers=basic("apiuser")).code == 20


def test_a_user_without_allowapiauth_is_refused_whatever_else_they_may_do(
        secured: Secured) -> None:
    answer = web(secured.web_port, {"type": "EXPORT", "requestid": 1, "uniquefield": "ident",
                                    "uniqueid": secured.record_id, "media_format": "wav"},
                 headers=basic("noauth"))
    assert (answer.status, answer.code) == (403, 44)
    assert "ALLOWAPIAUTH" in answer.message
    assert not answer.body.startswith(b"RIFF")


def test_media_need_their_permission_and_the_download_is_audited_under_the_user(
        secured: Secured) -> None:
    query = {"type": "EXPORT", "requestid": 3, "uniquefield": "ident",
             "uniqueid": secured.record_id, "media_format": "wav"}
    refused = web(secured.web_port, query, headers=basic("apiuser"))
    assert (refused.status, refused.code) == (403, 44)
    assert "ALLOWEXPORTDOWNLOAD" in refused.message
    assert b"RIFF" not in refused.body
    served = web(secured.web_port, query, headers=basic("exporter"))
    assert served.status == 200
    assert served.body.startswith(b"RIFF")
    entries = [e for e in secured.audit("export") if e["username"] == "exporter"]
    assert entries
    assert entries[-1]["target"] == secured.record_id
    assert entries[-1]["address"] == "127.0.0.1"
    # The refused attempt is in the trail too, under its user, with the code answered.
    tried = [e for e in secured.audit("export") if e["username"] == "apiuser"]
    assert [(e["detail"], e["target"]) for e in tried] == [
        ("WebAPI EXPORT -> 44", f"UNIQUEID={secured.record_id}")]


def test_email_needs_allowexportemail(secured: Secured) -> None:
    query = {"type": "EMAIL", "requestid": 4, "ident": secured.record_id,
             "toaddress": "qa@example.com", "media_format": "wav"}
    refused = web(secured.web_port, query, headers=basic("exporter"))
    assert (refused.status, refused.code) == (403, 44)
    assert "ALLOWEXPORTEMAIL" in refused.message
    allowed = web(secured.web_port, query, headers=basic("mailer"))
    # Past the check: the recorder has no mail server, which is the manual's 31.
    assert (allowed.status, allowed.code) == (200, 31)
    entries = [e for e in secured.audit("email") if e["username"] == "mailer"]
    assert [(e["detail"], e["target"]) for e in entries] == [
        ("WebAPI EMAIL -> 31", f"IDENT={secured.record_id}")]


@pytest.mark.parametrize("request_type", sorted(REQUEST_PERMISSIONS))
def test_every_request_needing_a_permission_is_refused_to_a_user_without_it(
        secured: Secured, request_type: str) -> None:
    # apiuser holds ALLOWAPIAUTH alone: each type of the table needs one more permission.
    answer = web(secured.web_port, {"type": request_type, "requestid": 9},
                 headers=basic("apiuser"))
    assert (answer.status, answer.code) == (403, 44), answer.body
    needed = " or ".join(sorted(next(iter(REQUEST_PERMISSIONS[request_type]))))
    assert needed in answer.message


def test_an_administrative_change_is_made_by_a_permitted_user_and_audited(
        secured: Secured) -> None:
    answer = web(secured.web_port, {"type": "ADDGROUP", "requestid": 5,
                                    "groupname": "Night shift"}, headers=basic("admin"))
    assert (answer.status, answer.code) == (200, 20), answer.body
    entries = [e for e in secured.audit("api-change") if e["username"] == "admin"]
    assert entries[-1]["detail"] == "WebAPI ADDGROUP -> 20"
    assert entries[-1]["target"] == "GROUPNAME=Night shift"
    assert entries[-1]["address"] == "127.0.0.1"


def test_callupdate_of_a_stored_recordings_archiveaction_is_administration(
        secured: Secured) -> None:
    query = {"type": "CALLUPDATE", "requestid": 6, "recordid": secured.record_id,
             "archiveaction": 2}
    refused = web(secured.web_port, query, headers=basic("apiuser"))
    assert (refused.status, refused.code) == (403, 44)
    assert "ALLOWARCHIVEADMIN" in refused.message
    done = web(secured.web_port, query, headers=basic("admin"))
    assert (done.status, done.code) == (200, 20), done.body
    metadata = web(secured.web_port, {"type": "CALLUPDATE", "requestid": 6,
                                      "recordid": secured.record_id, "user1": "x"},
                   headers=basic("apiuser"))
    assert (metadata.status, metadata.code) == (200, 20), metadata.body


def test_a_token_works_until_recorderctl_revokes_it(secured: Secured) -> None:
    made = recorderctl("token", "add", "apiuser", "--label", "crm", "--config",
                       secured.config)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    assert token.startswith("rec_")
    query = {"type": "SYSTEMSTATUS", "requestid": 1}
    assert web(secured.web_port, query, headers=bearer(token)).code == 20
    listed = recorderctl("token", "list", "apiuser", "--config", secured.config)
    assert "crm" in listed.stdout
    assert token not in listed.stdout  # only its start, never the token
    with sqlite3.connect(secured.database) as db:
        assert token not in str(db.execute("SELECT * FROM api_tokens").fetchall())
    revoked = recorderctl("token", "revoke", "apiuser", "--config", secured.config)
    assert revoked.returncode == 0, revoked.stderr
    answer = web(secured.web_port, query, headers=bearer(token))
    assert (answer.status, answer.code) == (401, 44)
    assert answer.message == "the bearer token is unknown or revoked"
    again = recorderctl("token", "revoke", "apiuser", "--config", secured.config)
    assert again.returncode == 1
    assert again.stderr.strip() == "recorderctl token: apiuser has no token in force"


def test_recorderctl_reaches_a_recorder_that_requires_auth_with_a_token(
        secured: Secured) -> None:
    made = recorderctl("token", "add", "admin", "--config", secured.config)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    refused = recorderctl(secured.running, "status")
    assert refused.returncode == 1
    assert "HTTP 401" in refused.stderr
    served = recorderctl(secured.running, "status", env={"RECORDER_API_TOKEN": token})
    assert served.returncode == 0, served.stderr


def test_an_unknown_token_is_refused(secured: Secured) -> None:
    answer = web(secured.web_port, {"type": "TEST", "requestid": 1},
                 headers=bearer("rec_made-up"))
    assert (answer.status, answer.code) == (401, 44)


def test_credentials_over_https_are_accepted(secured: Secured) -> None:
    answer = web(secured.https_port, {"type": "SYSTEMSTATUS", "requestid": 1},
                 headers=basic("apiuser"), tls=True)
    assert (answer.status, answer.code) == (200, 20)


def test_the_event_stream_and_status_need_credentials_too(secured: Secured) -> None:
    assert web(secured.web_port, path="/status").status == 401
    assert web(secured.web_port, path="/status", headers=basic("apiuser")).status == 200


def test_each_request_is_logged_with_its_client_and_user(secured: Secured) -> None:
    web(secured.web_port, {"type": "SYSTEMSTATUS", "requestid": 4242},
        headers=basic("apiuser"))
    wait_for(lambda: re.search(r"WebAPI 127\.0\.0\.1 user apiuser: SYSTEMSTATUS 4242",
                               secured.running.log()), 10, what=secured.running.log)


# --- the socket API: plain, and over mutual TLS -------------------------------------------------


def test_call_control_stays_open_on_the_plain_socket_but_administration_is_refused(
        secured: Secured) -> None:
    conn = ApiConnection(secured.running.socket_port)
    try:
        expect(conn.request("CALLSTART", 1, deviceid="1001"), 20)
        expect(conn.request("CALLSTOP", 2, deviceid="1001"), 20)
        refused = expect(conn.request("IMPORTUSER", 3, action="ADD", firstname="Eve",
                                      lastname="Mallory"), 44)
        assert "client certificate" in (refused.findtext("RESULTMSG") or "")
        expect(conn.request("CALLUPDATE", 4, recordid=secured.record_id, archiveaction=1),
               44)
    finally:
        conn.close()


def test_a_client_certificate_mapped_to_a_permitted_user_may_administer(
        secured: Secured) -> None:
    client = secured.ca.issue("cti-host-7")  # socket_tls_users maps it to ctiadmin
    result = tls_request(secured.tls_port, secured.ca.cert_path, client, "IMPORTUSER",
                         action="ADD", firstname="Ada", lastname="Lovelace")
    expect(result, 20)
    entries = [e for e in secured.audit("api-change") if e["username"] == "ctiadmin"]
    assert entries
    assert entries[-1]["detail"] == "socket API IMPORTUSER -> 20"


def test_a_certificate_user_lacking_the_permission_is_refused(secured: Secured) -> None:
    client = secured.ca.issue("weak")  # no mapping: the CN is the user name
    result = tls_request(secured.tls_port, secured.ca.cert_path, client, "ADDGROUP",
                         groupname="Day shift")
    expect(result, 44)
    assert "ALLOWGROUPADMIN" in (result.findtext("RESULTMSG") or "")
    unmapped = tls_request(secured.tls_port, secured.ca.cert_path,
                           secured.ca.issue("stranger"), "ADDGROUP", groupname="Day shift")
    expect(unmapped, 44)


def test_a_certificate_of_another_ca_is_refused_at_the_handshake(
        secured: Secured, tmp_path: Path) -> None:
    other = authority(tmp_path, "other").issue("cti-host-7")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_request(secured.tls_port, secured.ca.cert_path, other, "TEST")


def test_a_client_without_a_certificate_is_refused_at_the_handshake(secured: Secured) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls_request(secured.tls_port, secured.ca.cert_path, None, "TEST")
    # The same request with a good certificate is answered: the refusal was the certificate.
    expect(tls_request(secured.tls_port, secured.ca.cert_path, secured.ca.issue("weak"),
                       "TEST"), 20)


@pytest.mark.process  # starts a real recorderd
def test_basic_credentials_in_clear_from_another_machine_are_refused(tmp_path: Path) -> None:
    address = other_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    config = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"
[api]
host = "0.0.0.0"
socket_port = 0
web_port = 0
require_auth = true
allow = ["127.0.0.1/32", "{address}/32"]
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")
    proc = RecorderProcess(["--config", str(config)])
    try:
        running = proc.wait_ready()
        add_api_user(tmp_path / "data" / "recorder.sqlite3", "apiuser", ("ALLOWAPIAUTH",))
        query = {"type": "SYSTEMSTATUS", "requestid": 1}
        remote = web(running.web_port, query, headers=basic("apiuser"), host=address,
                     source=address)
        assert (remote.status, remote.code) == (403, 44)
        assert "HTTPS" in remote.message
        local = web(running.web_port, query, headers=basic("apiuser"))
        assert (local.status, local.code) == (200, 20)
    finally:
        assert proc.stop() == 0, proc.log
