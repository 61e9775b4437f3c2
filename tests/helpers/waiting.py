"""Waiting for something a recorder does on its own threads, bounded in time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 10.0, *, step: float = 0.05,
             what: str | Callable[[], object] = "the condition") -> T:
    """``condition()``'s first true value, asked every ``step`` seconds; fails the test if it
    stays false for ``timeout`` seconds, saying ``what`` (or what that callable gives then)."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() >= deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {said}")
        time.sleep(step)
