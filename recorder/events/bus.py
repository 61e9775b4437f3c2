"""The event bus: fans each published event out to its subscribers, never blocking the publisher.

The scheduler, the API workers and the triggers publish from their own threads; subscribers (a
socket API connection after EVENTS, an HTTP Server-Sent Events stream) read on the API's asyncio
loop. Each subscriber has a bounded queue. ``publish`` only appends to the queues of the
subscribers whose filter matches and, when readers are waiting, schedules one wake-up per loop
for all of them, so it costs the same whether subscribers read quickly, slowly or not at all.
A subscriber whose queue is full has fallen behind: it is disconnected (one warning naming it)
and the others carry on; it cannot hold the publisher back, nor make the recorder keep events
for it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from recorder.events.types import Event

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000


class Subscription:
    """One subscriber: its filter, its EVENTXREF and the events waiting for it."""

    def __init__(self, bus: EventBus, xref: int, *, classes: frozenset[str],
                 devices: frozenset[str], name: str, queue_size: int,
                 loop: asyncio.AbstractEventLoop | None,
                 on_drop: Callable[[], None] | None) -> None:
        self.xref = xref
        self.classes = classes
        self.devices = devices  # empty: every device
        self.name = name
        self.dropped = False  # disconnected for falling behind
        self._bus = bus
        self._size = queue_size
        self._queue: deque[Event] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._on_drop = on_drop

    def __repr__(self) -> str:
        return f"<Subscription {self.xref} {self.name}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def matches(self, event: Event) -> bool:
        return event.event_class in self.classes and (
            not self.devices or event.device_id in self.devices)

    async def get(self) -> Event | None:
        """The next event, waiting for one; None once the subscription is closed or dropped."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    return None
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiter = waiter
                self._loop = loop
            try:
                await waiter
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting, else None."""
        with self._lock:
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Stop receiving: a waiting ``get`` returns None. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.clear()
            waiter, self._waiter = self._waiter, None
        self._bus._remove(self)
        self._wake(waiter)

    def finish(self) -> None:
        """Stop receiving, but let the reader have what is queued first, then None.

        The bus ends its subscriptions this way at shutdown, so the last events (shutdown's
        CALLSTOP and RECORDINGSTOPPED) still reach every subscriber."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            waiter, self._waiter = self._waiter, None
        self._bus._remove(self)
        self._wake(waiter)

    def _offer(self, event: Event) -> asyncio.Future[None] | None:
        """Called by ``publish`` from any thread: queue ``event`` or drop a full subscriber.

        Returns the reader's waiter to wake, if one is waiting: ``publish`` wakes the waiters
        of one loop together, with one call into that loop rather than one per subscriber.
        """
        with self._lock:
            if self._closed:
                return None
            full = len(self._queue) >= self._size
            if full:
                self._closed = self.dropped = True
                self._queue.clear()
            else:
                self._queue.append(event)
            waiter, self._waiter = self._waiter, None
        if full:
            self._bus._remove(self)
            logger.warning("event subscriber %s (EVENTXREF %d) fell %d events behind; "
                           "disconnected", self.name, self.xref, self._size)
            if self._on_drop is not None:
                self._call_soon(self._on_drop)
        return waiter

    def _wake(self, waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None:
            self._call_soon(lambda: None if waiter.done() else waiter.set_result(None))

    def _call_soon(self, callback: Callable[[], None]) -> None:
        loop = self._loop
        if loop is None:
            return
        # A closed loop raises RuntimeError: its reader is gone, nobody is left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback)


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class EventBus:
    """Where events are published (an ``EventSink``) and subscribed to."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self.queue_size = queue_size
        self._lock = threading.Lock()
        # Replaced, never changed in place, so publish reads it without taking the lock.
        self._subscriptions: tuple[Subscription, ...] = ()
        self._xrefs = itertools.count(0)  # the manual shows 0: the first subscriber gets it
        self._closed = False
        # Events kept for subscribers yet to come: (until, event), see hold().
        self._held: tuple[tuple[float, Event], ...] = ()

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every matching subscriber; never blocks, never raises."""
        try:
            waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for subscription in self._subscriptions:
                if subscription.matches(event):
                    waiter = subscription._offer(event)
                    loop = subscription._loop
                    if waiter is not None and loop is not None:
                        waiting.setdefault(loop, []).append(waiter)
            for loop, waiters in waiting.items():
                # A closed loop raises RuntimeError: its readers are gone, none to wake.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_wake_all, waiters)
        except Exception:
            logger.exception("publishing %s %s failed", event.event_class, event.event_type)

    def subscribe(self, classes: Iterable[str], devices: Iterable[str] = (), *,
                  name: str = "", loop: asyncio.AbstractEventLoop | None = None,
                  on_drop: Callable[[], None] | None = None) -> Subscription:
        """A new subscription to events of ``classes`` about ``devices`` (empty: all devices).

        ``loop`` is where its reader waits (taken from the first ``get`` if not given);
        ``on_drop`` runs on that loop if the subscriber is disconnected for falling behind, to
        close its connection even while it is blocked writing to a client that stopped reading.
        """
        with self._lock:
            xref = next(self._xrefs)
            subscription = Subscription(
                self, xref, classes=frozenset(classes), devices=frozenset(devices),
                name=name or f"#{xref}", queue_size=self.queue_size, loop=loop,
                on_drop=on_drop)
            if self._closed:
                subscription._closed = True
            else:
                self._subscriptions = (*self._subscriptions, subscription)
            held = self._held
        if held:
            now = time.monotonic()
            wanted = [event for until, event in held
                      if until > now and subscription.matches(event)]
            # Never so many that the new subscriber is dropped for them.
            for event in wanted[-max(1, self.queue_size // 2):]:
                subscription._offer(event)
        return subscription

    def hold(self, events: Iterable[Event], seconds: float) -> None:
        """Publish ``events`` and keep them ``seconds`` for every subscription made meanwhile.

        For what happened before anyone could subscribe: the RECORDINGSTOPPED of recordings a
        crash interrupted, completed at start-up before the API listens. A subscriber that
        connects in the minutes after a restart gets them first (each one once)."""
        events = list(events)
        if not events:
            return
        until = time.monotonic() + seconds
        with self._lock:
            now = time.monotonic()
            self._held = (*((u, e) for u, e in self._held if u > now),
                          *((until, e) for e in events))
        for event in events:
            self.publish(event)

    def close(self) -> None:
        """End every subscription (their readers get what is queued, then None) and accept
        no new ones."""
        with self._lock:
            self._closed = True
            subscriptions = self._subscriptions
        for subscription in subscriptions:
            subscription.finish()

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)


__all__ = ["DEFAULT_QUEUE_SIZE", "EventBus", "Subscription"]
