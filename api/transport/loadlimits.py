"""The API's command queues (code 47), shared by the socket API and the WebAPI, in two lanes:
call control on workers of its own, every other request on the general workers, so that no
amount of administration, export or e-mail can keep a CTI's CALLSTART waiting. The clients'
places (code 48) are in ``clients``; docs/api-notes.md, "Limits", lists every limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

from recorder.api.dispatcher import CALL_CONTROL_TYPES
from recorder.resultcodes import ResultCode
from recorder.telemetry.prometheus import Gauge

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A flood of refusals must not flood the log as well: one line per this many seconds.
REFUSAL_LOG_INTERVAL = 10.0
# A connection answered 47 (a full queue, a busy password hasher) makes its next request only
# after this pause (the answer itself goes at once), so a client that retries at once cannot
# keep the event loop and the workers busy refusing it: each refusal costs as much as a cheap
# request. At 0.25 s, 64 connections of IMPORTUSER drew about 250 refusals a second, and the
# CTI's p99 latency under every flood at once (tests/test_soak_fairness.py) was 2.5 times its
# p99 alone; at 1 s, 65 a second and about 2 times. The CTI links are never paused.
REFUSED_PAUSE = 1.0
_QUEUE_FULL = b"</RESULTTYPE><RESULTCODE>%d</RESULTCODE>" % ResultCode.API_COMMAND_QUEUE_FULL


def refused_for_load(answer: bytes) -> bool:
    """Whether a rendered RESULT is a 47 (text in a RESULT is escaped, so only its header can
    hold these tags)."""
    return _QUEUE_FULL in answer


class QueueFull(Exception):
    """No room for another request: every worker is busy and the queue holds its most."""


class CommandQueue:
    """Runs requests on one lane's workers, refusing one at once when too many wait for them.

    At most ``workers`` requests run and ``queue_size`` more wait, counted over every connection
    and both transports; the next is refused (QueueFull) instead of queueing without end. A
    request holds its place until its work has finished on the worker, even if the client that
    sent it has gone, so the count is what the workers really have to do. ``gauges`` are
    raised and lowered with the count (several lanes may share one: the total).
    """

    def __init__(self, executor: Executor, workers: int, queue_size: int,
                 *gauges: Gauge, kind: str = "") -> None:
        self._executor = executor
        self._gauges = gauges or (Gauge("recorder_api_requests_pending", ""),)
        self.capacity = workers + queue_size
        self._workers = workers
        self.kind = kind  # how a refusal names the lane's requests ("call-control")
        self._lock = threading.Lock()  # released from worker threads
        self._taken = 0
        self._refusals = RefusalLog(f"API {kind + ' ' if kind else ''}command queue full "
                                    "(%d requests running or waiting); %d request(s) answered 47")

    def full_message(self) -> str:
        """RESULTMSG of a request this lane refuses (47)."""
        kind = f"{self.kind} " if self.kind else ""
        return (f"the recorder has {self.capacity} {kind}requests running or waiting; "
                "try again later")

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
            self._count(1)
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
                self._count(1)
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
            self._count(-1)

    def _count(self, change: int) -> None:
        for gauge in self._gauges:
            gauge.inc(change)


class Lanes:
    """Which command queue a request runs in: call control (dispatcher.CALL_CONTROL_TYPES) in
    its own, everything else in the general one. Each lane has its workers and its bound, so
    a lane that is full or slow (a flood of IMPORTUSER, an export, a mail server that does not
    answer) never holds up the other."""

    def __init__(self, calls: CommandQueue, general: CommandQueue) -> None:
        self.calls = calls
        self.general = general

    @classmethod
    def unbounded(cls, executor: Executor) -> Lanes:
        """One executor, no limit: for a transport run without the server's limits."""
        queue = CommandQueue(executor, 1 << 30, 0)
        return cls(queue, queue)

    def of(self, request_type: str) -> CommandQueue:
        """The lane of a request of this TYPE (upper case, as the dispatcher reads it)."""
        return self.calls if request_type in CALL_CONTROL_TYPES else self.general


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


class RefusalLog:
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
