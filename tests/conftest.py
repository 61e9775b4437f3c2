"""Shared helpers: a recorder in-process or as a real process, and real API clients."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from lxml import etree

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.config.model import Config
from recorder.config.printing import to_toml

BIN = Path(sys.executable).parent


def request_xml(request_type: str, request_id: str | int | None = 1, **params: Any) -> bytes:
    """A one-line <REQUEST> with TYPE, REQUESTID and the given parameters (escaped)."""
    parts = [f"<TYPE>{escape(request_type)}</TYPE>"]
    if request_id is not None:
        parts.append(f"<REQUESTID>{escape(str(request_id))}</REQUESTID>")
    parts += [f"<{k.upper()}>{escape(str(v))}</{k.upper()}>" for k, v in params.items()]
    return ("<REQUEST>" + "".join(parts) + "</REQUEST>").encode()


def result_code(result: etree._Element) -> int:
    return int(result.findtext("RESULTCODE") or -1)


class ApiConnection:
    """One TCP connection to the socket API."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\r\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"connection closed; unanswered bytes: {self._buf!r}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\r\n", 1)
        return line

    def read_result(self) -> etree._Element:
        return etree.fromstring(self.read_line())

    def request(self, request_type: str, request_id: str | int | None = 1,
                **params: Any) -> etree._Element:
        self.send(request_xml(request_type, request_id, **params) + b"\r\n")
        return self.read_result()

    def close(self) -> None:
        self.sock.close()


@dataclass
class Running:
    """A recorder under test: where its API listens and where its data lives."""

    socket_port: int
    web_port: int
    data_dir: Path
    recorder: Recorder | None = None

    def connect(self) -> ApiConnection:
        return ApiConnection(self.socket_port)

    def request(self, request_type: str, request_id: str | int | None = 1,
                **params: Any) -> etree._Element:
        conn = self.connect()
        try:
            return conn.request(request_type, request_id, **params)
        finally:
            conn.close()

    def web(self, query: str, *, path: str = "/webAPI.aspx", method: str = "GET",
            body: bytes | None = None,
            content_type: str = "application/x-www-form-urlencoded") -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.web_port}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def status(self) -> dict[str, Any]:
        """The /status document."""
        code, body = self.web("", path="/status")
        assert code == 200, body
        return json.loads(body)  # type: ignore[no-any-return]

    def metric(self, sample: str) -> float:
        """One /metrics sample's value: a name, or a name with its labels as exported
        (``recorder_devices{kind="tracked"}``)."""
        code, body = self.web("", path="/metrics")
        assert code == 200, body
        found = re.search(rb"^" + re.escape(sample.encode()) + rb" (\S+)$", body, re.MULTILINE)
        assert found is not None, f"{sample} not in /metrics"
        return float(found.group(1))

    def web_result(self, **params: Any) -> etree._Element:
        status, body = self.web(urllib.parse.urlencode(params))
        assert status == 200, body
        return etree.fromstring(body)


def base_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A config document on free ports in ``tmp_path``; ``sections`` replace whole tables."""
    doc: dict[str, Any] = {
        "storage": {"data_dir": str(tmp_path / "data")},
        "api": {"socket_port": 0, "web_port": 0},
        "boards": [{"driver": "synthetic", "devices": ["1001", "1002", "1003", "1004"]}],
    }
    doc.update(sections)
    return doc


@pytest.fixture(params=["in-process", "recorderd"])
def start_recorder(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Start a recorder on free ports, in this process or as a real ``recorderd`` process.

    Tests that use it (or ``running``) run once against each, so the API is proven both ways.
    Every recorder is stopped after the test; a process must exit 0 with no traceback logged.
    """
    recorders: list[Recorder] = []
    procs: list[RecorderProcess] = []

    def start(**sections: Any) -> Running:
        config: Config = config_from_dict(base_config(tmp_path, **sections), base_dir=tmp_path)
        if request.param == "in-process":
            recorder = Recorder(config)
            recorder.start()
            recorders.append(recorder)
            assert recorder.api is not None
            return Running(recorder.api.socket_address[1], recorder.api.web_address[1],
                           config.storage.data_dir, recorder)
        path = write_toml(tmp_path / f"recorder{len(procs)}.toml", to_toml(config))
        proc = RecorderProcess(["--config", str(path)])
        procs.append(proc)
        running = proc.wait_ready()
        running.data_dir = config.storage.data_dir
        return running

    yield start
    for recorder in reversed(recorders):
        recorder.stop()
    for proc in reversed(procs):
        code = proc.stop()
        assert code == 0, proc.log
        assert "Traceback" not in proc.log, proc.log


@pytest.fixture
def running(start_recorder: Any) -> Running:
    return start_recorder()  # type: ignore[no-any-return]


READY = re.compile(r"recorderd ready")
SOCKET_PORT = re.compile(r"socket API listening on [^:]+:(\d+)")
WEB_PORT = re.compile(r"WebAPI listening on http://[^:]+:(\d+)/")


class RecorderProcess:
    """``recorderd`` as a real process (the installed console script), its log collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(BIN / "recorderd"), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_ready(self, timeout: float = 30.0) -> Running:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY.search(self.log):
                socket_port = SOCKET_PORT.search(self.log)
                web_port = WEB_PORT.search(self.log)
                assert socket_port, self.log
                assert web_port, self.log
                return Running(int(socket_port.group(1)), int(web_port.group(1)), Path())
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(f"recorderd exited {self.proc.returncode}:\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"recorderd not ready within {timeout} s:\n{self.log}")

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code


@pytest.fixture
def processes() -> Iterator[list[RecorderProcess]]:
    """Collects RecorderProcess objects and makes sure none outlives its test."""
    procs: list[RecorderProcess] = []
    yield procs
    for proc in procs:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)


def start_recorderd(tmp_path: Path, processes: list[RecorderProcess],
                    devices: tuple[str, ...] = ("1001",)) -> tuple[Path, Path, Running]:
    """A real recorderd on a synthetic board, its data in ``tmp_path/data``, the configuration
    in ``tmp_path/r.toml`` (for the offline commands); (config, data_dir, running)."""
    data = tmp_path / "data"
    listed = ", ".join(f'"{d}"' for d in devices)
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{data}"\n'
                        '[api]\nsocket_port = 0\nweb_port = 0\n[[boards]]\n'
                        f'driver = "synthetic"\ndevices = [{listed}]\n')
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    running.data_dir = data
    return config, data, running


def on_terminal(command: list[str], stream: str, env: dict[str, str] | None = None,
                ) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``command`` with its ``stream`` ("stdout" or "stderr") on a pseudo-terminal, the
    other captured; what the terminal received, decoded."""
    leader, follower = pty.openpty()
    terminal: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    terminal[stream] = follower
    try:
        proc = subprocess.run(command, env=env, timeout=60, check=False, text=True, **terminal)
        os.close(follower)
        output = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other end is closed and drained
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(leader)
    return proc, output.decode()


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def sox_info(path: str | Path) -> dict[str, str]:
    """What ``sox --i`` reports about a file: rate (-r), channels (-c), bits (-b), duration (-D)."""
    sox = shutil.which("sox")
    assert sox, "sox is required (apt-get install sox)"
    info = {}
    for flag in ("-r", "-c", "-b", "-D", "-e"):
        out = subprocess.run([sox, "--i", flag, str(path)], capture_output=True, text=True,
                             check=True)
        info[flag] = out.stdout.strip()
    return info
