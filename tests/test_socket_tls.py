"""The socket API's TLS port against a real recorderd (docs/security.md): an address outside
api.allow is closed at accept, before any TLS handshake, as on the plain port (the client,
from 127.0.0.2, gets not one byte of a ServerHello); and `recorderctl send --tls` with a client
certificate (--cert, --key, --ca) administers through it."""

from __future__ import annotations

import re
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.access import Authority, add_api_user, authority
from tests.helpers.ctl import recorderctl
from tests.helpers.recorders import RecorderProcess, Running, write_toml
from tests.helpers.waiting import wait_for

PROCESS_FIXTURES = {"served"}  # its recorderd serves the module's tests (conftest.py)
pytestmark = pytest.mark.xdist_group("socket-tls")

OUTSIDER = "127.0.0.2"  # not in the default api.allow (127.0.0.1/32, ::1/128)
SOCKET_TLS_PORT = re.compile(r"socket API over TLS listening on [^:]+:(\d+)")
TEST = "<REQUEST><TYPE>TEST</TYPE><REQUESTID>1</REQUESTID></REQUEST>"


@dataclass
class Served:
    """recorderd with api.require_auth and the socket API over mutual TLS."""

    running: Running
    ca: Authority
    server: tuple[Path, Path]
    tls_port: int
    database: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("socket-tls")
    ca = authority(tmp, "good")
    server = ca.issue("127.0.0.1", server=True)
    data = tmp / "data"
    config = write_toml(tmp / "r.toml", f"""
[storage]
data_dir = "{data}"
[api]
socket_port = 0
web_port = 0
tls_cert = "{server[0]}"
tls_key = "{server[1]}"
tls_port = 0
require_auth = true
socket_tls = true
socket_tls_port = 0
socket_tls_client_ca = "{ca.cert_path}"
socket_tls_users = ["cti-host-7=ctiadmin"]
[[boards]]
driver = "synthetic"
devices = ["1001"]
""")
    proc = RecorderProcess(["--config", str(config)])
    lingering: socket.socket | None = None
    try:
        running = proc.wait_ready()
        port = SOCKET_TLS_PORT.search(proc.log)
        assert port, proc.log
        database = data / "recorder.sqlite3"
        add_api_user(database, "ctiadmin", ("ALLOWAPIAUTH", "ALLOWAGENTADMIN"))
        # A client that connects and never shakes hands: the stop must not wait for it.
        lingering = socket.create_connection(("127.0.0.1", int(port.group(1))), timeout=5)
        yield Served(running, ca, server, int(port.group(1)), database)
    finally:
        code = proc.stop()
        if lingering is not None:
            lingering.close()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


def client_context(served: Served, client: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(served.ca.cert_path))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    return context


