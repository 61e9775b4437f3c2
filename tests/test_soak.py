"""Soak: thousands of calls against a real recorderd, its file descriptors, threads and memory
flat, every recorded call with its row and its file, the service still answering.

Several clients drive calls on a synthetic board's devices (each recorded to a real file), with
CALLUPDATEs, calls on random new DEVICEIDs (never recorded: no channel taps them; they push the
device table past its limit), short event subscriptions, WebAPI requests, and connections
dropped mid-message or before their answer. A warm-up round first brings every pool (API
workers, diagnostics threads, the SQLite connection, the allocator's arenas) to its working
size; then the main round makes all its calls, however long a loaded machine takes (its time
bound only catches a hang), and the process is sampled from /proc along the way. About 35 s on
an idle two-core machine; how many calls a second it carries is benchmarks/api.py's to say.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from recorder.config.loader import config_from_dict
from recorder.store.records import RecordingQuery
from recorder.store.sqlite import SqliteStore
from tests.helpers.api import ApiConnection, result_code
from tests.helpers.recorders import RecorderProcess, Running, base_config, recorderd_of

# The main round's calls are counted, not timed: on a loaded machine the test takes longer
# rather than checking fewer calls, so it has more than the suite's two minutes.
pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.process, pytest.mark.timeout(900)]


DEVICES = tuple(str(2001 + i) for i in range(8))
CLIENTS = 4  # each drives two of DEVICES, one call at a time
WARMUP_CALLS = 250  # per client
MAIN_CALLS = 750  # per client: with the warm-up, 4,000 recorded calls in all
# The warm-up stops at its time bound, done or not: it only has to start every pool. The main
# round makes all its calls (the leak bounds below count on them); its bound is for a hang.
WARMUP_SECONDS = 20.0
MAIN_SECONDS = 600.0
MAX_TRACKED = 100  # recording.max_tracked_devices: the random devices go far past it
SAMPLE_EVERY = 2.0  # seconds between /proc samples during the main round
SETTLE_SECONDS = 10.0  # how long the figures may take to come back once the load stops

# Memory: the last two thirds of the main round (about 2,000 calls) may add at most this much
# resident memory. Some growth is not a leak: SQLite's page cache (2 MiB by default) fills as
# the database grows, and the allocator's per-thread arenas and Python's free lists grow to
# their working size. Measured on this machine, a recorderd making calls one after another
# grows by about 7 MB over its first 4,000 calls and then not at all (79.3 MB at 4,000 and at
# 8,000 calls); after this test's 1,000-call warm-up, its last two thirds grew about 2 MB. A leak
# of one call's state (its LiveCall, metadata, session and writer, a few KB) per call, or of a
# buffer or a ring per call, exceeds the bound well before the end.
RSS_SLACK_KB = 4 * 1024


@dataclass(frozen=True)
class Sample:
    """The process's figures at one moment, from /proc."""

    at: float  # time.monotonic()
    fds: int
    threads: int
    rss_kb: int


def sample(pid: int) -> Sample:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    threads = re.search(r"^Threads:\s+(\d+)$", status, re.MULTILINE)
    rss = re.search(r"^VmRSS:\s+(\d+) kB$", status, re.MULTILINE)
    assert threads is not None
    assert rss is not None
    return Sample(time.monotonic(), fds, int(threads.group(1)), int(rss.group(1)))


def settled(pid: int, done: Callable[[Sample], bool] | None = None) -> Sample:
    """A sample once ``done`` says the figures are where they should be, or (without it) once
    they have stopped moving: two alike half a second apart. At most SETTLE_SECONDS."""
    deadline = time.monotonic() + SETTLE_SECONDS
    last = sample(pid)
    while time.monotonic() < deadline:
        if done is not None and done(last):
            return last
        time.sleep(0.5)
        now = sample(pid)
        if done is None and (now.fds, now.threads) == (last.fds, last.threads):
            return now
        last = now
    return last


