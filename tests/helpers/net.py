"""Ports on 127.0.0.1, a mail server in a thread, a self-signed certificate and one signed by
a test CA.

Everything the tests start listens on a port the system picked: port 0 where the server takes
it, or a free port tried again when another test (another xdist worker) took it first."""

from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BIND_ATTEMPTS = 10


def free_port() -> int:
    """A port nothing listens on at the moment (for servers that cannot take port 0); another
    process may take it before the caller does, so callers try again on EADDRINUSE."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def closed_port(port: int = 0) -> Iterator[int]:
    """A port (``port``, or one the system picks) where nothing listens for as long as the
    block runs: it is bound here and never listened on, so a connection to it is refused and
    no other process can take it."""
    with socket.socket() as sock:
        if port:  # a server's port just closed: its connections may linger in TIME_WAIT
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        yield int(sock.getsockname()[1])


@contextmanager
def smtp_server(handler: Any, **options: Any) -> Iterator[int]:
    """An aiosmtpd mail server in a thread on a free port of 127.0.0.1; its port."""
    for attempt in range(BIND_ATTEMPTS):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        try:
            controller.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == BIND_ATTEMPTS - 1:
                raise
            continue
        break
    try:
        yield port
    finally:
        controller.stop()


def self_signed(directory: Path, name: str = "recorder") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def ca_signed(directory: Path, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
              ) -> tuple[Path, Path, Path]:
    """A certificate authority of its own and a server certificate it signed for ``hosts``
    (IP addresses or DNS names): the CA's certificate, the server's certificate and key (PEM).

    Unlike ``self_signed``, the server's certificate is no CA and the CA is not the server, so a
    client that trusts the CA accepts the server and one that does not must refuse it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path = directory / f"{name}-ca.crt"
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    _write_key(key_path, key)
    return ca_path, cert_path, key_path


# RTP ranges for test SRSs: below the kernel's ephemeral ports (32768 and up on Linux), which
# any client socket of a parallel test may take, and a slice of their own per xdist worker.
RTP_TEST_BASE = 20000
RTP_SLICE = 1200


def rtp_test_range(ports: int) -> tuple[int, int]:
    """An even-based range of ``ports`` UDP ports on 127.0.0.1 for one test SRS, inside this
    xdist worker's slice, so that parallel workers and their clients never take its ports."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = RTP_TEST_BASE + (index % 10) * RTP_SLICE
    assert ports <= RTP_SLICE // 2
    low = base + random.randrange(0, RTP_SLICE - ports, 2)
    return low, low + ports - 1


# sipp's own ports: below the ephemeral ports as well (sipp binds -p and -mp as given, once:
# a port a client socket of another test took meanwhile fails the run), above the RTP
# slices, a few blocks of four per xdist worker.
SIPP_BASE = RTP_TEST_BASE + 10 * RTP_SLICE
SIPP_SLICE = 76


def sipp_ports() -> tuple[int, int]:
    """(SIP port, media port) for one sipp run of this xdist worker: the media port even (its
    video port is two above), the SIP port the odd one between, which sipp's media never
    binds (it opens no RTCP)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    media = SIPP_BASE + (index % 10) * SIPP_SLICE + 4 * random.randrange(SIPP_SLICE // 4)
    return media + 1, media
