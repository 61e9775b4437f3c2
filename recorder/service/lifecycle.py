"""recorderd's main loop: systemd notifications, the watchdog, reloads, and a bounded stop.

Signal handlers only set flags (they must not read files or take the scheduler's lock); this
loop, on the main thread, acts on them. It also pings systemd's watchdog, but only while the
recorder reports itself healthy: a hung writer, capture monitor, limits watch, completion worker
or API loop stops the pings, and systemd restarts the service (``WatchdogSec=`` in
systemd/recorder.service).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from recorder.service.sdnotify import Notifier
from recorder.service.stacks import thread_stacks

logger = logging.getLogger(__name__)

STATUS_INTERVAL = 5.0  # how often STATUS= is refreshed (only sent when it changed)
MAX_TICK = 1.0  # the loop wakes at least this often
# SIGTERM finishes every recording; if that has not happened by then, something is stuck: log
# every thread's stack (so the hang can be diagnosed) and exit, rather than wait for SIGKILL.
STOP_DEADLINE = 30.0
EXIT_STUCK = 1


class Service(Protocol):
    def health(self) -> list[str]: ...

    def summary_line(self) -> str: ...

    def stop(self) -> None: ...


class ServiceLoop:
    """Runs until ``request_stop``; ``tick`` is one turn, public so tests can drive it.

    ``reload`` re-reads the configuration and returns None, or why it could not.
    """

    def __init__(self, service: Service, notifier: Notifier,
                 reload: Callable[[], str | None], *, clock: Callable[[], float] = time.monotonic,
                 stop_deadline: float = STOP_DEADLINE,
                 on_stuck: Callable[[], None] | None = None) -> None:
        self._service = service
        self._notifier = notifier
        self._reload = reload
        self._clock = clock
        self._stop_deadline = stop_deadline
        self._on_stuck = on_stuck or _exit_stuck
        self._stop = threading.Event()
        self._hangup = threading.Event()
        self._wake = threading.Event()
        self._ping_interval = (notifier.watchdog_seconds / 2
                               if notifier.watchdog_seconds is not None else None)
        self._next_ping = 0.0
        self._next_status = 0.0
        self._last_status = ""
        self._unhealthy: list[str] = []
        self.pings = 0

    # -- called from signal handlers: flags only --------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._hangup.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the main thread --------------------------------------------------------------------

    def started(self) -> None:
        """Everything listens and every board runs: tell systemd, and ping at once."""
        line = self._service.summary_line()
        self._last_status = line
        self._notifier.ready(line)
        self._next_status = self._clock() + STATUS_INTERVAL
        self.tick()

    def run(self) -> None:
        """Serve until a stop is requested; then stop the service within the deadline."""
        try:
            while not self._stop.is_set():
                self._wake.wait(self._tick_seconds())
                self._wake.clear()
                if self._stop.is_set():
                    break
                if self._hangup.is_set():
                    self._hangup.clear()
                    self._notifier.reloading()
                    problem = self._reload()
                    line = (self._service.summary_line() if problem is None else
                            f"reload failed, still on the previous configuration: {problem}")
                    self._last_status = line
                    self._notifier.notify("READY=1", f"STATUS={line}")
                self.tick()
        finally:
            self.shutdown()

    def tick(self) -> None:
        now = self._clock()
        if self._ping_interval is not None and now >= self._next_ping:
            self._next_ping = now + self._ping_interval
            problems = self._service.health()
            if not problems:
                if self._unhealthy:
                    logger.warning("watchdog: healthy again, pinging systemd")
                    self._unhealthy = []
                if self._notifier.watchdog():
                    self.pings += 1
            elif problems != self._unhealthy:
                self._unhealthy = problems
                logger.error("watchdog: not pinging systemd, which will restart the service "
                             "if this lasts: %s", "; ".join(problems))
                self._notifier.status("unhealthy: " + "; ".join(problems))
                self._last_status = ""
        if now >= self._next_status and not self._unhealthy:
            # Not while unhealthy: the summary may need the very lock a hung part holds, and
            # STATUS= already says what is wrong.
            self._next_status = now + STATUS_INTERVAL
            line = self._service.summary_line()
            if line != self._last_status:
                self._last_status = line
                self._notifier.status(line)

    def shutdown(self) -> None:
        """STOPPING=1, then stop every component; stuck past the deadline: stacks and exit."""
        self._notifier.stopping("stopping: finishing the recordings in progress")
        done = threading.Event()

        def watch() -> None:
            if not done.wait(self._stop_deadline):
                logger.error("shutdown has not finished after %.0f s; thread stacks follow",
                             self._stop_deadline)
                log_thread_stacks(logging.ERROR)
                self._on_stuck()

        watcher = threading.Thread(target=watch, name="stop-deadline", daemon=True)
        watcher.start()
        try:
            self._service.stop()
        finally:
            done.set()
            self._notifier.close()

    def _tick_seconds(self) -> float:
        if self._ping_interval is None:
            return MAX_TICK
        return max(0.05, min(MAX_TICK, self._ping_interval / 2))


def log_thread_stacks(level: int = logging.WARNING) -> None:
    """Log every thread's stack, one record per thread (SIGUSR1, or a stuck shutdown)."""
    stacks = thread_stacks()
    logger.log(level, "%d threads in process %d", len(stacks), os.getpid())
    for heading, stack in stacks:
        logger.log(level, "%s:\n%s", heading, stack)


def _exit_stuck() -> None:
    # Not logging.shutdown(): a stuck thread may hold a handler's lock.
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    os._exit(EXIT_STUCK)
