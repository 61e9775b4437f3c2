"""The web portal under test: an in-process recorder with the portal on, users with the roles
a test asks for, recordings with real files, and a client that keeps its cookies the way a
browser would (without following redirects, so a test sees each answer)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import ssl
import time
import urllib.parse
import wave
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.store.audit import AuditEntry, AuditQuery
from recorder.store.directory import UserFields
from recorder.store.records import FinishedRecording, NewRecording
from tests.helpers.api import ApiConnection

PASSWORD = "correct horse battery"
# Test users' hashes use scrypt at N=2^10 instead of 2^14: the portal checks a password with
# the parameters its stored hash names, so the check is the same code, 16 times cheaper on
# a machine the whole suite shares.
CHEAP_N = 2**10


def cheap_hash(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=CHEAP_N, r=8, p=1, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${CHEAP_N}$8$1${b64(salt).decode()}${b64(digest).decode()}"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def location(self) -> str:
        return self.headers.get("Location", "")


@dataclass
class PortalClient:
    """One browser: its cookies, sent back to the portal it got them from."""

    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    tls: bool = False  # HTTPS, the portal's self-signed certificate accepted

    def request(self, method: str, path: str, form: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None) -> Answer:
        conn: http.client.HTTPConnection
        if self.tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=10,
                                               context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True).encode()
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            conn.request(method, path, body=body, headers=sent)
            response = conn.getresponse()
            answer = Answer(response.status, response.headers, response.read())
        finally:
            conn.close()
        for header in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or morsel.value == "":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return answer

    def first_event(self, path: str) -> tuple[int, bytes]:
        """An event stream's status and what it sends up to its first data event (or the
        whole body of a refusal), without waiting for the stream to end."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        cookies = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request("GET", path, headers={"Cookie": cookies} if cookies else {})
            response = conn.getresponse()
            if response.status != 200:
                return response.status, response.read()
            body = b""
            while b"data: " not in body or not body.endswith(b"\n\n"):
                line = response.fp.readline()
                if not line:
                    break
                body += line
            return response.status, body
        finally:
            conn.close()

    def first_bytes(self, path: str, count: int) -> tuple[int, bytes]:
        """A stream's status and its first ``count`` bytes (or the whole body of a refusal),
        without waiting for the stream to end."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        cookies = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            conn.request("GET", path, headers={"Cookie": cookies} if cookies else {})
            response = conn.getresponse()
            if response.status != 200:
                return response.status, response.read()
            return response.status, response.read(count)
        finally:
            conn.close()

    def get(self, path: str, **headers: str) -> Answer:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: Mapping[str, Any]) -> Answer:
        return self.request("POST", path, form=form)

    def csrf(self, path: str = "/") -> str:
        """The CSRF token of a page's forms (following its redirects)."""
        answer = self.get(path)
        for _ in range(3):
            if answer.status != 303:
                break
            answer = self.get(answer.location)
        found = _CSRF.search(answer.text)
        assert found is not None, f"no form on {path}"
        return found.group(1)

    def sign_in(self, username: str, password: str = PASSWORD) -> Answer:
        page = self.get("/signin")
        found = _CSRF.search(page.text)
        assert found is not None, page.text
        return self.post("/signin", {"username": username, "password": password,
                                     "csrf": found.group(1), "next": "/"})


def portal_port(recorder: Recorder) -> int:
    assert recorder.portal is not None
    return recorder.portal.address[1]


def client_of(recorder: Recorder) -> PortalClient:
    """A new browser, not signed in, for ``recorder``'s portal."""
    return PortalClient(portal_port(recorder))


def audited(recorder: Recorder, **query: object) -> list[AuditEntry]:
    """The audit trail's entries that ``query`` (an AuditQuery's fields) finds, newest first."""
    assert recorder.store is not None
    assert recorder.store.audit is not None
    return recorder.store.audit.list_audit(AuditQuery(**query))  # type: ignore[arg-type]


def add_user(recorder: Recorder, username: str, permissions: Collection[str], *,
             password: str = PASSWORD, first: str = "", last: str = "Agent") -> int:
    """A user with a role of their own holding ``permissions``; their USERID."""
    assert recorder.store is not None
    directory = recorder.store.directory
    user_id = directory.add_user(UserFields(
        username=username, first_name=first or username, last_name=last,
        password_hash=cheap_hash(password)), now=time.time())
    role = directory.add_role(f"role of {username}", "")
    assert role is not None
    for permission in permissions:
        directory.set_role_permission(role.role_id, permission, True)
    directory.set_user_role(user_id, role.role_id, True)
    return user_id