@dataclass
class Tally:
    """What one client did; every count is of requests answered as they should be."""

    calls: int = 0  # recorded calls: CALLSTART and CALLSTOP on a tapped device
    updates: list[str] = field(default_factory=list)  # USER1 values CALLUPDATE gave
    random_calls: int = 0
    subscriptions: int = 0
    drops: int = 0
    web: int = 0

    def add(self, other: Tally) -> None:
        self.calls += other.calls
        self.updates += other.updates
        self.random_calls += other.random_calls
        self.subscriptions += other.subscriptions
        self.drops += other.drops
        self.web += other.web


def _ok(conn: ApiConnection, request_type: str, **params: Any) -> None:
    result = conn.request(request_type, 1, **params)
    assert result_code(result) == 20, (request_type, params, result.findtext("RESULTMSG"))


def _subscribe_briefly(port: int) -> None:
    conn = ApiConnection(port)
    try:
        _ok(conn, "EVENTS", EVENTCLASS="ALL", EVENTVALUE="")
    finally:
        conn.close()  # with events on their way: the bus must let the subscription go


def _drop(port: int, n: int) -> None:
    """A client that goes away mid-message, or after a whole one without reading its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        if n % 2:
            sock.sendall(b"<REQUEST><TYPE>DEVICESTATUS</TYPE><REQUESTID>9</REQUE")
        else:
            sock.sendall(b"<REQUEST><TYPE>DEVICELIST</TYPE><REQUESTID>9</REQUESTID>"
                         b"</REQUEST>\r\n")


def _web_test(web_port: int, n: int) -> None:
    url = f"http://127.0.0.1:{web_port}/webAPI.aspx?type=devicestatus&requestid={n}" \
          f"&deviceid={DEVICES[n % len(DEVICES)]}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert b"<RESULTCODE>20</RESULTCODE>" in response.read()


def drive(running: Running, client: int, calls: int, deadline: float) -> Tally:
    """One client's calls, and the extras mixed in among them, until ``deadline``."""
    tally = Tally()
    mine = DEVICES[2 * client:2 * client + 2]
    conn = running.connect()
    try:
        for i in range(calls):
            if time.monotonic() >= deadline:
                break
            device, instance = mine[i % 2], f"c{client}-{i}"
            _ok(conn, "CALLSTART", DEVICEID=device, CALLINSTANCE=instance, ANI=f"614555{i:04d}")
            if i % 3 == 0:
                value = f"u-{client}-{i}-{uuid.uuid4().hex[:6]}"
                _ok(conn, "CALLUPDATE", DEVICEID=device, CALLINSTANCE=instance, USER1=value)
                tally.updates.append(value)
            _ok(conn, "CALLSTOP", DEVICEID=device, CALLINSTANCE=instance)
            tally.calls += 1
            if i % 4 == 1:
                stranger = f"r{uuid.uuid4().hex[:12]}"
                _ok(conn, "CALLSTART", DEVICEID=stranger, DEVICEALIAS=f"d{stranger[1:9]}")
                _ok(conn, "CALLSTOP", DEVICEID=stranger)
                tally.random_calls += 1
            if i % 25 == 2:
                _subscribe_briefly(running.socket_port)
                tally.subscriptions += 1
            if i % 20 == 3:
                _drop(running.socket_port, i // 20)
                tally.drops += 1
            if i % 30 == 4:
                _web_test(running.web_port, i)
                tally.web += 1
            if i % 50 == 49:  # clients come and go too
                conn.close()
                conn = running.connect()
    finally:
        conn.close()
    return tally


def run_round(running: Running, calls: int, seconds: float) -> Tally:
    deadline = time.monotonic() + seconds
    total = Tally()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(drive, running, c, calls, deadline) for c in range(CLIENTS)]
        for future in futures:
            total.add(future.result())
    return total


@pytest.fixture
def recorderd(tmp_path: Path) -> Iterator[tuple[RecorderProcess, Running]]:
    config = config_from_dict(base_config(
        tmp_path,
        boards=[{"driver": "synthetic", "devices": list(DEVICES)}],
        recording={"max_tracked_devices": MAX_TRACKED},
        # Thread pools start their threads as work arrives, up to their size: with fewer
        # workers than clients the warm-up surely starts them all, so a thread more at the
        # end is one left behind, not a worker the warm-up happened not to need.
        api={"socket_port": 0, "web_port": 0, "workers": 2},
    ), base_dir=tmp_path)
    with recorderd_of(config, tmp_path / "soak.toml") as started:
        yield started


