"""The thread every loop of the service runs on (recorder/worker.py)."""

from __future__ import annotations

import pytest

from recorder.worker import PeriodicWorker, Worker
from tests.helpers.waiting import wait_for


class Flaky(PeriodicWorker):
    """Fails every other turn; counts the turns and whether it finished."""

    def __init__(self) -> None:
        super().__init__("flaky", 0.01)
        self.turns = 0
        self.finished = False

    def turn(self) -> None:
        self.turns += 1
        if self.turns % 2:
            raise RuntimeError("a bad pass")

    def finish(self) -> None:
        self.finished = True


def test_a_turn_that_raises_is_logged_and_the_loop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    worker = Flaky()
    before = worker.heartbeat
    worker.start()
    try:
        wait_for(lambda: worker.turns >= 6)
        assert worker.alive
        assert worker.heartbeat > before  # it proves each turn, failed or not
    finally:
        worker.stop()
        assert worker.join(5)
    assert not worker.alive
    assert worker.finished  # finish() ran once, after the stop, on the loop's thread
    assert "flaky: one turn failed" in caplog.text
    assert "RuntimeError: a bad pass" in caplog.text


def test_a_worker_never_started_joins_at_once_and_is_not_alive() -> None:
    worker = Flaky()
    assert worker.join(5)
    assert not worker.alive
    assert not worker.finished


def test_a_plain_worker_runs_until_asked_to_stop() -> None:
    class Waiter(Worker):
        def run(self) -> None:
            while not self._stop.wait(0.01):
                pass

    worker = Waiter("waiter")
    worker.start()
    assert worker.alive
    assert not worker.stopping
    worker.stop()
    assert worker.stopping
    assert worker.join(5)
    assert not worker.alive
