"""Listening live to a call in progress through the portal, over HTTP against a real
in-process recorder on the synthetic board: the stream carries exactly the audio the file gets,
a blackout as silence, within a bounded delay; it ends with the recording; a listener who may
not hear it is refused, and one that stops reading is dropped while the recording goes on."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from recorder.api.portal import listen
from recorder.app import Recorder
from tests.helpers.api import ApiConnection
from tests.helpers.portal import (
    PortalClient,
    add_recording,
    add_user,
    api_fixture,
    call_in_progress,
    portal_fixture,
    portal_port,
    signed_in,
)

RATE = 8000
LISTENER = ("ALLOWLIVEMONITOR", "ALLOWVIEWALLRECORDS")


portal = portal_fixture()
api = api_fixture()



def open_stream(client: PortalClient, ident: int) -> tuple[http.client.HTTPConnection,
                                                           http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=10)
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    conn.request("GET", f"/recordings/{ident}/live", headers={"Cookie": cookies})
    return conn, conn.getresponse()


def file_samples(path: Path) -> npt.NDArray[np.int16]:
    with wave.open(str(path), "rb") as f:
        assert f.getframerate() == RATE
        assert f.getnchannels() == 1
        return np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")


def offset_in(haystack: npt.NDArray[np.int16], needle: npt.NDArray[np.int16]) -> int:
    """Where ``needle`` (its first 200 samples) begins in ``haystack``; -1 if nowhere."""
    head = needle[:200]
    for i in np.flatnonzero(haystack[:len(haystack) - len(head) + 1] == head[0]):
        if np.array_equal(haystack[i:i + len(head)], head):
            return int(i)
    return -1


def longest_zero_run(samples: npt.NDArray[np.int16]) -> int:
    padded = np.concatenate(([1], samples, [1])) != 0
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return int(np.max(np.diff(edges)[::2])) if len(edges) else 0


@pytest.mark.slow  # listens to 4.5 s of a live call
def test_listening_live_hears_the_files_audio_and_its_blackout_within_two_seconds(
        portal: Recorder, api: ApiConnection) -> None:
    assert portal.scheduler is not None
    client = signed_in(portal, "lee", LISTENER)
    api.request("CALLSTART", 1, DEVICEID="1003", ANI="live-1")
    ident = call_in_progress(portal, "1003")
    session = portal.scheduler.status.live_session(ident)
    assert session is not None
    channel = session.channel
    conn, response = open_stream(client, ident)
    try:
        assert response.status == 200
        assert response.headers["Content-Type"] == "audio/wav"
        header = response.read(44)
        assert header[:4] == b"RIFF"
        assert header[8:16] == b"WAVEfmt "
        assert struct.unpack("<HHI", header[20:28]) == (1, 1, RATE)  # PCM, mono, 8 kHz
        received = bytearray()
        # (bytes received by then, the capture position when they had arrived)
        arrivals: list[tuple[int, int]] = []
        started = time.monotonic()
        blackout = (1.5, 3.0)  # seconds into the stream: BLACKOUTSTART, BLACKOUTSTOP
        sent: list[str] = []
        while time.monotonic() - started < 4.5:
            received += response.read(800)  # 50 ms of audio
            arrivals.append((len(received), channel.position))
            elapsed = time.monotonic() - started
            if elapsed > blackout[0] and not sent:
                api.request("BLACKOUTSTART", 2, DEVICEID="1003")
                sent.append("start")
            elif elapsed > blackout[1] and len(sent) == 1:
                api.request("BLACKOUTSTOP", 3, DEVICEID="1003")
                sent.append("stop")
        api.request("CALLSTOP", 4, DEVICEID="1003")
        # The stream ends with the recording (the body's end, not a timeout).
        received += response.read()
    finally:
        conn.close()
    assert portal.store is not None
    row = portal.store.recordings.get_recording(ident)
    assert row is not None
    assert row.stop_time is not None
    stored = file_samples(Path(row.filename))
    heard = np.frombuffer(bytes(received), dtype="<i2")
    offset = offset_in(stored, heard)
    assert offset >= 0, "the stream's audio is not the recording's"
    # Exactly what the file holds, from where the listener came in to the recording's end.
    assert np.array_equal(heard, stored[offset:])
    # The blackout is silence in both (about 1.5 s of it), and the call is heard around it.
    assert 1.0 * RATE < longest_zero_run(heard) < 2.2 * RATE
    assert np.count_nonzero(heard[:RATE]) > 0.9 * RATE
    assert np.count_nonzero(heard[-RATE:]) > 0.9 * RATE
    # The delay: how far the capture was past the last sample received, at each arrival.
    first = session.start + offset
    delays = [(position - (first + count // 2)) / RATE for count, position in arrivals]
    assert max(delays) < 2.0, delays
    assert min(delays) >= 0.0  # nothing arrives before it was captured (the positions agree)


def test_who_may_not_listen_is_refused_and_a_finished_recording_is_not_live(
        portal: Recorder, api: ApiConnection) -> None:
    user_id = add_user(portal, "own", ("ALLOWLIVEMONITOR", "VIEWOWNRECORDS"))
    own = PortalClient(portal_port(portal))
    assert own.sign_in("own").status == 303
    nolive = signed_in(portal, "nolive", ("ALLOWVIEWALLRECORDS",))
    listener = signed_in(portal, "lis", LISTENER)
    api.request("CALLSTART", 1, DEVICEID="1004")
    try:
        ident = call_in_progress(portal, "1004")
        refused = nolive.get(f"/recordings/{ident}/live")
        assert refused.status == 403
        assert b"RIFF" not in refused.body
        assert "ALLOWLIVEMONITOR" in refused.text
        # VIEWOWNRECORDS: another agent's call is as if it were not there.
        hidden = own.get(f"/recordings/{ident}/live")
        assert hidden.status == 404
        assert b"RIFF" not in hidden.body
        assert f'<button type="button" data-listen="{ident}">Listen</button>' in \
            own.get("/live").text
        # The meters without seeing recordings: no Listen button, and the audio refused.
        meters = signed_in(portal, "meters", ("ALLOWLIVEMONITOR",))
        page = meters.get("/live")
        assert page.status == 200
        assert "Listen</button>" not in page.text
        assert meters.get(f"/recordings/{ident}/live").status == 403
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1004")
    done, _ = add_recording(portal, agent_id=user_id)
    finished = listener.get(f"/recordings/{done}/live")
    assert finished.status == 404
    assert "not in progress" in finished.text
    assert portal.store is not None
    assert portal.store.audit is not None
    from recorder.store.audit import AuditQuery  # noqa: PLC0415

    heard = portal.store.audit.list_audit(AuditQuery(action="listen"))
    assert {e.username for e in heard} <= {"lee"}  # refusals are not listenings


@pytest.mark.slow  # waits in real time for the listener to fall a second behind
def test_a_listener_that_stops_reading_is_dropped_and_the_recording_goes_on(
        portal: Recorder, api: ApiConnection, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(listen, "MAX_LAG_SECONDS", 1.0)
    monkeypatch.setattr(listen, "SEND_BUFFER_BYTES", 4096)
    monkeypatch.setattr(listen, "WRITE_BUFFER_BYTES", 4096)
    client = signed_in(portal, "slow", LISTENER)
    api.request("CALLSTART", 1, DEVICEID="1002")
    try:
        ident = call_in_progress(portal, "1002")
        sock = socket.socket()
        # A browser that has stopped reading: a small receive window, and nothing read.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(15)
        sock.connect(("127.0.0.1", client.port))
        cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
        caplog.set_level(logging.INFO, logger="recorder.api.portal.listen")
        sock.sendall(f"GET /recordings/{ident}/live HTTP/1.1\r\nHost: x\r\n"
                     f"Cookie: {cookies}\r\n\r\n".encode())
        ends = time.monotonic() + 12
        while time.monotonic() < ends and "dropped a live listener" not in caplog.text:
            time.sleep(0.1)
        assert "dropped a live listener" in caplog.text
        # The server has let go of it: reading now finds the end of the connection.
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass  # aborted: what its buffers held is gone too
        sock.close()
        assert len(got) < 16000 * 6  # it never got everything the call had
        # The recording did not wait for it: its audio kept up with the line.
        session = portal.scheduler.status.live_session(ident) if portal.scheduler else None
        assert session is not None
        time.sleep(0.5)
        behind = session.channel.position - (session.start + session.writer.frames)
        assert behind < 0.5 * RATE
        assert session.lost_samples == 0
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1002")


def read_until_closed(response: http.client.HTTPResponse, timeout: float) -> float:
    """Read the stream until the server ends it; the seconds that took (fails at timeout)."""
    began = time.monotonic()
    try:
        while response.read(800):
            assert time.monotonic() - began < timeout, "the stream went on"
    except (ConnectionResetError, http.client.IncompleteRead):
        pass  # aborted by the server: the end too
    return time.monotonic() - began


def test_a_revoked_permission_or_a_deleted_user_ends_the_listening(
        portal: Recorder, api: ApiConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listen, "SESSION_CHECK_SECONDS", 0.5)
    assert portal.store is not None
    directory = portal.store.directory
    revoked = signed_in(portal, "rev", LISTENER)
    deleted = signed_in(portal, "del", LISTENER)
    kept = signed_in(portal, "kept", LISTENER)
    api.request("CALLSTART", 1, DEVICEID="1001")
    try:
        ident = call_in_progress(portal, "1001")
        streams = {name: open_stream(client, ident)
                   for name, client in (("rev", revoked), ("del", deleted), ("kept", kept))}
        for _, response in streams.values():
            assert response.status == 200
            assert response.read(44 + 1600)[:4] == b"RIFF"
        (user,) = [u for u in directory.list_users() if u.username == "rev"]
        (role,) = directory.user_roles(user.user_id)
        directory.set_role_permission(role.role_id, "ALLOWLIVEMONITOR", False)
        (gone,) = [u for u in directory.list_users() if u.username == "del"]
        directory.delete_user(gone.user_id, now=time.time())
        assert read_until_closed(streams["rev"][1], 5.0) < 5.0
        assert read_until_closed(streams["del"][1], 5.0) < 5.0
        # The one still allowed goes on hearing the call.
        assert len(streams["kept"][1].read(16000)) == 16000
    finally:
        api.request("CALLSTOP", 2, DEVICEID="1001")
        for conn, _ in streams.values():
            conn.close()
