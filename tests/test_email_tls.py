"""The mail server's certificate is verified (docs/api-notes.md, "E-mail"): a real aiosmtpd
server on 127.0.0.1 presents a certificate signed by a CA of the test's own, over STARTTLS and
TLS from the first byte.

The configuration offers no CA setting: the docs promise verification "against the system's
trust store", so the CA is configured the way that store is, through OpenSSL's SSL_CERT_FILE.
A server whose CA is not in the store, or whose certificate names another host, must be refused
with nothing delivered; the same server is accepted once its CA is in the store. A mailer that
stopped verifying (an unverified context, or no host-name check) fails these tests."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from recorder.archive.mailer import Mailer, MailUnavailable, build_message
from recorder.config.loader import config_from_dict
from tests.helpers.api import expect
from tests.helpers.exports import record, tone_boards
from tests.helpers.net import ca_signed, smtp_server

SECURITY = ("starttls", "tls")
VERIFY_FAILED = "certificate verify failed"


@dataclass
class Inbox:
    """An aiosmtpd handler keeping the envelopes it is given."""

    delivered: list[Envelope] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered.append(envelope)
        return "250 Message accepted for delivery"


@contextmanager
def tls_server(security: str, cert: Path, key: Path) -> Iterator[tuple[Inbox, int]]:
    """A mail server presenting ``cert``: STARTTLS required, or TLS from the first byte."""
    # PROTOCOL_TLS, not PROTOCOL_TLS_SERVER: aiosmtpd's Controller checks the server is up by
    # connecting with this same context as a client, which must not verify our test CA.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    options: dict[str, Any] = (
        {"server_kwargs": {"tls_context": context, "require_starttls": True}}
        if security == "starttls" else {"ssl_context": context})
    with smtp_server(inbox, **options) as port:
        yield inbox, port


def trust_only(monkeypatch: pytest.MonkeyPatch, ca: Path | None) -> None:
    """The trust store the mailer sees: ``ca`` alone, or the system's (which has never heard of
    a CA made a moment ago) when None."""
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if ca is None:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))


def mailer(security: str, port: int) -> Mailer:
    return Mailer(config_from_dict({"smtp": {
        "host": "127.0.0.1", "port": port, "security": security,
        "sender": "recorder@example.com", "timeout_seconds": 10}}).smtp)


def message(sender: Address) -> Any:
    return build_message(sender, [Address(addr_spec="ops@example.com")], "certificate check",
                         "body\n")


@pytest.mark.parametrize("security", SECURITY)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # aiosmtpd's own
def test_a_server_signed_by_an_unknown_ca_is_refused_until_its_ca_is_trusted(
        security: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = ca_signed(tmp_path, "smtp")
    with tls_server(security, cert, key) as (inbox, port):
        trust_only(monkeypatch, None)
        sender = mailer(security, port)
        with pytest.raises(MailUnavailable) as raised:
            sender.send(message(sender.sender))
        assert str(raised.value).startswith(
            f"cannot reach the mail server 127.0.0.1:{port} ({security}): ")
        assert VERIFY_FAILED in str(raised.value)
        assert inbox.delivered == []

        trust_only(monkeypatch, ca)  # the same server, its CA now in the store
        sender.send(message(sender.sender))
        (envelope,) = inbox.delivered
        assert envelope.rcpt_tos == ["ops@example.com"]


@pytest.mark.parametrize("security", SECURITY)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_trusted_certificate_for_another_host_is_refused(
        security: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert, key = ca_signed(tmp_path, "other", hosts=("mail.example.com",))
    trust_only(monkeypatch, ca)
    with tls_server(security, cert, key) as (inbox, port):
        sender = mailer(security, port)
        with pytest.raises(MailUnavailable) as raised:
            sender.send(message(sender.sender))
        assert VERIFY_FAILED in str(raised.value)
        assert "127.0.0.1" in str(raised.value)
        assert inbox.delivered == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_email_through_an_untrusted_server_answers_31_and_is_logged(
        start_recorder: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """What a client and the log see: the request answers 31 with the reason, the warning names
    the recipient, and the server received nothing."""
    _, cert, key = ca_signed(tmp_path, "smtp")
    trust_only(monkeypatch, None)
    with tls_server("starttls", cert, key) as (inbox, port):
        running = start_recorder(boards=tone_boards(tmp_path), smtp={
            "host": "127.0.0.1", "port": port, "security": "starttls"})
        conn = running.connect()
        try:
            time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
            row = record(conn, "2001", 0.5)
            with caplog.at_level(logging.WARNING, logger="recorder.api.handlers.email"):
                result = conn.request("EMAIL", 1, ident=row["RECORDID"],
                                      toaddress="x@example.com", media_format="wav")
        finally:
            conn.close()
        expect(result, 31, starts=f"cannot reach the mail server 127.0.0.1:{port} (starttls): ")
        assert VERIFY_FAILED in (result.findtext("RESULTMSG") or "")
        assert inbox.delivered == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.getMessage().startswith("mail to x@example.com not sent")]
    assert len(warnings) == 1, caplog.text
    assert VERIFY_FAILED in warnings[0]
