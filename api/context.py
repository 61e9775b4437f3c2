"""What request handlers may use: the core's objects, never the transports'."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recorder.archive.mailer import Mailer
from recorder.archive.workspace import ExportWorkspace
from recorder.calls.scheduler import Scheduler
from recorder.config.model import DEFAULT_TERMINOLOGY
from recorder.events.types import EventSink, NoEvents
from recorder.store.factory import Store
from recorder.store.passwords import PasswordHasher


@dataclass(frozen=True)
class ApiContext:
    scheduler: Scheduler
    store: Store
    core_ident: int
    calllist_max_rows: int
    clock: Callable[[], float] = field(default=time.time)
    # SYSTEMSTATUS reports this path and the disk it is on; None: the current directory.
    recordings_dir: Path | None = None
    # FETCHTERMINOLOGY's names and values (config [terminology]).
    terminology: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TERMINOLOGY))
    # Where handlers publish what they change (CHATSTART...): the event bus of the recorder.
    events: EventSink = field(default_factory=NoEvents)
    # Admits each export into the work area (its budget, concurrency and the recordings'
    # room: recorder.archive.workspace); None: nothing is limited.
    exports: ExportWorkspace | None = None
    # EMAIL and COMBINEDEMAIL send through it; None (or not configured): they answer 31.
    mailer: Mailer | None = None
    # Exports are written here before they are sent (data_dir/tmp); None: the system's.
    work_dir: Path | None = None
    # IMPORTUSER hashes passwords on its thread; None: on the handler's own thread.
    passwords: PasswordHasher | None = None

    def sent_to_cores(self, request_type: str) -> str:
        """The manual's API_OK message for requests forwarded to the recording cores."""
        return f"{request_type} sent to all of the following cores: {self.core_ident}"
