"""EMAIL and COMBINEDEMAIL, received by a real SMTP server (aiosmtpd) on 127.0.0.1: the message
is parsed and its attachment decoded with ffmpeg and sox; plain SMTP, STARTTLS with a login, and
TLS from the first byte."""

from __future__ import annotations

import email
import email.policy
import io
import ssl
import time
import urllib.parse
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from lxml import etree

from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.errors import ConfigError
from tests.helpers.api import expect
from tests.helpers.exports import decode, dominant_hz, record, tone_boards
from tests.helpers.net import closed_port, self_signed, smtp_server
from tests.helpers.recorders import RecorderProcess, Running, base_config, write_toml

WAIT = 10.0
PROCESS_FIXTURES = {"setup"}  # its recorderd serves the module's tests (conftest.py)
# One worker runs the module, so only one recorderd is started for it (scripts/test).
pytestmark = pytest.mark.xdist_group("email")


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    login: str

    def attachment(self, directory: Path) -> tuple[Path, str]:
        """The one attachment, saved under its name, and its content type."""
        (part,) = list(self.message.iter_attachments())
        filename = part.get_filename()
        assert filename
        assert "/" not in filename
        path = directory / filename
        path.write_bytes(part.get_payload(decode=True))
        return path, part.get_content_type()


@dataclass
class Mailbox:
    """An aiosmtpd handler keeping what it receives; it refuses the addresses in ``refuse``."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=lambda: {"nobody@example.com"})

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session,
                          envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated and isinstance(
            session.auth_data, LoginPassword) else ""
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                      message, login))
        return "250 Message accepted for delivery"

    def wait(self, count: int) -> list[Received]:
        deadline = time.monotonic() + WAIT
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.received) == count, self.received
        return self.received


@contextmanager
def mail_server(**options: Any) -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    with smtp_server(mailbox, **options) as port:
        yield mailbox, port


@dataclass
class Setup:
    running: Running
    mailbox: Mailbox
    a: dict[str, str]  # 2001, 440 Hz, USER2 10121968
    b: dict[str, str]  # 2002, 1 kHz


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("email")
    with mail_server() as (mailbox, port):
        config = config_from_dict(base_config(tmp, boards=tone_boards(tmp), smtp={
            "host": "127.0.0.1", "port": port, "sender": "recorder@example.com"}),
            base_dir=tmp)
        proc = RecorderProcess(["--config", str(write_toml(tmp / "recorder.toml",
                                                           to_toml(config)))])
        try:
            running = proc.wait_ready()
            conn = running.connect()
            time.sleep(0.6)  # a recorder that just started has less than the pre-roll captured
            a = record(conn, "2001", 1.5, user2="10121968", ani="6145551212")
            b = record(conn, "2002", 1.0)
            conn.close()
            yield Setup(running, mailbox, a, b)
        finally:
            code = proc.stop()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


def send_ok(running: Running, xml: str) -> None:
    """Send one socket request and expect API_OK."""
    conn = running.connect()
    try:
        conn.send(xml.encode() + b"\r\n")
        expect(conn.read_result(), 20, "API_OK")
    finally:
        conn.close()


def seconds(row: dict[str, str]) -> float:
    import soundfile  # noqa: PLC0415

    return float(soundfile.info(row["FILENAME"]).duration)


def test_email_by_the_manuals_url(setup: Setup, tmp_path: Path) -> None:
    before = len(setup.mailbox.received)
    ident = setup.a["RECORDID"]
    status, body = setup.running.web(f"type=email&requestid=99&ident={ident}"
                                     "&toaddress=test@test.com&media_format=mp3")
    assert status == 200
    expect(etree.fromstring(body), 20, "API_OK")
    mail = setup.mailbox.wait(before + 1)[-1]
    assert (mail.sender, mail.recipients) == ("recorder@example.com", ["test@test.com"])
    assert (mail.message["From"], mail.message["To"]) == ("recorder@example.com",
                                                          "test@test.com")
    assert mail.message["Subject"] == f"Recording {ident}"
    assert f"RECORDID {ident}, device 2001" in mail.message.get_body().get_content()
    path, content_type = mail.attachment(tmp_path)
    assert content_type == "audio/mpeg"
    assert path.name.startswith(f"{ident}-2001-")
    assert path.suffix == ".mp3"
    samples, rate = decode(path, "mp3")
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=5)
    assert len(samples) / rate == pytest.approx(seconds(setup.a), abs=0.05)


def test_several_idents_come_as_one_zip(setup: Setup, tmp_path: Path) -> None:
    before = len(setup.mailbox.received)
    a, b = setup.a["RECORDID"], setup.b["RECORDID"]
    send_ok(setup.running, f"""<REQUEST>
