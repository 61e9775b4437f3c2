"""The [smtp] promises no other test held the mailer to: ``smtp.timeout_seconds`` (a server that
takes the connection and never answers is given up on after that long, and EMAIL answers 31
saying so) and the default ``smtp.sender`` (recorder@<host name>). A real aiosmtpd server and
a real silent one, on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.helpers.api import expect
from tests.helpers.net import smtp_server
from tests.helpers.recorders import IN_PROCESS_AND_RECORDERD, Running
from tests.helpers.waiting import wait_for

API = {"socket_port": 0, "web_port": 0}


def one_recording(running: Running) -> str:
    """A short call on 1001, recorded; its RECORDID."""
    conn = running.connect()
    try:
        expect(conn.request("CALLSTART", 1, deviceid="1001"), 20)
        time.sleep(0.3)
        expect(conn.request("CALLSTOP", 2, deviceid="1001"), 20)
        found = conn.request("CALLLIST", 3, deviceid="1001", callcount=1)
        return found.findtext("SEARCHRESULT/RECORDID") or ""
    finally:
        conn.close()


@contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A server that accepts connections and never says a word (no SMTP greeting): its port,
    and the connections it holds."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1]), held
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_a_mail_server_that_never_answers_is_given_up_after_timeout_seconds(
        start_recorder: Any) -> None:
    with silent_server() as (port, held):
        running = start_recorder(api=API, smtp={"host": "127.0.0.1", "port": port,
                                                "timeout_seconds": 1})
        ident = one_recording(running)
        conn = running.connect()  # its own timeout, 10 s: the default 30 s would break it
        try:
            began = time.monotonic()
            result = conn.request("EMAIL", 4, ident=ident, toaddress="ops@example.com",
                                  media_format="wav")
            took = time.monotonic() - began
        finally:
            conn.close()
        expect(result, 31, f"cannot reach the mail server 127.0.0.1:{port} (none): "
                           "no answer in time")
        assert held, "the recorder never connected"
        assert took >= 0.9, f"gave up after {took:.2f} s, before smtp.timeout_seconds"


@dataclass
class Envelopes:
    """An aiosmtpd handler keeping each message's envelope sender and From header."""

    received: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        assert isinstance(content, bytes)
        header = next(line for line in content.decode().splitlines()
                      if line.lower().startswith("from:"))
        self.received.append((str(envelope.mail_from), header.split(":", 1)[1].strip()))
        return "250 Message accepted for delivery"


def mail_from_default_sender(start_recorder: Any) -> tuple[str, str]:
    """What a recorder with no smtp.sender sends as: (envelope sender, From)."""
    mailbox = Envelopes()
    with smtp_server(mailbox) as port:
        running = start_recorder(api=API, smtp={"host": "127.0.0.1", "port": port})
        ident = one_recording(running)
        expect(running.request("EMAIL", 5, ident=ident, toaddress="ops@example.com",
                               media_format="wav"), 20)
        wait_for(lambda: mailbox.received, 10, what="the message")
    (sent,) = mailbox.received
    return sent


@IN_PROCESS_AND_RECORDERD
def test_the_default_sender_is_recorder_at_the_host_name(start_recorder: Any) -> None:
    expected = f"recorder@{socket.gethostname()}"
    assert mail_from_default_sender(start_recorder) == (expected, expected)


def test_the_default_sender_follows_the_host_name(start_recorder: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Another host name than this machine's: the sender is made from it, not from a constant.
    monkeypatch.setattr(socket, "gethostname", lambda: "pbx-7.example.net")
    assert mail_from_default_sender(start_recorder) == ("recorder@pbx-7.example.net",
                                                        "recorder@pbx-7.example.net")
