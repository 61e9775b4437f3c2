"""The composition root: builds every component, starts them in order, stops them in reverse.

store (and the recordings a crash left, completed) -> after-call encoder -> drivers and capture
core -> writer loop -> event bus -> scheduler -> retention job -> triggers -> API servers.
Stopping runs the other way, with one exception: the triggers stop starting calls, then the
scheduler refuses new ones ("shutting down") and finishes the recordings in progress, the event
bus ends every subscription after its last events, and only then does the API stop, so every
subscriber hears how its calls ended. The drivers keep capturing until those recordings have
their last samples, and the after-call encoder sees every finished recording (what it has not
converted yet stays a playable WAV and is converted at the next start).

Each component is also handed, as it starts, to the telemetry (``recorder.telemetry``), which
reads them for ``/metrics``, ``/status``, ``health()`` and ``summary_line()``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from recorder.aftercall import AfterCallEncoder
from recorder.api.context import ApiContext
from recorder.api.dispatcher import Dispatcher
from recorder.api.server import ApiServer
from recorder.capture import CaptureBoard, CaptureCore
from recorder.config import Config
from recorder.decision import Policy
from recorder.diskspace import DiskGuard
from recorder.drivers import create_driver
from recorder.errors import StartupError
from recorder.eventbus import EventBus
from recorder.events import Event, make_event
from recorder.export import clean_work_dir
from recorder.journal import Journal
from recorder.mailer import Mailer
from recorder.recovery import recover
from recorder.retention import RetentionJob
from recorder.scheduler import Scheduler, StoredFormat
from recorder.store import Store, open_store
from recorder.telemetry import HUNG_AFTER_SECONDS, Components, Telemetry
from recorder.triggers import TriggerLoop, VoxParams
from recorder.writer import WriterLoop

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
# How long after a start the RECORDINGSTOPPED of recordings a crash interrupted are given to
# each new event subscriber (a CTI system reconnecting after the restart).
RECOVERED_EVENTS_HOLD_SECONDS = 300.0


class Recorder:
    """The whole service, in-process: what ``recorderd`` runs and what tests start directly."""

    def __init__(self, config: Config, *,
                 hung_after_seconds: float = HUNG_AFTER_SECONDS) -> None:
        self.config = config
        self._stops: list[tuple[str, Callable[[], None]]] = []
        self.store: Store | None = None
        self.journal: Journal | None = None
        self.capture: CaptureCore | None = None
        self.writer: WriterLoop | None = None
        self.scheduler: Scheduler | None = None
        self.dispatcher: Dispatcher | None = None
        self.api: ApiServer | None = None
        self.events: EventBus | None = None
        self.disk: DiskGuard | None = None
        self.retention: RetentionJob | None = None
        # Reads the components above for /metrics, /status and health; filled as they start.
        self.telemetry = Telemetry(Components(config), hung_after=hung_after_seconds)

    @property
    def hung_after_seconds(self) -> float:
        """How long a loop of the core may go without a turn before health() reports it."""
        return self.telemetry.hung_after

    @hung_after_seconds.setter
    def hung_after_seconds(self, seconds: float) -> None:
        self.telemetry.hung_after = seconds

    def start(self) -> None:
        """Start every component; on failure, stop what had started and raise."""
        self.telemetry.starting()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.telemetry.parts.running = True

    def health(self) -> list[str]:
        """Empty when healthy; else one sentence per hung or dead loop of the core (writer,
        capture monitor, scheduler timer, API event loop), or that the recorder is not running.
        A database that is away is not a health problem (see ``status()``)."""
        return self.telemetry.health()

    def summary_line(self) -> str:
        """One line for systemd's STATUS=, e.g. "recording 1 of 4 channels; 17 recordings
        since start; disk 45.2 GB free; healthy" (the first problem instead of healthy)."""
        return self.telemetry.summary_line()

    def wait_boards_running(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for every board to capture; one sentence per board that
        does not (yet), e.g. "boards[1] (voicemodem) is error: cannot open /dev/ttyACM0"."""
        if self.capture is None:
            return []
        waiting = self.capture.wait_running(timeout)
        return [f"{board.key} ({type(board.driver).__name__}) is {board.driver_state.value}"
                + (f": {board.driver_detail}" if board.driver_detail else "")
                for board in waiting]

    def status(self) -> dict[str, Any]:
        """The /status document (docs/metrics.md): JSON-able, no infinities."""
        return self.telemetry.status()

    def _start(self) -> None:
        config = self.config
        data_dir = config.storage.data_dir
        try:
            config.storage.recordings_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot create {data_dir}: "
                               f"{exc.strerror or exc}") from exc
        logger.info("data directory %s", data_dir)

        parts = self.telemetry.parts
        store = self.store = parts.store = open_store(config.storage)
        self._started("store", store.close)
        # Before anything records: the recordings a crash left open first (recorder/recovery.py).
        journal = self.journal = Journal(data_dir)
        try:
            contents = journal.open()
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot open the crash journal "
                               f"{journal.path}: {exc.strerror or exc}") from exc
        self._started("journal", journal.close)
        recovered: list[Event] = [r.event for r in recover(store, journal, contents)
                                  if r.event is not None]
        recovered += [make_event(kind, fields) for kind, fields in contents.announce]

        storage = config.storage
        options: dict[str, Any] = {}
        if storage.format == "mp3":
            options = {"bitrate": storage.mp3_bitrate or None, "quality": storage.mp3_quality}
        elif storage.format == "vox":
            options = {"rate": storage.vox_rate}
        stored = StoredFormat(storage.format, storage.encode == "after-call", options)
        after_call: AfterCallEncoder | None = None
        if stored.after_call and storage.format != "wav":
            after_call = AfterCallEncoder(store, storage.format, storage.recordings_dir,
                                          storage.transcode_workers, options)
            after_call.start()
            self._started("after-call", lambda: self._halt("after-call", after_call.stop,
                                                            after_call.join))

        drivers = [create_driver(f"boards[{i}]", board) for i, board in enumerate(config.boards)]
        capture = self.capture = CaptureCore(
            [CaptureBoard(driver, board.devices, config.capture.lookback_seconds,
                          board.silence_threshold_dbfs)
             for driver, board in zip(drivers, config.boards, strict=True)],
            triggers=[[board.channel_trigger(i) for i in range(len(board.devices))]
                      for board in config.boards],
        )
        capture.start()
        parts.capture = capture
        self._started("capture", lambda: self._halt("capture", capture.stop, capture.join))
        if not capture.channels:
            logger.warning("no boards configured: calls are tracked but nothing is recorded")

        writer = self.writer = parts.writer = WriterLoop(
            fsync_interval=config.storage.fsync_interval_seconds)
        writer.start()
        self._started("writer", lambda: self._halt("writer", writer.stop, writer.join))

        # Before the scheduler, which publishes to it; closed after the scheduler has sent its
        # last events (shutdown's CALLSTOP and RECORDINGSTOPPED), ending every subscription.
        events = self.events = parts.events = EventBus(config.api.event_queue_size)
        self._started("events", events.close)
        # Subscribers can only connect once the API listens: the recovered recordings'
        # RECORDINGSTOPPED wait for them a while.
        events.hold(recovered, RECOVERED_EVENTS_HOLD_SECONDS)

        disk = self.disk = parts.disk = DiskGuard.from_config(config)
        scheduler = self.scheduler = Scheduler(
            capture=capture, store=store, writer=writer,
            recordings_dir=config.storage.recordings_dir, core_ident=config.core.ident,
            preroll_seconds=config.capture.preroll_seconds,
            commit_delay_seconds=config.capture.commit_delay_seconds,
            stereo=config.storage.stereo, stored=stored, after_call=after_call,
            policy=Policy.from_config(config.recording, len(capture.channels)),
            disk_ok=disk.ok, disk_full=disk.disk_full, events=events, journal=journal,
            max_tracked_devices=config.recording.max_tracked_devices)
        scheduler.start()
        parts.scheduler = scheduler
        self._started("scheduler", scheduler.stop)

        # Purges expired recordings daily (and makes room when the config allows it); only
        # complete rows are ever touched, so it may run beside the scheduler.
        retention = self.retention = RetentionJob.from_config(store, config, disk)
        retention.start()
        self._started("retention", lambda: self._halt("retention", retention.stop,
                                                      retention.join))

        triggers = TriggerLoop(capture, scheduler, vox=[
            VoxParams(round(board.vox_start_seconds * driver.sample_rate),
                      round(board.vox_hold_seconds * driver.sample_rate))
            for driver, board in zip(drivers, config.boards, strict=True)
            for _ in board.devices])
        triggers.start()
        self._started("triggers", lambda: self._halt("triggers", triggers.stop, triggers.join))

        work_dir = data_dir / "tmp"
        try:
            removed = clean_work_dir(work_dir)
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot create {work_dir}: "
                               f"{exc.strerror or exc}") from exc
        if removed:
            logger.info("removed %d unfinished export(s) from %s", removed, work_dir)
        context = ApiContext(scheduler=scheduler, store=store, core_ident=config.core.ident,
                             calllist_max_rows=config.api.calllist_max_rows,
                             recordings_dir=config.storage.recordings_dir,
                             terminology=config.terminology, events=events,
                             mailer=Mailer(config.smtp), work_dir=work_dir)
        dispatcher = self.dispatcher = parts.dispatcher = Dispatcher(context)
        api = self.api = ApiServer(config.api, dispatcher, events,
                                   metrics=self.telemetry.render_metrics, status=self.status)
        api.start()
        parts.api = api
        # The API stops after the scheduler and the event bus, not first: while the scheduler
        # finishes the recordings in progress, requests are answered (a new call is refused
        # with "shutting down") and subscribers receive the last events before their streams
        # end. The triggers and the retention job still stop first.
        at = [name for name, _ in self._stops].index("events")
        self._stops.insert(at, ("api", lambda: self._halt("api", api.stop, api.join)))

    def reload(self, config: Config) -> None:
        """Take up a changed config's schedules, filters, limits and terminology without
        dropping a call.

        Keys that need a restart (boards, ports, storage) keep their running values.
        """
        if self.scheduler is not None and self.capture is not None:
            self.scheduler.set_policy(
                Policy.from_config(config.recording, len(self.capture.channels)))
        if self.dispatcher is not None:
            # A new context, swapped in whole: a request in progress keeps the old one.
            self.dispatcher.context = dataclasses.replace(
                self.dispatcher.context, terminology=dict(config.terminology))

    def stop(self) -> None:
        """Stop everything that started, newest first; safe to call more than once."""
        self.telemetry.parts.running = False
        while self._stops:
            name, stop = self._stops.pop()
            try:
                stop()
            except Exception:
                logger.exception("stopping %s failed", name)

    def _started(self, name: str, stop: Callable[[], None]) -> None:
        self._stops.append((name, stop))

    @staticmethod
    def _halt(name: str, stop: Callable[[], None], join: Callable[[float], bool]) -> None:
        stop()
        if not join(JOIN_TIMEOUT):
            logger.error("%s did not stop within %.0f s", name, JOIN_TIMEOUT)
