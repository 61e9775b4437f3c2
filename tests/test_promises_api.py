"""Documented promises of the API and of ``recorderctl`` that no other test held the code to:
``api.idle_timeout_seconds`` (its default, and 0 = never), ``api.calllist_max_rows``,
``recorderctl status`` exiting 1 for a board that is down, ``recorderctl export`` exiting 3
when the transfer breaks off, and digital silence read as -inf. Real recorders, real sockets
on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from tests.helpers.api import ApiConnection, expect, fields, result_code
from tests.helpers.ctl import recorderctl
from tests.helpers.exports import tone
from tests.helpers.modem_emulator import ModemEmulator
from tests.helpers.recorders import (
    IN_PROCESS_AND_RECORDERD,
    RecorderProcess,
    Running,
    write_toml,
)
from tests.helpers.waiting import wait_for

WAIT = 15.0
DEFAULT_IDLE_SECONDS = 300.0  # README, docs/api-notes.md (Limits): idle_timeout_seconds (300)


# --- idle connections: the default limit, and 0 = never --------------------------------------

def advance_loop_clock(running: Running, seconds: float) -> None:
    """Move the API event loop's clock ``seconds`` ahead, so its timers due within them fire now.

    The socket server times idle connections on ``loop.time()``; jumping that clock (rather
    than the wall clock, or sleeping five minutes) makes "past the 300 s default" take no
    time, with the real server, its real timers and real sockets.
    """
    assert running.recorder is not None
    assert running.recorder.api is not None
    loop = running.recorder.api.loop
    assert loop is not None
    base = loop.time

    def later() -> float:
        return base() + seconds

    # An instance attribute shadows the method; the loop reads it on its next turn, which the
    # no-op callback brings about at once.
    loop.time = later  # type: ignore[method-assign]
    loop.call_soon_threadsafe(lambda: None)


def still_open(conn: ApiConnection) -> bool:
    """Whether the server has not closed ``conn`` (nothing is read from it)."""
    readable, _, _ = select.select([conn.sock], [], [], 0)
    if not readable:
        return True
    return conn.sock.recv(1, socket.MSG_PEEK) != b""


def round_trip(running: Running) -> None:
    """A request on a new connection: the loop has turned (and run its due timers) since."""
    assert result_code(running.request("TEST", 7)) == 20


def test_an_idle_connection_is_closed_at_the_default_limit_and_not_before(
        start_recorder: Any) -> None:
    running = start_recorder()  # idle_timeout_seconds not set: the documented 300 s
    conn = running.connect()
    try:
        assert result_code(conn.request("TEST", 1)) == 20
        advance_loop_clock(running, DEFAULT_IDLE_SECONDS - 10)
        round_trip(running)
        time.sleep(0.2)
        assert still_open(conn), "closed before the default idle limit"
        advance_loop_clock(running, DEFAULT_IDLE_SECONDS + 5)  # from the start: 305 s
        conn.sock.settimeout(WAIT)
        assert conn.sock.recv(65536) == b""  # closed without an answer, as documented
    finally:
        conn.close()
    round_trip(running)


def test_idle_timeout_0_never_closes_a_silent_client(start_recorder: Any) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "idle_timeout_seconds": 0})
    conn = running.connect()
    try:
        assert result_code(conn.request("TEST", 1)) == 20
        # An hour: past the default idle limit and the longest message deadline alike.
        advance_loop_clock(running, 3600)
        round_trip(running)
        time.sleep(0.3)
        assert still_open(conn)
        assert result_code(conn.request("TEST", 2)) == 20
    finally:
        conn.close()


# --- CALLLIST's cap -----------------------------------------------------------------------------

@IN_PROCESS_AND_RECORDERD
def test_calllist_never_answers_more_than_calllist_max_rows(start_recorder: Any) -> None:
    running = start_recorder(api={"socket_port": 0, "web_port": 0, "calllist_max_rows": 3})
    conn = running.connect()
    try:
        for n in range(5):  # five short recordings on one line, RECORDIDs 1 to 5
            expect(conn.request("CALLSTART", n, deviceid="1001"), 20)
            expect(conn.request("CALLSTOP", n, deviceid="1001"), 20)
        newest = ["5", "4", "3"]
        for params, message in (
            ({}, "API_OK"),  # no CALLCOUNT: the cap
            ({"callcount": 100}, "showing the newest 3 calls (api.calllist_max_rows)"),
        ):
            result = expect(conn.request("CALLLIST", 9, **params), 20, message)
            ids = [fields(r)["RECORDID"] for r in result.findall("SEARCHRESULT")]
            assert ids == newest
        # Below the cap CALLCOUNT decides, and says nothing of the cap.
        result = expect(conn.request("CALLLIST", 10, callcount=2), 20, "API_OK")
        assert [fields(r)["RECORDID"] for r in result.findall("SEARCHRESULT")] == ["5", "4"]
    finally:
        conn.close()
    done = recorderctl(running, "calls", "--limit", "50", "--json")
    assert done.returncode == 0, done.stderr
    assert [row["RECORDID"] for row in json.loads(done.stdout)] == ["5", "4", "3"]


# --- recorderctl status: a board down is exit 1 ---------------------------------------------

@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[ModemEmulator]:
    with ModemEmulator(tmp_path / "modem") as modem:
        yield modem


def board_state(running: Running, name: str) -> str:
    (board,) = [b for b in running.status()["boards"] if b["name"] == name]
    return str(board["state"])


@pytest.mark.slow
@pytest.mark.process  # starts recorderd itself
def test_status_exits_1_while_a_board_is_down_and_0_once_it_is_back(
        tmp_path: Path, emulator: ModemEmulator) -> None:
    config = write_toml(tmp_path / "r.toml", f"""
