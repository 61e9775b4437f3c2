"""Which RECORDID the spool gives a recording started while the database is away.

With SQLite one process writes the database, and the next after the highest RECORDID known is
free. A PostgreSQL database may be shared by several recorder servers, each with a spool of its
own: the next after the highest would be given by two of them during one outage. So while the
database is up, the spool keeps a block of RECORDIDs taken from the database's sequence
(``reserve_recording_ids``: taken there, they are never given to anyone else), and hands those
out while it spools; the replay stores each row under its own. A reserve used up in a long
outage falls back to the next after the highest, with a warning: on a database no other server
writes, that is still safe. RECORDIDs reserved and never used are gaps in the numbering.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from recorder.errors import StoreError
from recorder.store.recordings import RecordingStore

logger = logging.getLogger(__name__)

# RECORDIDs kept in reserve: the calls a server starts during an outage before it has to fall
# back on its own count (a busy server starts a few a second).
RESERVE = 500


class IdReserve:
    """RECORDIDs reserved in the database for the spool to hand out."""

    def __init__(self, size: int = RESERVE) -> None:
        self.size = size
        self._ids: deque[int] = deque()
        self._lock = threading.Lock()
        self._warned = False
        self.reserving = True  # until the store says it has no such thing (SQLite)

    def __len__(self) -> int:
        return len(self._ids)

    def top_up(self, store: RecordingStore) -> None:
        """Fill the reserve from the database if it is under half full (StoreError: the
        database is away; the reserve stays as it was)."""
        if not self.reserving or len(self._ids) >= self.size // 2:
            return
        taken = store.reserve_recording_ids(self.size - len(self._ids))
        if not taken:
            self.reserving = False
            return
        with self._lock:
            self._ids.extend(taken)
            self._warned = False

    def try_top_up(self, store: RecordingStore) -> None:
        try:
            self.top_up(store)
        except StoreError as exc:
            logger.debug("store: RECORDIDs not reserved now: %s", exc)

    def take(self, highest: int) -> int:
        """The RECORDID for a recording spooled now: a reserved one, else ``highest + 1``."""
        with self._lock:
            while self._ids:
                ident = self._ids.popleft()
                if ident > 0:
                    return ident
        if self.reserving and not self._warned:
            self._warned = True
            logger.warning("store: the spool's reserve of RECORDIDs is used up; it gives the "
                           "next after the highest known (%d) until the database is back: "
                           "another recorder server spooling on the same database now could "
                           "give the same ones", highest + 1)
        return highest + 1


__all__ = ["RESERVE", "IdReserve"]