def add_recording(recorder: Recorder, *, agent_id: int | None, seconds: float = 1.0,
                  meta: Mapping[str, str] | None = None, device: str = "1001",
                  keep_days: int | None = None, start: float | None = None,
                  media_format: str = "wav", samples: Any = None) -> tuple[int, Path]:
    """A complete recording with a real 8 kHz file (PCM WAV, or converted from one to
    ``media_format``); its RECORDID and file. ``samples``: its audio, an int16 array of
    (frames, channels), instead of a pattern."""
    assert recorder.store is not None
    recordings_dir = recorder.config.storage.recordings_dir
    start = time.time() - 60 if start is None else start
    frames = round(seconds * 8000) if samples is None else len(samples)
    seconds = frames / 8000
    path = recordings_dir / "portal" / f"{device}-{time.monotonic_ns()}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1 if samples is None else samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(8000)
        pattern = bytes((i * 7) % 256 for i in range(256))
        out.writeframes((pattern * (frames * 2 // 256 + 1))[:frames * 2] if samples is None
                        else samples.astype("<i2").tobytes())
    if media_format != "wav":
        from recorder.codecs.convert import convert  # noqa: PLC0415
        from recorder.codecs.formats import file_extension  # noqa: PLC0415

        stored = path.with_suffix("." + file_extension(media_format))
        convert(path, stored.open("wb"), media_format, source_format="wav")
        path.unlink()
        path = stored
    store = recorder.store.recordings
    ident = store.insert_recording(NewRecording(
        device_id=device, call_instance="", channel=0, filename=str(path),
        media_format=media_format,
        sample_rate=8000, start_time=start, core_ident=1, meta=dict(meta or {}),
        keep_days=keep_days, agent_id=agent_id if agent_id is not None else -1))
    store.finish_recording(ident, FinishedRecording(
        stop_time=start + seconds, duration=seconds, audio_size=path.stat().st_size,
        audio_hash="", stop_reason="callstop"))
    return ident, path


def signed_in(recorder: Recorder, name: str, permissions: Collection[str]) -> PortalClient:
    """A new user ``name`` holding ``permissions``, signed in to the portal."""
    add_user(recorder, name, permissions)
    client = PortalClient(portal_port(recorder))
    assert client.sign_in(name).status == 303
    return client


def portal_recorder(tmp: Path, **portal: object) -> Recorder:
    """An in-process recorder in ``tmp`` with the portal on a free port, started; ``portal``
    is more of the [portal] table."""
    from recorder.config.loader import config_from_dict  # noqa: PLC0415
    from tests.helpers.recorders import base_config  # noqa: PLC0415

    config = config_from_dict(base_config(tmp, portal={"enabled": True, "port": 0, **portal}),
                              base_dir=tmp)
    recorder = Recorder(config)
    recorder.start()
    return recorder


def portal_fixture(*, after: Callable[[], None] | None = None, **portal: object) -> Any:
    """A module's ``portal`` fixture: ``portal_recorder`` for the module's tests, sign-ins not
    throttled unless ``portal`` (more of the [portal] table) says so; ``after`` runs once it
    has stopped. A module takes it as ``portal = portal_fixture(...)``: a fixture of its own,
    which runs with --noconftest too (scripts/mutation)."""
    options = {"signin_attempts_per_minute": 10000, **portal}

    @pytest.fixture(scope="module", name="portal")
    def portal_(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
        recorder = portal_recorder(tmp_path_factory.mktemp("portal"), **options)
        yield recorder
        recorder.stop()
        if after is not None:
            after()
    return portal_


def api_fixture() -> Any:
    """A module's ``api`` fixture: one socket API connection to its ``portal``."""
    @pytest.fixture(scope="module", name="api")
    def api_(portal: Recorder) -> Iterator[ApiConnection]:
        assert portal.api is not None
        conn = ApiConnection(portal.api.socket_address[1])
        yield conn
        conn.close()
    return api_


def call_in_progress(recorder: Recorder, device: str, timeout: float = 5.0) -> int:
    """The RECORDID of the recording in progress on ``device`` (once its row is written)."""
    assert recorder.scheduler is not None
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        for found in recorder.scheduler.status.in_progress() or []:
            if found.device_id == device and found.record_id is not None:
                return found.record_id
        time.sleep(0.02)
    raise AssertionError(f"no recording in progress on {device}")
