"""What has been recorded since the start: the counts /metrics and /status show."""

from __future__ import annotations

import threading
from typing import Literal


class RecordingStats:
    """Recordings started, completed and refused, and how often each decision was taken.

    Counted where each happens: the files' opener (started), the completion worker (completed),
    the scheduler (refused, decisions); read by the telemetry.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0  # recordings begun: main ones and RECORDSTART's
        self.completed = 0  # recordings whose file was closed and row completed
        self.refused = 0  # calls not recorded: refused by the decision, or no file could be made
        self._decisions: dict[tuple[bool, str], int] = {}

    def decided(self, record: bool, reason: str) -> None:
        """One more call the decision said ``record`` for, with ``reason`` (its RESULTTYPE)."""
        key = (record, reason)
        with self._lock:
            self._decisions[key] = self._decisions.get(key, 0) + 1

    def count(self, what: Literal["started", "completed", "refused"]) -> None:
        """One more recording ``started``, ``completed`` or ``refused``."""
        with self._lock:
            setattr(self, what, getattr(self, what) + 1)

    @property
    def active(self) -> int:
        """Recordings begun and not completed yet (files open, or closing)."""
        return max(0, self.started - self.completed)

    def decisions(self) -> dict[tuple[bool, str], int]:
        """How often the decision said (record?, the reason's RESULTTYPE)."""
        with self._lock:
            return dict(self._decisions)
