"""Soak (issue 18): the CTI's calls while every flood a client can make runs at once, against a
real recorderd with its default limits, the CTI's latency compared with the same traffic alone
in the same run.

The floods, from addresses of their own, none of them the CTI's: IMPORTUSER with passwords on
64 connections (each hashes with scrypt; the hashing thread's few places fill, so most are
answered 47), 192 socket connections that never say anything (more than the places left to
other clients, so some are answered 48 and opened again at once), and 128 HTTP requests whose
body comes one byte every half second (more than the HTTP connections left to them: 503, and
opened again). The CTI link (127.0.0.2, in api.cti_addresses) makes CALLSTART and CALLSTOP on
recorded devices one after another, 10 ms apart, and times each answer.

Phases alternate, quiet then flooded, ROUNDS times, so that whatever else the machine does
meanwhile weighs on both alike. The floods run in a process of their own, started once: their
client threads in the test's process would hold its interpreter lock and add a delay of their
own to the CTI's answers. Bounded: about 50 s with the default four rounds;
FAIRNESS_SOAK_ROUNDS=N runs N (at most 30, about 12 s each).

What it asserts: every CTI request answered 20 and every call recorded; the floods reached the
recorder (passwords hashed, and refused for load; connections refused); after each flood, the
floods' requests worked off and the recorder's descriptors back where they were; and, when the
test has the machine to itself, the CTI's p99 latency under the floods at most twice its p99
alone, or within FLOOR_MS of it.

The machine to itself: beside other tests (pytest-xdist with more than one worker, as
scripts/test runs the whole suite) their processes come and go within a phase and weigh on one
phase more than on the other, so the latencies are then printed but not compared. Run it alone
(``pytest -n 0 tests/test_soak_fairness.py``) to have them compared.

FLOOR_MS: the floods' clients share the machine's cores with the recorder and the CTI client (in
the field they run elsewhere), and the recorder does hash the passwords that reach it (one core
at most, by design), on one disk and one database. On the two-core development VM, shared with
other work, the CTI's p99 alone was 6 to 8 ms and under the floods 12 to 15 ms (a ratio of 1.8
to 2.1 in five runs) while the machine was otherwise lightly loaded; a few milliseconds more
whenever other work woke up during a flooded phase. Within 10 ms of the baseline is still a
CTI that does not wait behind the floods: waiting behind them (before issue 18) meant 47s
after seconds.
FAIRNESS_SOAK_FLOOR_MS=0 holds the run to the ratio alone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recorder.config.loader import config_from_dict
from tests.helpers.load import (
    CtiTally,
    FloodPlan,
    FloodReport,
    cti_calls,
    flood,
    open_fds,
    percentile,
)
from tests.helpers.recorders import RecorderProcess, Running, base_config, recorderd_of
from tests.helpers.waiting import wait_for

CTI = "127.0.0.2"
DEVICES = tuple(str(3001 + n) for n in range(4))
ROUNDS = max(1, min(30, int(os.environ.get("FAIRNESS_SOAK_ROUNDS", "4"))))
QUIET_SECONDS = 3.5
FLOOD_SECONDS = 5.5
CTI_PAUSE = 0.01  # between one call's CALLSTOP and the next CALLSTART
MAX_RATIO = 2.0  # the CTI's p99 under the floods over its p99 alone...
FLOOR_MS = float(os.environ.get("FAIRNESS_SOAK_FLOOR_MS", "10"))  # ...or this much more
SETTLE_SECONDS = 15.0  # after a flood: its last requests worked off, its connections closed
# Whether this test has the machine to itself (see the docstring): not among other xdist workers.
ALONE = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) <= 1

pytestmark = [pytest.mark.soak, pytest.mark.slow, pytest.mark.process,
              pytest.mark.timeout(60 + 20 * ROUNDS)]


@pytest.fixture
def recorderd(tmp_path: Path) -> Iterator[tuple[RecorderProcess, Running]]:
    config = config_from_dict(base_config(
        tmp_path,
        boards=[{"driver": "synthetic", "devices": list(DEVICES)}],
        api={"socket_port": 0, "web_port": 0, "cti_addresses": [CTI],
             "allow": ["127.0.0.0/8"]},
    ), base_dir=tmp_path)
    with recorderd_of(config, tmp_path / "soak.toml") as started:
        yield started


class Floods:
    """The flood process (helpers.load.flood), started once, flooding on demand."""

    def __init__(self, running: Running) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, theirs = context.Pipe()
        plan = FloodPlan(running.socket_port, running.web_port, FLOOD_SECONDS + 20.0)
        self._process = context.Process(target=flood, args=(plan, theirs), name="floods",
                                        daemon=True)
        self._process.start()

    def start(self) -> None:
        self._commands.send("start")
        assert self._commands.poll(30.0), "the floods did not start"
        assert self._commands.recv() == "started"

    def stop(self) -> FloodReport:
        self._commands.send("stop")
        assert self._commands.poll(60.0), "the floods did not stop"
        report: FloodReport = self._commands.recv()
        return report

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._commands.send("quit")
        self._process.join(30.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10.0)


def settled(running: Running, pid: int, fds: int) -> None:
    """Wait for a flood's traces to go: its requests worked off, its connections closed (the
    recorder's descriptors back to ``fds``)."""
    wait_for(lambda: running.metric("recorder_api_requests_pending") == 0
             and open_fds(pid) <= fds, SETTLE_SECONDS, step=0.25,
             what=lambda: f"the floods' traces to go ({open_fds(pid)} descriptors open, "
                          f"{fds} before)")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def test_the_cti_is_served_as_fast_under_every_flood_at_once(
        recorderd: tuple[RecorderProcess, Running]) -> None:
    proc, running = recorderd
    pid = proc.proc.pid
    cti = running.connect(source=CTI)
    # Warm-up: every pool and cache at its working size before anything is timed.
    cti_calls(cti, DEVICES, 100, time.monotonic() + 10.0, tag="warm")
    fds = open_fds(pid)

    quiet, loud = CtiTally(), CtiTally()
    reports: list[FloodReport] = []
    floods = Floods(running)
    try:
        for round_ in range(ROUNDS):
            quiet.add(cti_calls(cti, DEVICES, 100_000, time.monotonic() + QUIET_SECONDS,
                                pause=CTI_PAUSE, tag=f"quiet{round_}"))
            floods.start()
            try:
                loud.add(cti_calls(cti, DEVICES, 100_000, time.monotonic() + FLOOD_SECONDS,
                                   pause=CTI_PAUSE, tag=f"flood{round_}"))
            finally:
                reports.append(floods.stop())
            settled(running, pid, fds)
    finally:
        floods.close()
    cti.close()

    alone, under = percentile(quiet.latencies, 0.99), percentile(loud.latencies, 0.99)
    imports = sum((r.import_codes for r in reports), start=FloodReport().import_codes)
    slow = sum((r.slow_statuses for r in reports), start=FloodReport().slow_statuses)
    idle_closed = sum(r.idle_closed for r in reports)
    print(f"\nfairness soak, {ROUNDS} round(s): CTI alone {quiet.calls} calls, median "
          f"{ms(statistics.median(quiet.latencies))}, p99 {ms(alone)}; under the floods "
          f"{loud.calls} calls, median {ms(statistics.median(loud.latencies))}, p99 "
          f"{ms(under)} (ratio {under / alone:.2f}); IMPORTUSER answers {dict(imports)}; idle "
          f"connections opened {sum(r.idle_opened for r in reports)}, closed by the recorder "
          f"{idle_closed}; slow HTTP requests opened {sum(r.slow_opened for r in reports)}, "
          f"ended {dict(slow)}")

    # Every call the CTI made was carried out and recorded, under the floods as alone.
    assert set(quiet.codes) == {20}, quiet.codes
    assert set(loud.codes) == {20}, loud.codes
    assert quiet.calls >= 50 * ROUNDS, quiet.calls
    assert loud.calls >= 50 * ROUNDS, loud.calls
    # The floods reached the recorder: passwords hashed, and refused for load (47); silent
    # connections and slow requests past their share refused (48, 503) and opened again.
    assert imports[20] > 0, imports
    assert imports[47] > 0, imports
    assert idle_closed > 0, reports
    assert slow["503"] > 0, slow
    # The CTI's answers under every flood at once: at the 99th percentile, at most twice as
    # slow as the same traffic alone (or within FLOOR_MS of it; see the docstring).
    if ALONE:
        assert under <= max(MAX_RATIO * alone, alone + FLOOR_MS / 1000), (ms(alone), ms(under))
    else:
        print("(not compared: other tests ran beside this one; run it alone to compare)")

    status = running.status()
    assert status["health"]["ok"], status["health"]
    assert status["recordings"]["completed"] == 100 + quiet.calls + loud.calls
    assert proc.stop() == 0, proc.log
