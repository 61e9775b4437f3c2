"""E-mailing a recording from the portal (ALLOWEXPORTEMAIL), received by a real SMTP server
(aiosmtpd) on 127.0.0.1: the attachment is the recording in the chosen format, the trail says
who sent what to whom; refusals (the server's, a bad address, no CSRF token) send nothing."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
import soundfile
from aiosmtpd.smtp import SMTP, Envelope, Session

from recorder.app import Recorder
from recorder.store.audit import AuditQuery
from tests.helpers.net import smtp_server
from tests.helpers.portal import PortalClient, add_recording, add_user, portal_port

pytestmark = pytest.mark.xdist_group("email")

SENDER = "recorder@example.com"


@dataclass
class Mailbox:
    """Keeps what it receives; refuses the addresses in ``refuse``."""

    received: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=lambda: {"nobody@example.com"})

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append((list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


@dataclass
class Setup:
    recorder: Recorder
    mailbox: Mailbox
    client: PortalClient


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from recorder.config.loader import config_from_dict  # noqa: PLC0415
    from tests.helpers.recorders import base_config  # noqa: PLC0415

    tmp = tmp_path_factory.mktemp("mail")
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        config = config_from_dict(base_config(
            tmp, portal={"enabled": True, "port": 0, "signin_attempts_per_minute": 10000},
            smtp={"host": "127.0.0.1", "port": port, "sender": SENDER}), base_dir=tmp)
        recorder = Recorder(config)
        recorder.start()
        try:
            add_user(recorder, "mel", ("ALLOWVIEWALLRECORDS", "ALLOWEXPORTEMAIL"))
            client = PortalClient(portal_port(recorder))
            assert client.sign_in("mel").status == 303
            yield Setup(recorder, mailbox, client)
        finally:
            recorder.stop()


def test_a_recording_is_mailed_as_mp3_to_two_addresses_and_audited(setup: Setup,
                                                                    tmp_path: Path) -> None:
    ident, _ = add_recording(setup.recorder, agent_id=None, seconds=2.0,
                             meta={"ANI": "6145551212"})
    client = setup.client
    page = client.get(f"/recordings/{ident}").text
    assert f'action="/recordings/{ident}/email"' in page
    before = len(setup.mailbox.received)
    answer = client.post(f"/recordings/{ident}/email", {
        "csrf": client.csrf(f"/recordings/{ident}"), "format": "mp3",
        "to": "sue@example.com, bob@example.org"})
    assert answer.status == 200, answer.text
    assert "was sent as mp3 to sue@example.com, bob@example.org" in answer.text
    assert len(setup.mailbox.received) == before + 1
    recipients, message = setup.mailbox.received[-1]
    assert sorted(recipients) == ["bob@example.org", "sue@example.com"]
    assert message["From"] == SENDER
    assert message["Subject"] == f"Recording {ident}"
    body = message.get_body(("plain",))
    assert body is not None
    assert f"RECORDID {ident}" in body.get_content()
    assert "ANI 6145551212" in body.get_content()
    (part,) = list(message.iter_attachments())
    assert part.get_content_type() == "audio/mpeg"
    filename = part.get_filename()
    assert filename
    assert filename.endswith(".mp3")
    saved = tmp_path / filename
    saved.write_bytes(part.get_payload(decode=True))
    info = soundfile.info(str(saved))
    assert info.samplerate == 8000
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert setup.recorder.store is not None
    assert setup.recorder.store.audit is not None
    (entry,) = setup.recorder.store.audit.list_audit(AuditQuery(action="email", limit=1))
    assert (entry.username, entry.target) == ("mel", str(ident))
    assert entry.detail == "mp3 to sue@example.com, bob@example.org"


def test_refusals_send_nothing_and_say_why(setup: Setup) -> None:
    ident, _ = add_recording(setup.recorder, agent_id=None)
    client = setup.client
    token = client.csrf(f"/recordings/{ident}")
    before = len(setup.mailbox.received)
    assert setup.recorder.store is not None
    assert setup.recorder.store.audit is not None
    mailed = len(setup.recorder.store.audit.list_audit(AuditQuery(action="email")))
    by_server = client.post(f"/recordings/{ident}/email", {
        "csrf": token, "format": "wav", "to": "nobody@example.com"})
    assert by_server.status == 502
    assert "refused" in by_server.text
    hostile = client.post(f"/recordings/{ident}/email", {
        "csrf": token, "format": "wav", "to": "<script>alert(1)</script>"})
    assert hostile.status == 400
    assert "<script>" not in hostile.text
    assert "&lt;script&gt;" in hostile.text
    assert client.post(f"/recordings/{ident}/email", {
        "csrf": token, "format": "cav", "to": "sue@example.com"}).status == 400
    no_token = client.post(f"/recordings/{ident}/email", {
        "format": "wav", "to": "sue@example.com"})
    assert no_token.status == 403
    time.sleep(0.2)  # anything sent would have arrived by now
    assert len(setup.mailbox.received) == before
    # The one the server refused was in the trail before it was handed over, and is followed
    # by the entry saying it was not sent; the others were refused before any of that.
    entries = setup.recorder.store.audit.list_audit(AuditQuery(action="email"))
    assert [e.detail for e in entries[:len(entries) - mailed]] == [
        "not sent: wav to nobody@example.com", "wav to nobody@example.com"]
