"""The API's load limits shared by the socket API and the WebAPI: the command queue (code 47)
and the number of clients (code 48). docs/api-notes.md, "Limits", lists every limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from recorder.telemetry.prometheus import Gauge

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A flood of refusals must not flood the log as well: one line per this many seconds.
REFUSAL_LOG_INTERVAL = 10.0


class QueueFull(Exception):
    """No room for another request: every worker is busy and the queue holds its most."""


class CommandQueue:
    """Runs requests on the API workers, refusing one at once when too many wait for a worker.

    At most ``workers`` requests run and ``queue_size`` more wait, counted over every connection
    and both transports; the next is refused (QueueFull) instead of queueing without end. A
    request holds its place until its work has finished on the worker, even if the client that
    sent it has gone, so the count is what the workers really have to do.
    """

    def __init__(self, executor: Executor, workers: int, queue_size: int,
                 gauge: Gauge | None = None) -> None:
        self._executor = executor
        self._gauge = gauge or Gauge("recorder_api_requests_pending", "")
        self.capacity = workers + queue_size
        self._workers = workers
        self._lock = threading.Lock()  # released from worker threads
        self._taken = 0
        self._refusals = _RefusalLog("API command queue full (%d requests running or "
                                     "waiting); %d request(s) answered 47")

    @property
    def taken(self) -> int:
        """Requests running or waiting right now."""
        with self._lock:
            return self._taken

    def take_idle(self) -> bool:
        """Take a place for a request to run on the caller's thread (the event loop), only
        while a worker is idle, so it neither jumps the queue nor escapes the count; give it
        back with ``give_back``. False: run() it like any other."""
        with self._lock:
            if self._taken >= self._workers:
                return False
            self._taken += 1
            self._gauge.set(self._taken)
            return True

    def give_back(self) -> None:
        """The place ``take_idle`` took."""
        self._release()

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a worker; raises QueueFull without running it when there is no room."""
        with self._lock:
            if self._taken >= self.capacity:
                full = True
            else:
                full = False
                self._taken += 1
                self._gauge.set(self._taken)
        if full:
            self._refusals.note(self.capacity)
            raise QueueFull
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        try:
            self._executor.submit(self._job, loop, future, work)
        except BaseException:
            self._release()
            raise
        return await future

    def _job(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[T],
             work: Callable[[], T]) -> None:
        """On a worker: ``work()``, its place given back, and its outcome handed to the loop.

        One hand-over to the loop per request, instead of a concurrent future chained to an
        asyncio one (asyncio.wrap_future), which costs several callbacks a request.
        """
        if future.cancelled():
            # Its request was dropped (shutdown) before a worker was free: it is not carried
            # out, as a cancelled concurrent future's work is not.
            self._release()
            return
        try:
            result = work()
        except BaseException as exc:
            self._release()
            _hand_over(loop, _set_exception, future, exc)
        else:
            self._release()
            _hand_over(loop, _set_result, future, result)

    def _release(self) -> None:
        with self._lock:
            self._taken -= 1
            self._gauge.set(self._taken)


def _hand_over(loop: asyncio.AbstractEventLoop,
               setter: Callable[[asyncio.Future[T], Any], None], future: asyncio.Future[T],
               value: object) -> None:
    # RuntimeError: the loop has closed (shutdown), and nobody waits for the answer any more.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(setter, future, value)


def _set_result(future: asyncio.Future[T], result: T) -> None:
    if not future.done():  # not if the request's task was cancelled meanwhile (shutdown)
        future.set_result(result)


def _set_exception(future: asyncio.Future[T], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class ClientLimit:
    """How many clients may be connected at once (socket connections and WebAPI event streams).

    Used on the event loop only, so a plain count suffices.
    """

    def __init__(self, limit: int, gauge: Gauge | None = None) -> None:
        self.limit = limit
        self.count = 0
        self._gauge = gauge or Gauge("recorder_api_clients", "")
        self._refusals = _RefusalLog("API client limit reached (%d clients); %d client(s) "
                                     "answered 48")

    def acquire(self) -> bool:
        """Take a place; False (and nothing taken) when every place is taken."""
        if self.count >= self.limit:
            self._refusals.note(self.limit)
            return False
        self.count += 1
        self._gauge.set(self.count)
        return True

    def release(self) -> None:
        self.count -= 1
        self._gauge.set(self.count)


class _RefusalLog:
    """Logs refusals as a warning at most once per REFUSAL_LOG_INTERVAL, with their count."""

    def __init__(self, message: str) -> None:
        self._message = message
        self._lock = threading.Lock()
        self._count = 0
        self._logged = -REFUSAL_LOG_INTERVAL

    def note(self, limit: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._count += 1
            if now - self._logged < REFUSAL_LOG_INTERVAL:
                return
            count, self._count, self._logged = self._count, 0, now
        logger.warning(self._message, limit, count)
