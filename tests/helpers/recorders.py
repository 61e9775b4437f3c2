"""A recorder under test: its configuration, ``recorderd`` as a real process, and ``Running``,
where a started recorder's APIs listen and its data lives."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from recorder.app import Recorder
from recorder.config.loader import config_from_dict
from recorder.config.model import Config
from recorder.config.printing import to_toml
from tests.helpers.api import ApiConnection

BIN = Path(sys.executable).parent

# The ``start_recorder`` fixture runs its recorder in this process. A test where the real
# process adds something (its sockets, signals, logging, exit status) asks for both variants;
# both, or the real process alone, are marked ``process`` by conftest.py.
IN_PROCESS_AND_RECORDERD = pytest.mark.parametrize(
    "start_recorder", ["in-process", "recorderd"], indirect=True)
RECORDERD_ONLY = pytest.mark.parametrize("start_recorder", ["recorderd"], indirect=True)


@dataclass
class Running:
    """A recorder under test: where its API listens and where its data lives."""

    socket_port: int
    web_port: int
    data_dir: Path
    recorder: Recorder | None = None
    process: RecorderProcess | None = None  # recorderd, when it runs as a process

    @property
    def pid(self) -> int | None:
        return self.process.proc.pid if self.process is not None else None

    def log(self) -> str:
        """What recorderd has logged so far (a process's only)."""
        assert self.process is not None, "only a recorderd process has a log to read"
        return self.process.log

    def connect(self, source: str | None = None) -> ApiConnection:
        """A socket API connection, from ``source`` (an address of 127.0.0.0/8) if given."""
        return ApiConnection(self.socket_port, source=source)

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

    def seconds_recorded(self, device: str) -> float:
        """Seconds of audio (pre-roll included) the recordings in progress on ``device`` have
        so far, by /status: the longest if several, 0 if none."""
        active = self.status()["active"] or []
        return max((float(a["seconds"]) for a in active if a["device"] == device), default=0.0)

    def wait_recorded(self, device: str, seconds: float, timeout: float = 30.0) -> float:
        """Wait until the call in progress on ``device`` has ``seconds`` of audio (pre-roll
        included) and return how many it has: a test then knows what the file must hold,
        however slowly a loaded machine captures, where sleeping would only hope so."""
        deadline = time.monotonic() + timeout
        while (got := self.seconds_recorded(device)) < seconds:
            assert time.monotonic() < deadline, \
                f"{device} recorded {got} s, not {seconds} s, within {timeout} s"
            time.sleep(0.05)
        return got

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


def start_in_process(tmp_path: Path, **sections: Any) -> Running:
    """A recorder started in this process on ``base_config(tmp_path, **sections)``; whoever
    asked stops ``running.recorder``."""
    config = config_from_dict(base_config(tmp_path, **sections), base_dir=tmp_path)
    recorder = Recorder(config)
    recorder.start()
    assert recorder.api is not None
    return Running(recorder.api.socket_address[1], recorder.api.web_address[1],
                   config.storage.data_dir, recorder)


@contextlib.contextmanager
def shared_recorder(tmp_path: Path, **sections: Any) -> Iterator[Running]:
    """An in-process recorder for a module-scoped fixture: one recorder for the tests of a
    module that leave it as they found it (what they read, requests it refuses), where one
    each was most of their time. Such a test checks it left nothing behind
    (``stored_rows``), so one that did fails there rather than a later test."""
    running = start_in_process(tmp_path, **sections)
    try:
        yield running
    finally:
        assert running.recorder is not None
        running.recorder.stop()


# What a request may change without changing what the recorder holds: the audit trail (which
# notes refusals too), and so SQLite's own table of the last ids given out.
AUDIT_TABLES = frozenset({"audit", "audit_anchor", "sqlite_sequence"})


def stored_rows(running: Running) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the recorder's database but the audit trail, read by a
    connection of its own: equal before and after a request that must change nothing."""
    with contextlib.closing(sqlite3.connect(running.data_dir / "recorder.sqlite3")) as db:
        tables = [name for (name,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if name not in AUDIT_TABLES]
        return {table: db.execute(f'SELECT * FROM "{table}" ORDER BY rowid').fetchall()
                for table in tables}


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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

    # Only a hang bound: on a loaded two-core machine recorderd has taken over 30 s to start.
    def wait_ready(self, timeout: float = 90.0) -> Running:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY.search(self.log):
                socket_port = SOCKET_PORT.search(self.log)
                web_port = WEB_PORT.search(self.log)
                assert socket_port, self.log
                assert web_port, self.log
                return Running(int(socket_port.group(1)), int(web_port.group(1)), Path(),
                               process=self)
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


def start_recorderd(tmp_path: Path, processes: list[RecorderProcess],
                    devices: tuple[str, ...] = ("1001",), storage: str = "",
                    api: str = "") -> tuple[Path, Path, Running]:
    """A real recorderd on a synthetic board, its data in ``tmp_path/data``, the configuration
    in ``tmp_path/r.toml`` (for the offline commands); (config, data_dir, running).
    ``storage`` and ``api`` are more of the [storage] and [api] tables, as TOML lines."""
    data = tmp_path / "data"
    listed = ", ".join(f'"{d}"' for d in devices)
    config = write_toml(tmp_path / "r.toml", f'[storage]\ndata_dir = "{data}"\n{storage}'
                        f'[api]\nsocket_port = 0\nweb_port = 0\n{api}[[boards]]\n'
                        f'driver = "synthetic"\ndevices = [{listed}]\n')
    proc = RecorderProcess(["--config", str(config)])
    processes.append(proc)
    running = proc.wait_ready()
    running.data_dir = data
    return config, data, running


@contextlib.contextmanager
def recorderd_of(config: Config, path: Path) -> Iterator[tuple[RecorderProcess, Running]]:
    """A real recorderd on ``config``, written as TOML to ``path``, while the block runs;
    killed at its end if it is still up (the test judged it already)."""
    proc = RecorderProcess(["--config", str(write_toml(path, to_toml(config)))])
    try:
        running = proc.wait_ready()
        running.data_dir = config.storage.data_dir
        yield proc, running
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(10)
