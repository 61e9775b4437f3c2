"""Which addresses may reach the APIs and the portal (api.allow, api.cti_addresses,
portal.allow; docs/security.md). The tests' clients come from 127.0.0.2 and 127.0.0.3, other
addresses of this machine than the recorder's default allow-list (127.0.0.1/32, ::1/128)."""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from recorder.api.transport.access import archive_change
from recorder.config.loader import config_from_dict
from recorder.errors import ConfigError
from recorder.rules.access import api_requirement, permits
from recorder.rules.addresses import Networks
from tests.helpers.access import add_api_user, basic, web
from tests.helpers.api import ApiConnection, expect, request_xml
from tests.helpers.portal import portal_port, portal_recorder
from tests.helpers.recorders import (
    IN_PROCESS_AND_RECORDERD,
    RECORDERD_ONLY,
    Running,
    base_config,
    write_toml,
)
from tests.helpers.waiting import wait_for

OUTSIDER = "127.0.0.2"
CTI = "127.0.0.3"


def refused_silently(port: int, source: str) -> bool:
    """Whether a socket API connection from ``source`` is closed without an answer to TEST."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(source, 0))
    try:
        try:
            sock.sendall(request_xml("TEST", 1) + b"\r\n")
            return sock.recv(65536) == b""
        except ConnectionError:
            return True
    finally:
        sock.close()


@RECORDERD_ONLY
def test_a_socket_client_outside_api_allow_is_closed_with_one_log_line(
        start_recorder: Any) -> None:
    running: Running = start_recorder()
    for _ in range(5):
        assert refused_silently(running.socket_port, OUTSIDER)
    wait_for(lambda: "refused 127.0.0.2, not in api.allow" in running.log(), 10,
             what=running.log)
    # Five refusals within seconds: one line says so, not five.
    assert running.log().count("not in api.allow") == 1
    conn = running.connect()  # 127.0.0.1, in the default list
    try:
        expect(conn.request("TEST", 1), 20)
    finally:
        conn.close()


@IN_PROCESS_AND_RECORDERD
@pytest.mark.parametrize("require_auth", [False, True])
def test_a_webapi_client_outside_api_allow_is_answered_403(start_recorder: Any,
                                                          require_auth: bool) -> None:
    running: Running = start_recorder(api={"socket_port": 0, "web_port": 0,
                                           "require_auth": require_auth})
    headers: dict[str, str] = {}
    if require_auth:
        # Good credentials do not open the door for an address that is not allowed.
        add_api_user(running.data_dir / "recorder.sqlite3", "apiuser", ("ALLOWAPIAUTH",))
        headers = basic("apiuser")
    query = {"type": "SYSTEMSTATUS", "requestid": 5}
    outside = web(running.web_port, query, source=OUTSIDER, headers=headers)
    assert (outside.status, outside.code) == (403, 44)
    assert outside.message == "the WebAPI does not serve 127.0.0.2: not in api.allow"
    assert outside.result.findtext("REQUESTID") == "5"
    inside = web(running.web_port, query, headers=headers)
    assert (inside.status, inside.code) == (200, 20)


def test_a_network_in_api_allow_lets_its_clients_in(start_recorder: Any) -> None:
    running: Running = start_recorder(api={"socket_port": 0, "web_port": 0,
                                           "allow": ["127.0.0.0/30", "::1/128"]})
    conn = ApiConnection(running.socket_port, source=OUTSIDER)
    try:
        expect(conn.request("TEST", 1), 20)
    finally:
        conn.close()
    assert web(running.web_port, {"type": "TEST", "requestid": 1}, source=OUTSIDER).code == 20
    assert refused_silently(running.socket_port, "127.0.0.4")  # just outside the /30


@pytest.mark.slow  # idles 2.5 s past the idle timeout
def test_cti_addresses_are_allowed_and_only_they_may_stay_idle(start_recorder: Any) -> None:
    running: Running = start_recorder(api={
        "socket_port": 0, "web_port": 0, "allow": ["127.0.0.1/32", f"{OUTSIDER}/32"],
        "cti_addresses": [CTI], "idle_timeout_seconds": 1.0})
    cti = ApiConnection(running.socket_port, source=CTI)  # not in api.allow, a CTI link
    other = ApiConnection(running.socket_port, source=OUTSIDER)
    try:
        expect(cti.request("TEST", 1), 20)
        expect(other.request("TEST", 1), 20)
        time.sleep(2.5)  # idle past idle_timeout_seconds
        with pytest.raises(ConnectionError):
            other.request("TEST", 2)
        expect(cti.request("TEST", 2), 20)
    finally:
        cti.close()
        other.close()


def test_portal_allow_keeps_other_addresses_out_of_the_portal(tmp_path: Path) -> None:
    recorder = portal_recorder(tmp_path, allow=["127.0.0.1/32"])
    try:
        def status(source: str) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", portal_port(recorder), timeout=10,
                                              source_address=(source, 0))
            try:
                conn.request("GET", "/signin")
                return conn.getresponse().status
            finally:
                conn.close()
        assert status(OUTSIDER) == 403
        assert status("127.0.0.1") == 200
    finally:
        recorder.stop()


@pytest.mark.parametrize(("section", "key", "value"), [
    ("api", "allow", ["127.0.0.1/32", "10.1.2.300/24"]),
    ("api", "cti_addresses", ["cti.example.com"]),
    ("portal", "allow", ["everyone"]),
])
def test_an_address_list_that_is_not_addresses_is_refused_naming_its_key(
        tmp_path: Path, section: str, key: str, value: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(base_config(tmp_path, **{section: {key: value}}), base_dir=tmp_path)
    index = len(value) - 1
    assert f"{section}.{key}[{index}]: {value[index]!r} is not an IP address" in str(
        caught.value)


@pytest.mark.process  # recorderd's exit status
def test_recorderd_exits_78_on_a_bad_allow_list_or_socket_tls_without_a_certificate(
        tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415

    from tests.helpers.recorders import BIN  # noqa: PLC0415

    config = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"
[api]
allow = ["not-an-address"]
socket_tls = true
socket_tls_users = ["no-equals-sign"]
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")
    done = subprocess.run([str(BIN / "recorderd"), "--config", str(config)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78, done.stderr
    for key in ("api.allow[0]", "api.socket_tls:", "api.socket_tls_users[0]"):
        assert key in done.stderr + done.stdout


@pytest.mark.parametrize(("networks", "address", "inside"), [
    (("127.0.0.1/32", "::1/128"), "127.0.0.1", True),
    (("127.0.0.1/32", "::1/128"), "127.0.0.2", False),
    (("127.0.0.1/32", "::1/128"), "::1", True),
    (("10.1.2.0/24",), "::ffff:10.1.2.9", True),  # IPv4 over an IPv6 socket
    (("10.1.2.0/24",), "10.1.3.1", False),
    (("fd00:1::/64",), "fd00:1::7", True),
    (("fd00:1::/64",), "fd00:2::7", False),
    (("fe80::/10",), "fe80::1%eth0", True),  # a scope is not part of the address
    (("0.0.0.0/0", "::/0"), "203.0.113.5", True),
    (("0.0.0.0/0",), "2001:db8::1", False),  # an IPv4 network holds no IPv6 address
    (("0.0.0.0/0", "::/0"), "", False),  # a Unix socket's peer: no address
])
def test_an_address_is_in_a_list_by_its_network(networks: tuple[str, ...], address: str,
                                                inside: bool) -> None:
    assert (address in Networks(networks)) is inside


@pytest.mark.parametrize(("request_type", "params", "needed"), [
    ("TEST", {}, {"ALLOWAPIAUTH"}),
    ("CALLSTART", {}, {"ALLOWAPIAUTH"}),
    ("EXPORT", {}, {"ALLOWAPIAUTH", "ALLOWEXPORTDOWNLOAD"}),
    ("COMBINEDEMAIL", {}, {"ALLOWAPIAUTH", "ALLOWEXPORTEMAIL"}),
    ("IMPORTUSER", {}, {"ALLOWAPIAUTH", "ALLOWAGENTADMIN"}),
    ("CALLUPDATE", {"ARCHIVEACTION": "2"}, {"ALLOWAPIAUTH"}),  # a live call's: call control
    ("CALLUPDATE", {"ARCHIVEACTION": "2", "RECORDID": "7"},
     {"ALLOWAPIAUTH", "ALLOWARCHIVEADMIN"}),
    ("CALLUPDATE", {"ARCHIVEACTION": "2", "UPDATE_IF_NOT_RECORDING": "y"},
     {"ALLOWAPIAUTH", "ALLOWARCHIVEADMIN"}),
    ("CALLUPDATE", {"RECORDID": "7", "USER1": "x"}, {"ALLOWAPIAUTH"}),
])
def test_what_each_request_needs(request_type: str, params: dict[str, str],
                                 needed: set[str]) -> None:
    requirement = api_requirement(request_type, archive_change(request_type, params))
    assert permits(needed, requirement)
    for permission in needed:
        assert not permits(needed - {permission}, requirement)


def test_an_ipv6_client_is_matched_by_its_network(start_recorder: Any) -> None:
    # The API on ::1 (IPv6); ::1 in a list of IPv6 networks, then not.
    for allow, served in ((["fd00::/8", "::1/128"], True), (["fd00::/8"], False)):
        running: Running = start_recorder(api={"host": "::1", "socket_port": 0,
                                               "web_port": 0, "allow": allow})
        sock = socket.create_connection(("::1", running.socket_port), timeout=5)
        try:
            sock.sendall(request_xml("TEST", 1) + b"\r\n")
            try:
                answer = sock.recv(65536)
            except ConnectionError:
                answer = b""
        finally:
            sock.close()
        assert (b"<RESULTCODE>20</RESULTCODE>" in answer) is served, answer