<TYPE>EMAIL</TYPE>
<REQUESTID>14</REQUESTID>
<IDENT>{a},{b}</IDENT>
<TOADDRESS>jdoe@uptivity.com</TOADDRESS>
<MEDIA_FORMAT>wav</MEDIA_FORMAT>
</REQUEST>""")
    mail = setup.mailbox.wait(before + 1)[-1]
    path, content_type = mail.attachment(tmp_path)
    assert (content_type, path.name) == ("application/zip", f"recordings-{a}-{b}.zip")
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unzipped")
    assert [name.split("-")[0] for name in names] == [a, b]
    for name, hz in zip(names, (440, 1000), strict=True):
        samples, rate = decode(tmp_path / "unzipped" / name, "wav")
        assert dominant_hz(samples, rate) == pytest.approx(hz, abs=5)


def test_combinedemail_by_the_manuals_example(setup: Setup, tmp_path: Path) -> None:
    before = len(setup.mailbox.received)
    a, b = setup.a["RECORDID"], setup.b["RECORDID"]
    send_ok(setup.running, f"""<REQUEST>
<TYPE>COMBINEDEMAIL</TYPE>
<REQUESTID>1</REQUESTID>
<TOADDRESS>jane.doe@uptivity.com</TOADDRESS>
<TONAME>jane</TONAME>
<FROMADDRESS>jane.doe@uptivity.com</FROMADDRESS>
<FROMNAME>jane</FROMNAME>
<IDENT>{b},{a}</IDENT>
<UNIQUEID>IDENT</UNIQUEID>
</REQUEST>""")
    mail = setup.mailbox.wait(before + 1)[-1]
    assert (mail.message["From"], mail.message["To"]) == ("jane <jane.doe@uptivity.com>",
                                                          "jane <jane.doe@uptivity.com>")
    assert mail.sender == "jane.doe@uptivity.com"
    path, content_type = mail.attachment(tmp_path)
    assert (content_type, path.name) == ("audio/mpeg", f"combined-{b}-{a}.mp3")
    samples, rate = decode(path, "mp3")
    first = round(seconds(setup.b) * rate)
    assert len(samples) / rate == pytest.approx(seconds(setup.a) + seconds(setup.b), abs=0.1)
    assert dominant_hz(samples[: first - 400], rate) == pytest.approx(1000, abs=5)
    assert dominant_hz(samples[first + 400:], rate) == pytest.approx(440, abs=5)


def test_combinedemail_finds_recordings_by_the_field_uniqueid_names(setup: Setup,
                                                                    tmp_path: Path) -> None:
    before = len(setup.mailbox.received)
    query = urllib.parse.urlencode({
        "type": "combinedemail", "requestid": 2, "toaddress": "ops@example.com",
        "ident": "10121968", "uniqueid": "user2", "media_format": "wav"})
    status, body = setup.running.web(query)
    assert status == 200
    expect(etree.fromstring(body), 20)
    mail = setup.mailbox.wait(before + 1)[-1]
    assert mail.message["From"] == "recorder@example.com"  # no FROMADDRESS: the configured one
    path, content_type = mail.attachment(tmp_path)
    assert content_type == "audio/wav"
    samples, rate = decode(path, "wav")
    assert dominant_hz(samples, rate) == pytest.approx(440, abs=5)


def test_refusals(setup: Setup) -> None:
    before = len(setup.mailbox.received)
    a = setup.a["RECORDID"]
    for params, code, message in (
        ({"type": "email", "ident": a, "toaddress": "jdoe", "media_format": "wav"}, 45,
         "TOADDRESS: 'jdoe' is not an e-mail address"),
        ({"type": "email", "ident": a, "toaddress": "a b@example.com", "media_format": "wav"},
         45, "TOADDRESS:"),
        ({"type": "combinedemail", "ident": a, "toaddress": "x@example.com",
          "fromaddress": "me@"}, 45, "FROMADDRESS: 'me@' is not an e-mail address"),
        ({"type": "email", "toaddress": "x@example.com"}, 16,
         "IDENT and MEDIA_FORMAT are required"),
        ({"type": "email", "ident": a, "toaddress": "x@example.com", "media_format": "ogg"},
         16, "MEDIA_FORMAT must be one of"),
        ({"type": "email", "ident": "999999", "toaddress": "x@example.com",
          "media_format": "wav"}, 41, "no recording with IDENT 999999"),
        ({"type": "combinedemail", "ident": "nobody's", "uniqueid": "user2",
          "toaddress": "x@example.com"}, 41, "no recording with USER2 \"nobody's\""),
        ({"type": "combinedemail", "ident": a, "uniqueid": "secret",
          "toaddress": "x@example.com"}, 16, "UNIQUEID must be a column"),
        ({"type": "email", "ident": a, "toaddress": "nobody@example.com",
          "media_format": "wav"}, 45, "the mail server refused nobody@example.com: 550"),
    ):
        status, body = setup.running.web(urllib.parse.urlencode({"requestid": 5, **params}))
        assert status == 200
        expect(etree.fromstring(body), code, starts=message)
    assert len(setup.mailbox.received) == before  # none of them sent anything


@pytest.mark.slow
def test_no_mail_server_configured_or_reachable_is_31(start_recorder: Any,
                                                      tmp_path: Path) -> None:
    running = start_recorder(boards=tone_boards(tmp_path))
    expect(running.request("EMAIL", 1, ident=1, toaddress="x@example.com", media_format="wav"),
           31, "no mail server is configured (the [smtp] section's host)")
    with closed_port() as port:  # nothing listens there
        running = start_recorder(boards=tone_boards(tmp_path), storage={
            "data_dir": str(tmp_path / "second")}, smtp={"host": "127.0.0.1", "port": port})
        conn = running.connect()
        try:
            time.sleep(0.6)
            row = record(conn, "2001", 0.5)
            expect(conn.request("EMAIL", 2, ident=row["RECORDID"], toaddress="x@example.com",
                                media_format="mp3"), 31,
                   f"cannot reach the mail server 127.0.0.1:{port} (none): Connection refused")
        finally:
            conn.close()
    assert list((tmp_path / "second" / "tmp").iterdir()) == []


def server_tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    cert, key = self_signed(tmp_path, "smtp")
    # PROTOCOL_TLS_SERVER would do for the server, but aiosmtpd's Controller also checks that it
    # is up by connecting with the same context, as a client.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS)
    context.load_cert_chain(cert, key)
    return context, cert


def authenticate(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"recorder"
          and auth_data.password == b"s3cret")
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_starttls_with_a_login(start_recorder: Any, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = server_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the recorder trusts this server's cert
    with mail_server(server_kwargs={"tls_context": context, "require_starttls": True,
                                    "auth_required": True, "authenticator": authenticate},
                     ) as (mailbox, port):
        smtp = {"host": "127.0.0.1", "port": port, "security": "starttls",
                "username": "recorder", "password": "s3cret"}
        running = start_recorder(boards=tone_boards(tmp_path), smtp=smtp)
        conn = running.connect()
        try:
            time.sleep(0.6)
            row = record(conn, "2002", 0.5)
            expect(conn.request("EMAIL", 1, ident=row["RECORDID"], toaddress="x@example.com",
                                media_format="wav"), 20)
            (mail,) = mailbox.wait(1)
            assert mail.login == "recorder"
            path, _ = mail.attachment(tmp_path)
            samples, rate = decode(path, "wav")
            assert dominant_hz(samples, rate) == pytest.approx(1000, abs=5)
        finally:
            conn.close()
        wrong = start_recorder(boards=tone_boards(tmp_path), storage={
            "data_dir": str(tmp_path / "wrong")}, smtp={**smtp, "password": "guess"})
        conn = wrong.connect()
        try:
            time.sleep(0.6)
            row = record(conn, "2002", 0.5)
            expect(conn.request("EMAIL", 1, ident=row["RECORDID"], toaddress="x@example.com",
                                media_format="wav"), 31,
                   starts=f"the mail server 127.0.0.1:{port} (starttls) refused the login of "
                   "recorder: 535")
        finally:
            conn.close()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_from_the_first_byte(start_recorder: Any, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = server_tls(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with mail_server(ssl_context=context) as (mailbox, port):
        running = start_recorder(boards=tone_boards(tmp_path), smtp={
            "host": "127.0.0.1", "port": port, "security": "tls"})
        conn = running.connect()
        try:
            time.sleep(0.6)
            row = record(conn, "2003", 0.5)
            expect(conn.request("EMAIL", 1, ident=row["RECORDID"], toaddress="x@example.com",
                                media_format="vox"), 20)
        finally:
            conn.close()
        (mail,) = mailbox.wait(1)
        path, content_type = mail.attachment(tmp_path)
        assert (content_type, path.suffix) == ("application/octet-stream", ".vox")
        samples, rate = decode(path, "vox", rate=16000)
        assert dominant_hz(samples, rate) == pytest.approx(660, abs=5)


@pytest.mark.parametrize(("smtp", "problem"), [
    ({"username": "recorder"}, "smtp.password: required with smtp.username"),
    ({"password": "s3cret"}, "smtp.username: required with smtp.password"),
    ({"sender": "recorder"}, "smtp.sender: 'recorder' is not an e-mail address"),
    ({"security": "ssl"}, "smtp.security: 'ssl' is not one of none, starttls, tls"),
    ({"port": 70000}, "smtp.port: 70000 is out of range"),
])
def test_smtp_settings_are_checked_naming_the_key(tmp_path: Path, smtp: dict[str, Any],
                                                  problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config_from_dict({"smtp": {"host": "mail.example.com", **smtp}}, base_dir=tmp_path)
    assert any(p.startswith(problem) for p in raised.value.problems), raised.value.problems


def test_smtp_port_follows_security_unless_given() -> None:
    ports = [config_from_dict({"smtp": {"host": "m", "security": s}}).smtp.effective_port
             for s in ("none", "starttls", "tls")]
    assert ports == [25, 587, 465]
    assert config_from_dict({"smtp": {"host": "m", "port": 2525}}).smtp.effective_port == 2525