def handshake(served: Served, source: str, client: tuple[Path, Path] | None
              ) -> tuple[bytes, bool]:
    """A real TLS client's handshake from ``source``, its bytes carried by hand: what the
    server sent back (its ServerHello, certificate, ...), and whether the handshake
    completed."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(served, client).wrap_bio(incoming, outgoing,
                                                  server_hostname="127.0.0.1")
    received = b""
    with socket.create_connection(("127.0.0.1", served.tls_port), timeout=10,
                                  source_address=(source, 0)) as sock:
        try:
            while True:
                try:
                    tls.do_handshake()
                    return received, True
                except ssl.SSLWantReadError:
                    pass
                if outgoing.pending:
                    sock.sendall(outgoing.read())  # the ClientHello first
                chunk = sock.recv(65536)
                if not chunk:
                    return received, False
                received += chunk
                incoming.write(chunk)
        except ConnectionError:
            return received, False


def test_a_tls_client_outside_api_allow_is_closed_before_any_handshake(
        served: Served) -> None:
    good = served.ca.issue("cti-host-7")
    # From the allowed address the same client gets the server's handshake (a TLS record).
    answer, done = handshake(served, "127.0.0.1", good)
    assert done
    assert answer[:1] == b"\x16"  # handshake record: ServerHello, certificate, ...
    for _ in range(5):
        answer, done = handshake(served, OUTSIDER, good)
        assert (answer, done) == (b"", False)  # not one byte: no certificate, no handshake
    running = served.running
    wait_for(lambda: "refused 127.0.0.2, not in api.allow" in running.log(), 10,
             what=running.log)
    # Five refusals within seconds: one line, as on the plain port.
    assert running.log().count("not in api.allow") == 1
    assert "handshake with 127.0.0.2" not in running.log()


def test_a_client_speaking_no_tls_is_closed_and_the_next_one_served(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.tls_port), timeout=10) as sock:
        sock.sendall(TEST.encode() + b"\r\n")
        try:
            answer = sock.recv(65536)  # a TLS alert at most, then the end
        except ConnectionError:
            answer = b""
    assert b"RESULT" not in answer
    wait_for(lambda: "handshake with 127.0.0.1" in served.running.log(), 10,
             what=served.running.log)
    cert, key = served.ca.issue("weak")
    ok = recorderctl("send", "--host", "127.0.0.1", "--tls", "--port", str(served.tls_port),
                     "--ca", served.ca.cert_path, "--cert", cert, "--key", key, TEST)
    assert ok.returncode == 0, ok.stdout + ok.stderr


# --- recorderctl send --tls ----------------------------------------------------------------------


def audit_users(database: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(database)
    try:
        return conn.execute("SELECT username, detail FROM audit WHERE action = 'api-change'"
                            " ORDER BY entry_id").fetchall()
    finally:
        conn.close()


def test_recorderctl_send_administers_with_a_client_certificate(served: Served) -> None:
    cert, key = served.ca.issue("cti-host-7")  # mapped to ctiadmin, who may IMPORTUSER
    request = ("<REQUEST><TYPE>IMPORTUSER</TYPE><REQUESTID>5</REQUESTID><ACTION>ADD</ACTION>"
               "<FIRSTNAME>Grace</FIRSTNAME><LASTNAME>Hopper</LASTNAME></REQUEST>")
    done = recorderctl("send", "--host", "127.0.0.1", "--tls", "--port", str(served.tls_port),
                       "--cert", cert, "--key", key, "--ca", served.ca.cert_path, request)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<RESULTCODE>20</RESULTCODE>" in done.stdout
    assert ("ctiadmin", "socket API IMPORTUSER -> 20") in audit_users(served.database)
    # The same request on the plain port has no certificate, so no user: refused (44).
    plain = recorderctl("send", "--host", "127.0.0.1", "--port",
                        str(served.running.socket_port), request)
    assert plain.returncode == 1
    assert "<RESULTCODE>44</RESULTCODE>" in plain.stdout


def test_recorderctl_send_without_a_certificate_the_server_trusts_is_refused(
        served: Served, tmp_path: Path) -> None:
    common = ["send", "--host", "127.0.0.1", "--tls", "--port", str(served.tls_port),
              "--ca", served.ca.cert_path]
    missing = recorderctl(*common, TEST)
    assert missing.returncode == 3, missing.stdout + missing.stderr
    assert "certificate" in missing.stderr.lower()
    stranger = authority(tmp_path, "other").issue("cti-host-7")
    other = recorderctl(*common, "--cert", stranger[0], "--key", stranger[1], TEST)
    assert other.returncode == 3, other.stdout + other.stderr
    assert other.stdout == ""
    # A server certificate the client does not trust: refused by recorderctl itself.
    distrust = recorderctl("send", "--host", "127.0.0.1", "--tls", "--port",
                           str(served.tls_port), "--ca", authority(tmp_path, "x").cert_path,
                           "--cert", served.ca.issue("weak")[0],
                           "--key", served.ca.issue("weak")[1], TEST)
    assert distrust.returncode == 3
    assert "the server's certificate is not trusted" in distrust.stderr


def test_recorderctl_send_takes_the_tls_port_and_server_certificate_from_the_config(
        served: Served, tmp_path: Path) -> None:
    # A configuration on the recorder's machine: the port is api.socket_tls_port, and the
    # certificate api.tls_cert names is the one trusted (no --ca).
    config = write_toml(tmp_path / "ctl.toml", f"""
[api]
host = "127.0.0.1"
tls_cert = "{served.server[0]}"
tls_key = "{served.server[1]}"
socket_tls = true
socket_tls_port = {served.tls_port}
""")
    cert, key = served.ca.issue("weak")
    both = tmp_path / "client.pem"  # certificate and key in one file: no --key
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    done = recorderctl("send", "--config", config, "--tls", "--cert", both, TEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "<RESULTCODE>20</RESULTCODE>" in done.stdout


def test_recorderctl_send_names_a_certificate_option_misused(tmp_path: Path) -> None:
    alone = recorderctl("send", "--cert", tmp_path / "c.pem", TEST)
    assert alone.returncode == 2
    assert "--tls" in alone.stderr
    unreadable = recorderctl("send", "--tls", "--port", "1", "--cert", tmp_path / "c.pem",
                             TEST)
    assert unreadable.returncode == 2
    assert "c.pem" in unreadable.stderr
