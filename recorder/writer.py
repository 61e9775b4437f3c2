"""The writer loop: one thread that moves captured audio from the rings into open recordings."""

from __future__ import annotations

import logging
import threading

from recorder.session import RecordingSession

logger = logging.getLogger(__name__)

# How often captured audio is moved to disk. The rings hold seconds of audio, so this only sets
# how much is written per system call, not whether anything can be lost.
PUMP_INTERVAL = 0.05


class WriterLoop:
    """Pumps every registered session every PUMP_INTERVAL seconds."""

    def __init__(self, interval: float = PUMP_INTERVAL) -> None:
        self._interval = interval
        self._sessions: set[RecordingSession] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def add(self, session: RecordingSession) -> None:
        with self._lock:
            self._sessions.add(session)

    def discard(self, session: RecordingSession) -> None:
        with self._lock:
            self._sessions.discard(session)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                sessions = list(self._sessions)
            for session in sessions:
                try:
                    session.pump()
                except Exception:
                    logger.exception("writer: pumping %s failed", session.path)
