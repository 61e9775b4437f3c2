"""A scheduler with everything it records through, built the way the composition root builds
it, for tests that drive the call table by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recorder.calls.scheduler import Scheduler
from recorder.calls.watch import LimitsWatch
from recorder.capture.core import CaptureCore
from recorder.events.types import EventSink
from recorder.recording.completion import AfterCall, Completion
from recorder.recording.files import RecordingFiles, StoredFormat
from recorder.recording.journal import Journal
from recorder.recording.writer import WriterLoop
from recorder.rules.decision import Policy
from recorder.store.factory import Store
from recorder.store.sqlite import SqliteStore


@dataclass
class Calls:
    """The scheduler and the parts a recording passes through (none of their threads started:
    the completion worker then completes each closed file on the thread that closed it)."""

    scheduler: Scheduler
    writer: WriterLoop
    completion: Completion
    watch: LimitsWatch
    files: RecordingFiles


def make_calls(capture: CaptureCore, store: SqliteStore, recordings_dir: Path, *,
               core_ident: int = 1, writer_interval: float = 0.01,
               preroll_seconds: float = 0.0, commit_delay_seconds: float = 0.0,
               stored: StoredFormat | None = None, stereo: bool = True,
               policy: Policy | None = None, events: EventSink | None = None,
               disk_ok: Callable[[], bool] | None = None,
               disk_full: Callable[[Path, float], None] | None = None,
               journal: Journal | None = None, after_call: AfterCall | None = None,
               max_tracked_devices: int | None = None,
               clock: Callable[[], float] = time.time) -> Calls:
    completion = Completion(store, journal=journal, events=events, after_call=after_call,
                            disk_full=disk_full)
    writer = WriterLoop(completion, interval=writer_interval)
    files = RecordingFiles(recordings_dir=recordings_dir, store=store, writer=writer,
                           completion=completion, stored=stored, stereo=stereo,
                           commit_delay_seconds=commit_delay_seconds, journal=journal,
                           stats=completion.stats, disk_full=disk_full)
    scheduler = Scheduler(capture=capture, store=Store(store, store), files=files,
                          core_ident=core_ident, preroll_seconds=preroll_seconds, policy=policy,
                          events=events, disk_ok=disk_ok,
                          max_tracked_devices=max_tracked_devices, clock=clock)
    watch = LimitsWatch(scheduler, scheduler.table, capture, disk_ok=disk_ok,
                        disk_full=disk_full)
    return Calls(scheduler, writer, completion, watch, files)