[storage]
data_dir = "{tmp_path / 'data'}"
[api]
socket_port = 0
web_port = 0
[[boards]]
driver = "synthetic"
devices = ["1001"]
[[boards]]
driver = "voicemodem"
port = "{emulator.port}"
devices = ["4001"]
reopen_max_seconds = 0.5
""")
    proc = RecorderProcess(["--config", str(config)])
    try:
        running = proc.wait_ready()
        healthy = recorderctl(running, "status")
        assert healthy.returncode == 0, healthy.stdout + healthy.stderr
        emulator.lose()  # the modem's cable pulled: its board reopens it, and cannot
        wait_for(lambda: board_state(running, "boards[1]") != "running", WAIT,
                 what="boards[1] to be down")
        down = recorderctl(running, "status")
        assert down.returncode == 1, down.stdout + down.stderr
        assert "health:     UNHEALTHY" in down.stdout
        assert any(line.startswith("  - boards[1] (voicemodem) is ")
                   for line in down.stdout.splitlines()), down.stdout
        assert json.loads(recorderctl(running, "status", "--json").stdout)["boards"][1][
            "state"] != "running"
        emulator.restore()
        wait_for(lambda: board_state(running, "boards[1]") == "running", WAIT,
                 what="boards[1] to run again")
        again = recorderctl(running, "status")
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        code = proc.stop()
    assert code == 0, proc.log


# --- recorderctl export: a transfer that breaks off is exit 3 ------------------------------

@contextlib.contextmanager
def cutting_proxy(upstream_port: int, cut_after: int) -> Iterator[int]:
    """A TCP proxy on 127.0.0.1 in front of ``upstream_port``: the client's bytes pass whole,
    the server's only up to ``cut_after``, then both connections close. Its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def pipe(client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", upstream_port)) as upstream:
            passed = 0
            while passed < cut_after and not stop.is_set():
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        return
                    upstream.sendall(data)
                if upstream in readable:
                    data = upstream.recv(min(65536, cut_after - passed))
                    if not data:
                        return
                    client.sendall(data)
                    passed += len(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=pipe, args=(client,), daemon=True).start()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        server.join(5)
        listener.close()


@pytest.mark.slow
@IN_PROCESS_AND_RECORDERD
def test_export_exits_3_when_the_transfer_breaks_off_and_leaves_no_file(
        start_recorder: Any, tmp_path: Path) -> None:
    running = start_recorder()
    conn = running.connect()
    try:
        expect(conn.request("CALLSTART", 1, deviceid="1001"), 20)
        time.sleep(1.5)
        expect(conn.request("CALLSTOP", 2, deviceid="1001"), 20)
    finally:
        conn.close()
    whole = tmp_path / "whole.wav"
    done = recorderctl(running, "export", "1", "-o", whole)
    assert done.returncode == 0, done.stderr
    size = whole.stat().st_size
    assert size > 20000  # 1.5 s and more of 8 kHz 16-bit PCM
    target = tmp_path / "call.wav"
    with cutting_proxy(running.web_port, cut_after=8000) as port:
        broken = recorderctl("--host", "127.0.0.1", "--web-port", str(port), "export", "1",
                             "-o", target)
    assert broken.returncode == 3, (broken.returncode, broken.stdout, broken.stderr)
    assert broken.stderr.startswith("recorderctl export: the transfer broke off after "), (
        broken.stderr)
    assert not target.exists()
    assert not target.with_name("call.wav.part").exists()


# --- digital silence is -inf (docs/capture.md, docs/recorderctl.md, docs/metrics.md) -------

@IN_PROCESS_AND_RECORDERD
@pytest.mark.slow
def test_digital_silence_reads_minus_infinity_everywhere(start_recorder: Any,
                                                         tmp_path: Path) -> None:
    zeros = tmp_path / "zeros.wav"
    soundfile.write(zeros, np.zeros(16000, np.int16), 8000, subtype="PCM_16")
    running = start_recorder(boards=[{"driver": "file", "devices": ["2001", "2002"],
                                      "files": [str(tone(tmp_path / "a.wav", 440)),
                                                str(zeros)]}])

    def channels() -> list[dict[str, str]]:
        found = running.request("CHANNELS", 1, detail="Y").findall("CHANNELS/CHANNEL")
        return [fields(c) for c in found]

    # Once the meter has measured the tone, it has measured the zeros too.
    wait_for(lambda: channels()[0]["PEAKDBFS"] != "-inf", WAIT, what="the tone's level")
    tone_line, silent = channels()
    assert float(tone_line["PEAKDBFS"]) == pytest.approx(-12.3, abs=0.2)  # 8000 of 32768
    assert (silent["PEAKDBFS"], silent["RMSDBFS"], silent["SILENT"]) == ("-inf", "-inf", "Y")
    (status_silent,) = [c for c in running.status()["channels"] if c["device"] == "2002"]
    assert (status_silent["peak_dbfs"], status_silent["rms_dbfs"]) == (None, None)
    shown = recorderctl(running, "channels")
    assert shown.returncode == 0, shown.stderr
    (row,) = [line.split() for line in shown.stdout.splitlines()[1:] if " 2002 " in line]
    assert row[4:6] == ["-inf", "-inf"], row
    as_json = json.loads(recorderctl(running, "channels", "--json").stdout)
    assert (as_json[1]["peak_dbfs"], as_json[1]["rms_dbfs"]) == (None, None)
