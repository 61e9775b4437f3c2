"""Reaching the APIs under test (docs/security.md): certificates of a CA the test makes, users
written into a running recorder's database, and HTTP and TLS clients that can come from
another address of 127.0.0.0/8 and carry credentials."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import socket
import ssl
import time
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

from recorder.store.directory import UserFields
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import request_xml
from tests.helpers.portal import PASSWORD, cheap_hash


@dataclass
class Authority:
    """A test CA: its certificate file and key, and the directory it writes to."""

    directory: Path
    name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_path(self) -> Path:
        return self.directory / f"{self.name}-ca.crt"

    def issue(self, common_name: str, *, server: bool = False) -> tuple[Path, Path]:
        """A certificate for ``common_name`` (a server's for 127.0.0.1, or a client's) and
        its key, as PEM files."""
        now = datetime.datetime.now(datetime.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                               common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        stem = f"{self.name}-{common_name}"
        cert_path, key_path = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


def authority(directory: Path, name: str) -> Authority:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    made = Authority(directory, name, cert, key)
    made.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return made


def add_api_user(database: Path, username: str, permissions: Collection[str]) -> int:
    """A user (password PASSWORD) with a role of their own holding ``permissions``, written
    into a running recorder's database as another process would; their USERID."""
    store = SqliteStore(database)
    store.open()
    try:
        user_id = store.add_user(UserFields(
            username=username, first_name=username, last_name="Api",
            password_hash=cheap_hash(PASSWORD)), now=time.time())
        role = store.add_role(f"role of {username}", "")
        assert role is not None
        for permission in permissions:
            store.set_role_permission(role.role_id, permission, True)
        store.set_user_role(user_id, role.role_id, True)
        return user_id
    finally:
        store.close()


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class WebAnswer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def result(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def code(self) -> int:
        return int(self.result.findtext("RESULTCODE") or -1)

    @property
    def message(self) -> str:
        return self.result.findtext("RESULTMSG") or ""


def web(port: int, params: Mapping[str, Any] | None = None, *, path: str = "/webAPI.aspx",
        headers: Mapping[str, str] | None = None, source: str | None = None,
        host: str = "127.0.0.1", tls: bool = False) -> WebAnswer:
    """One WebAPI request, from ``source`` if given (HTTPS, any certificate, with ``tls``)."""
    source_address = (source, 0) if source is not None else None
    conn: http.client.HTTPConnection
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=10, context=context,
                                           source_address=source_address)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=10,
                                          source_address=source_address)
    query = urllib.parse.urlencode(params or {})
    try:
        conn.request("GET", path + (f"?{query}" if query else ""), headers=dict(headers or {}))
        response = conn.getresponse()
        return WebAnswer(response.status, response.headers, response.read())
    finally:
        conn.close()


def tls_request(port: int, ca: Path, client: tuple[Path, Path] | None, request_type: str,
                **params: Any) -> etree._Element:
    """One request over the socket API's TLS port, the server checked against ``ca``, with the
    client certificate ``client`` (cert, key) or none. Raises what the client sees when the
    server refuses the handshake (an SSL alert, a reset, or the end of the stream)."""
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(str(client[0]), str(client[1]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
        sock.sendall(request_xml(request_type, 1, **params) + b"\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed without an answer (got {data!r})")
            data += chunk
        return etree.fromstring(data.split(b"\r\n", 1)[0])


def other_address() -> str | None:
    """An address of this machine that is not loopback (to be a client from another machine
    on the network), or None when it has none."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if ipaddress.ip_address(address).is_loopback else address