def test_thousands_of_calls_leave_fds_threads_and_memory_flat(
        recorderd: tuple[RecorderProcess, Running]) -> None:
    proc, running = recorderd
    pid = proc.proc.pid

    warmup = run_round(running, WARMUP_CALLS, WARMUP_SECONDS)
    # Every pool at its working size: more diagnostics requests at once than its threads.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: running.status(), range(8)))
    base = settled(pid)

    samples: list[Sample] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(SAMPLE_EVERY):
            samples.append(sample(pid))

    watcher = threading.Thread(target=sampler, name="soak-sampler")
    watcher.start()
    main_began = time.monotonic()
    try:
        main = run_round(running, MAIN_CALLS, MAIN_SECONDS)
    finally:
        stop.set()
        watcher.join(10)
    main_ended = time.monotonic()
    end = settled(pid, lambda s: s.fds <= base.fds and s.threads <= base.threads)

    total = Tally()
    total.add(warmup)
    total.add(main)
    assert main.calls == CLIENTS * MAIN_CALLS, f"only {main.calls} calls in {MAIN_SECONDS} s"
    assert main.random_calls > MAX_TRACKED
    assert main.subscriptions > 0
    assert main.drops > 0
    assert main.web > 0

    # File descriptors and threads: back to the warm-up figures once the load has stopped.
    # Between rounds nothing is open but the listening sockets, the database, the logs and the
    # pools' threads, so any growth is a connection, a file or a thread left behind.
    assert end.fds <= base.fds, (base, end, samples)
    assert end.threads <= base.threads, (base, end, samples)
    # While the load ran, bounded too: a client holds at most four sockets at once (its
    # connection, a subscription, a dropped one, an HTTP request) and its call's file; 16 more
    # for connections the server is still closing. A leak would climb past it sample by sample.
    assert max(s.fds for s in samples) <= base.fds + 5 * CLIENTS + 16, samples
    assert max(s.threads for s in samples) <= base.threads + 4, samples

    # Memory: flat over the last two thirds of the main round (see RSS_SLACK_KB).
    third = main_began + (main_ended - main_began) / 3
    reference = min((s for s in samples if s.at >= third), key=lambda s: s.at, default=base)
    grown = end.rss_kb - reference.rss_kb
    assert grown <= RSS_SLACK_KB, (f"RSS grew {grown} kB (allowed {RSS_SLACK_KB}) over the "
                                   "last two thirds", base, reference, end, samples)

    # The service still answers, healthy, its device table at its limit.
    conn = running.connect()
    try:
        _ok(conn, "TEST")
    finally:
        conn.close()
    status = running.status()
    assert status["health"]["ok"], status["health"]
    assert status["devices"]["tracked"] == MAX_TRACKED
    assert status["devices"]["evicted"] == total.random_calls - MAX_TRACKED
    assert status["recordings"]["active"] == 0
    assert status["recordings"]["completed"] == total.calls
    assert status["api"]["event_subscribers"] == 0  # every brief subscription let go

    assert proc.stop() == 0, proc.log
    assert "Traceback" not in proc.log, proc.log

    # Every recorded call has its complete row and its own file; the random devices none.
    store = SqliteStore(running.data_dir / "recorder.sqlite3")
    store.open()
    try:
        rows = store.list_recordings(RecordingQuery(limit=100_000))
    finally:
        store.close()
    assert len(rows) == total.calls
    assert {r.status for r in rows} == {"complete"}
    assert {r.device_id for r in rows} == set(DEVICES)
    assert sorted(r.meta.get("USER1", "") for r in rows if r.meta.get("USER1")) \
        == sorted(total.updates)
    files = {str(p) for p in (running.data_dir / "recordings").rglob("*.wav")}
    assert files == {r.filename for r in rows}
    assert all(r.audio_size and os.path.getsize(r.filename) == r.audio_size for r in rows)
