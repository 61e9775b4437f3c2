"""One thread with one stop event: what every loop of the service is built on.

``Worker`` owns the thread: ``start()``, ``stop()`` (sets the stop event; never blocks),
``join(timeout)`` (True once the thread has ended, or if it never started), ``alive`` and
``heartbeat`` (the monotonic time of the loop's last turn, which health watches: a loop stuck
on a lock or a disk stops moving it). ``PeriodicWorker`` turns every ``interval`` seconds with
``while not stop.wait(interval)``; a turn that raises is logged and the loop goes on, so one bad
pass never ends a loop the service needs.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger(__name__)


class Worker:
    """A named daemon thread running ``run()`` until ``stop()``; subclasses write ``run``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # time.monotonic() of the last turn (PeriodicWorker moves it; others may).
        self.heartbeat = time.monotonic()

    def start(self) -> None:
        self.heartbeat = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; ``join`` waits for it."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the thread; True once it has ended (or if it was
        never started)."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """The thread is running (started and not ended)."""
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        raise NotImplementedError


class PeriodicWorker(Worker):
    """Calls ``turn()`` every ``interval`` seconds until stopped, then ``finish()`` once."""

    def __init__(self, name: str, interval: float) -> None:
        super().__init__(name)
        self.interval = interval

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.turn()
            except Exception:
                logger.exception("%s: one turn failed", self.name)
            self.heartbeat = time.monotonic()
        try:
            self.finish()
        except Exception:
            logger.exception("%s: finishing failed", self.name)

    def turn(self) -> None:
        """One pass of the loop."""

    def finish(self) -> None:
        """After the stop, on the loop's thread: whatever must still be done."""
