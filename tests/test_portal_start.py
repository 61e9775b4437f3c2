"""The portal as a stage of the recorder: off by default, what it logs at start, HTTPS with
Secure cookies, and a port it cannot have named in the error."""

from __future__ import annotations

import http.client
import logging
import socket
import time
from pathlib import Path

import pytest

from recorder.api.portal.sessions import SESSION_COOKIE
from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.errors import StartupError
from tests.helpers.net import self_signed
from tests.helpers.portal import (
    PortalClient,
    add_recording,
    add_user,
    portal_port,
    portal_recorder,
)
from tests.helpers.recorders import base_config


def test_the_portal_is_off_unless_enabled_and_says_how_to_turn_it_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    recorder = Recorder(config_from_dict(base_config(tmp_path), base_dir=tmp_path))
    recorder.start()
    try:
        assert recorder.portal is None
        assert "[portal] enabled = true turns it on" in caplog.text
        assert not (tmp_path / "data" / "portal-key").exists()
    finally:
        recorder.stop()


def test_a_first_start_tells_how_to_make_the_first_administrator(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    recorder = portal_recorder(tmp_path)
    try:
        assert "recorderctl user add --admin USERNAME" in caplog.text
        assert recorder.portal is not None
        assert "portal listening on http://127.0.0.1:" in caplog.text
    finally:
        recorder.stop()


def test_under_https_the_session_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    recorder = portal_recorder(tmp_path, tls_cert=str(cert), tls_key=str(key))
    try:
        add_user(recorder, "tess", ("ALLOWVIEWALLRECORDS",))
        client = PortalClient(portal_port(recorder), tls=True)
        answer = client.sign_in("tess")
        assert answer.status == 303
        cookie = next(c for c in answer.headers.get_all("Set-Cookie") or []
                      if c.startswith(SESSION_COOKIE))
        assert "Secure" in cookie
        assert client.get("/recordings").status == 200
        with pytest.raises((http.client.HTTPException, ConnectionError)):  # HTTPS only
            PortalClient(portal_port(recorder)).get("/signin")
    finally:
        recorder.stop()


def test_a_port_already_taken_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = config_from_dict(base_config(tmp_path, portal={"enabled": True,
                                                                "port": port}),
                                  base_dir=tmp_path)
        recorder = Recorder(config)
        with pytest.raises(StartupError,
                           match=f"portal.port: cannot listen on 127.0.0.1:{port}") as failed:
            recorder.start()
        assert failed.value.port_busy  # so recorderd retries it (core.bind_retry_seconds)
    assert recorder.api is not None
    assert not recorder.api.alive  # every stage that had started was stopped


def test_max_clients_counts_a_stream_until_it_has_gone(tmp_path: Path) -> None:
    recorder = portal_recorder(tmp_path, max_clients=1)
    try:
        add_user(recorder, "max", ("ALLOWVIEWALLRECORDS",))
        # 16 MB: more than the socket buffers hold, so the stream waits for its reader.
        ident, _ = add_recording(recorder, agent_id=None, seconds=1000)
        client = PortalClient(portal_port(recorder))
        client.sign_in("max")
        cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        with socket.create_connection(("127.0.0.1", portal_port(recorder))) as stalled:
            stalled.sendall(f"GET /recordings/{ident}/audio HTTP/1.1\r\nHost: x\r\n"
                            f"Cookie: {cookie}\r\n\r\n".encode())
            assert stalled.recv(12) == b"HTTP/1.1 200"  # and reads no more
            busy = client.get("/recordings")
            assert busy.status == 503
        deadline = time.monotonic() + 10
        while client.get("/recordings").status == 503:  # the place comes back
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        recorder.stop()


def test_health_watches_the_portals_event_loop(tmp_path: Path) -> None:
    recorder = portal_recorder(tmp_path)
    try:
        assert recorder.portal is not None
        time.sleep(0.6)  # a few heartbeats
        assert recorder.health() == []
        recorder.portal.stop()
        assert recorder.portal.join(10)
        assert recorder.health() == ["portal event loop has stopped: its thread is not running"]
    finally:
        recorder.stop()
