"""Group commit: concurrent callers that each need a durable write share one.

Each durable write costs a sync to disk (SQLite with ``synchronous = FULL`` syncs its WAL at
every commit), and the store writes one at a time: ten CTI links starting calls together
used to queue for ten syncs one after another. Here the first caller to arrive becomes the
leader and writes every item waiting at that moment in one batch (``write``: one transaction,
one sync); those arriving while it writes wait, and the first of them leads the next batch
with everything that came meanwhile. Each caller returns only once the batch holding its item
is written (or raises its error), so an answer given after ``submit`` returns is as durable as
the write itself: the batch only changes how many items one sync covers.

A batch that fails as a whole is written again item by item (``write`` of one), so one bad
item fails only its own caller.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("error", "item", "result", "written")

    def __init__(self, item: T) -> None:
        self.item = item
        self.written = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """Batches concurrent ``submit`` calls into calls of ``write`` (items in, results out, in
    order); at most ``max_batch`` items a batch. Thread-safe."""

    def __init__(self, write: Callable[[Sequence[T]], list[R]], max_batch: int = 256) -> None:
        self._write = write
        self._max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._waiting: list[_Slot[T, R]] = []
        self._leading = False
        self.batches = 0  # calls of ``write`` that succeeded (fewer than items: shared)
        self.items = 0

    def submit(self, item: T) -> R:
        """``item`` written (with whatever else is waiting); its result, or its error."""
        slot: _Slot[T, R] = _Slot(item)
        with self._cond:
            self._waiting.append(slot)
        while True:
            with self._cond:
                while self._leading and not slot.written:
                    self._cond.wait()
                if slot.written:
                    break
                # Leads the next batch: what waits, oldest first (its own item may come in
                # a later one when more than max_batch wait; it leads that too).
                self._leading = True
                batch = self._waiting[:self._max_batch]
                del self._waiting[:len(batch)]
            try:
                self._lead(batch)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]  # set with written, error unset

    def _lead(self, batch: list[_Slot[T, R]]) -> None:
        """Write ``batch`` (outside the condition's lock, so more may queue meanwhile)."""
        try:
            self._write_batch(batch)
        except BaseException as exc:  # none is left waiting for a batch that never ends
            for slot in batch:
                if slot.error is None and slot.result is None:
                    slot.error = exc
            raise
        finally:
            with self._cond:
                for slot in batch:
                    slot.written = True

    def _write_batch(self, batch: list[_Slot[T, R]]) -> None:
        try:
            results = self._write([slot.item for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"group commit: {len(results)} results for {len(batch)}")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                logger.debug("group commit: a batch of %d failed (%s); writing each alone",
                             len(batch), exc)
                for slot in batch:
                    self._one(slot)
        else:
            self.batches += 1
            self.items += len(batch)
            for slot, result in zip(batch, results, strict=True):
                slot.result = result

    def _one(self, slot: _Slot[T, R]) -> None:
        try:
            slot.result = self._write([slot.item])[0]
        except Exception as exc:
            slot.error = exc


__all__ = ["GroupCommit"]
