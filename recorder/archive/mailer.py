"""E-mail through the configured SMTP server ([smtp]): EMAIL and COMBINEDEMAIL send exports.

``Mailer.send`` connects for each message (a recorder sends a handful a day; a kept-open
connection would only time out between them), upgrades with STARTTLS or speaks TLS from the
first byte as configured, verifies the server's certificate, logs in when a username is set,
and maps every failure to one of two errors the API answers with the manual's codes: the server
missing, unreachable or refusing us (``MailUnavailable``, 31) or refusing an address
(``MailRefused``, 45).
"""

from __future__ import annotations

import logging
import re
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING

from recorder.codecs.stored import open_stored
from recorder.config.values import address_problem
from recorder.errors import RecorderError

if TYPE_CHECKING:
    from recorder.config.sections import SmtpConfig

logger = logging.getLogger(__name__)


class MailError(RecorderError):
    """A message could not be sent."""


class MailUnavailable(MailError):
    """No server configured, or it could not be reached, spoken to or logged in to."""


class MailRefused(MailError):
    """The server refused an address (the sender's or a recipient's)."""


def split_addresses(text: str) -> list[str]:
    """A TOADDRESS value as addresses: one, or several separated by "," or ";"."""
    return [part.strip() for part in re.split(r"[,;]", text) if part.strip()]


@dataclass(frozen=True)
class Attachment:
    """A file to attach, under the name the recipient sees."""

    path: Path
    filename: str
    content_type: str  # "audio/mpeg", "application/zip", ...


def build_message(sender: Address, recipients: Sequence[Address], subject: str, body: str,
                  attachments: Sequence[Attachment] = ()) -> EmailMessage:
    """A MIME message: text body, then the attachments base64-encoded."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = list(recipients)
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain=sender.domain or None)
    message.set_content(body)
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        # Through the opener: an attachment made from an encrypted recording is an encrypted
        # work file on disk (docs/encryption.md, "Work files"), plain only in the message.
        with open_stored(attachment.path) as made:
            data = made.read()
        message.add_attachment(data, maintype=maintype,
                               subtype=subtype or "octet-stream", filename=attachment.filename)
    return message


def default_sender() -> str:
    """recorder@<this host's name>, or recorder@localhost when the name is no mail domain."""
    address = f"recorder@{socket.gethostname()}"
    return address if address_problem(address) is None else "recorder@localhost"


class Mailer:
    """Sends messages through the [smtp] server; thread-safe (one connection per message)."""

    def __init__(self, config: SmtpConfig) -> None:
        self._config = config
        self.sender = Address(addr_spec=config.sender or default_sender())

    @property
    def configured(self) -> bool:
        return self._config.configured

    def describe(self) -> str:
        """Where mail goes, for log lines and error messages."""
        return f"{self._config.host}:{self._config.effective_port} ({self._config.security})"

    def send(self, message: EmailMessage) -> None:
        """Send ``message``; raises MailUnavailable or MailRefused."""
        config = self._config
        if not config.configured:
            raise MailUnavailable("no SMTP server is configured (smtp.host)")
        where = self.describe()
        context = ssl.create_default_context()
        try:
            client: smtplib.SMTP
            if config.security == "tls":
                client = smtplib.SMTP_SSL(config.host, config.effective_port,
                                          timeout=config.timeout_seconds, context=context)
            else:
                client = smtplib.SMTP(config.host, config.effective_port,
                                      timeout=config.timeout_seconds)
            with client:
                if config.security == "starttls":
                    client.starttls(context=context)
                if config.username:
                    client.login(config.username, config.password)
                refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailRefused("the mail server refused "
                              + _refusals(exc.recipients)) from exc
        except smtplib.SMTPSenderRefused as exc:
            raise MailRefused(f"the mail server refused the sender {exc.sender}: "
                              f"{exc.smtp_code} {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise MailUnavailable(f"the mail server {where} refused the login of "
                                  f"{config.username}: {exc.smtp_code} "
                                  f"{_text(exc.smtp_error)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise MailUnavailable(f"the mail server {where} does not offer {exc}") from exc
        except smtplib.SMTPResponseException as exc:
            raise MailUnavailable(f"the mail server {where} answered {exc.smtp_code} "
                                  f"{_text(exc.smtp_error)}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            # Refused connections, timeouts, unknown host names, TLS failures, dropped links.
            raise MailUnavailable(f"cannot reach the mail server {where}: "
                                  f"{_describe_os_error(exc)}") from exc
        if refused:
            raise MailRefused("sent to the other recipients, but the mail server refused "
                              + _refusals(refused))
        logger.info("mail %r sent through %s to %s", message["Subject"], where, message["To"])


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply)
                     in refused.items())


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _describe_os_error(exc: BaseException) -> str:
    # smtplib turns a read that timed out into SMTPServerDisconnected ("Connection
    # unexpectedly closed: timed out"), the timeout left as its context: the server did not
    # close anything, it said nothing within smtp.timeout_seconds.
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
