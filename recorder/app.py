"""The composition root: builds the service in named stages, starts them in order, stops them
in reverse.

=============  ==============================================================================
stage          what it starts
=============  ==============================================================================
storage        the data directory, the store (recordings behind the outage spool, the
               directory), the crash journal and the recovery of what a crash left open
events         the event bus (holding the recovered recordings' RECORDINGSTOPPED a while)
recording      after-call encoding, the completion worker, the writer loop, the disk guard
capture        the drivers and the capture core
calls          the scheduler and its limits watch, the retention job, the triggers
api            the dispatcher, the socket API and the WebAPI
portal         the web portal's listener, when ``[portal] enabled`` (docs/portal.md)
=============  ==============================================================================

Stopping goes over the stages twice, newest first. The first pass drains: the triggers stop
starting calls, the scheduler refuses new ones ("shutting down") and ends every recording in
progress while the capture still delivers their last samples, the writer closes the files still
inside their commit delay, the completion worker completes every row, and the event bus ends
each subscription after its last events; meanwhile the API still answers. The second pass stops
what is left: the API's servers, the threads, the drivers, the journal and the store.
So every subscriber hears how its calls ended, and nothing recorded is left incomplete.

Each component is also handed, as it starts, to the telemetry (``recorder.telemetry``), which
reads them for ``/metrics``, ``/status``, ``health()`` and ``summary_line()``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recorder.api.context import ApiContext
from recorder.api.dispatcher import Dispatcher
from recorder.api.portal.server import PortalServer
from recorder.api.transport.access import ApiAccess
from recorder.api.transport.server import ApiServer
from recorder.archive.export import clean_work_dir
from recorder.archive.mailer import Mailer
from recorder.archive.retention import RetentionJob
from recorder.archive.workspace import ExportWorkspace
from recorder.calls.scheduler import Scheduler
from recorder.calls.sessions import SessionCalls
from recorder.calls.triggers import TriggerLoop
from recorder.calls.watch import LimitsWatch
from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.config.boards import BoardCommon
from recorder.config.model import Config
from recorder.crypt.keyring import KeyRing
from recorder.crypt.servicekeys import open_ring, reload_ring
from recorder.drivers.base import Driver
from recorder.drivers.registry import create_driver
from recorder.errors import DriverError, StartupError, StoreError
from recorder.events.bus import EventBus
from recorder.events.types import Event, make_event
from recorder.recording.aftercall import AfterCallEncoder
from recorder.recording.completion import Completion
from recorder.recording.diskspace import DiskGuard
from recorder.recording.files import RecordingFiles, StoredFormat
from recorder.recording.journal import Journal, JournalContents
from recorder.recording.recovery import recover
from recorder.recording.stats import RecordingStats
from recorder.recording.writer import WriterLoop, default_threads
from recorder.rules.decision import Policy
from recorder.rules.triggers import VoxParams
from recorder.store.auditqueue import AuditQueue, replay_pending
from recorder.store.factory import Store, open_store
from recorder.store.passwords import PasswordHasher
from recorder.store.sqlite_audit import SqliteAudit
from recorder.telemetry.components import Components
from recorder.telemetry.reporter import HUNG_AFTER_SECONDS, Telemetry

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 10.0
# How long after a start the RECORDINGSTOPPED of recordings a crash interrupted are given to
# each new event subscriber (a CTI system reconnecting after the restart).
RECOVERED_EVENTS_HOLD_SECONDS = 300.0


def _nothing() -> None:
    pass


@dataclass
class Stage:
    """One started stage: what its first stopping pass does (drain) and its second (stop)."""

    name: str
    drain: Callable[[], None] = _nothing
    stop: Callable[[], None] = _nothing


class Recorder:
    """The whole service, in-process: what ``recorderd`` runs and what tests start directly."""

    def __init__(self, config: Config, *,
                 hung_after_seconds: float = HUNG_AFTER_SECONDS) -> None:
        self.config = config
        self._stages: list[Stage] = []
        self.store: Store | None = None
        self.journal: Journal | None = None
        self.capture: CaptureCore | None = None
        self.completion: Completion | None = None
        self.writer: WriterLoop | None = None
        self.scheduler: Scheduler | None = None
        self.watch: LimitsWatch | None = None
        self.dispatcher: Dispatcher | None = None
        self.api: ApiServer | None = None
        self.portal: PortalServer | None = None
        self.events: EventBus | None = None
        self.disk: DiskGuard | None = None
        self.after_call: AfterCallEncoder | None = None
        self.retention: RetentionJob | None = None
        self.files: RecordingFiles | None = None
        self.exports: ExportWorkspace | None = None
        self._drivers: list[Driver] = []
        self._recovered: list[Event] = []
        self.keys: KeyRing | None = None  # storage.key_file's master keys, when it is set
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
        """Start every stage in order; on failure, stop what had started and raise."""
        self.telemetry.starting()
        try:
            for name, start in (("storage", self._start_storage), ("events", self._start_events),
                                ("recording", self._start_recording),
                                ("capture", self._start_capture), ("calls", self._start_calls),
                                ("api", self._start_api), ("portal", self._start_portal)):
                stage = Stage(name)
                self._stages.append(stage)
                start(stage)
        except BaseException:
            self.stop()
            raise
        self.telemetry.parts.running = True

    def stop(self) -> None:
        """Drain, then stop, every stage that started, newest first; safe to call more than
        once."""
        self.telemetry.parts.running = False
        stages, self._stages = self._stages[::-1], []
        for step in ("drain", "stop"):
            for stage in stages:
                try:
                    getattr(stage, step)()
                except Exception:
                    logger.exception("%s: %s failed", stage.name,
                                     "draining" if step == "drain" else "stopping")

    def health(self) -> list[str]:
        """Empty when healthy; else one sentence per hung or dead loop of the core (writer,
        capture monitor, limits watch, completion worker, API event loop), or that the recorder
        is not running. A database that is away is not a health problem (see ``status()``)."""
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

    # --- the stages --------------------------------------------------------------------------

    def _start_storage(self, stage: Stage) -> None:
        config = self.config
        data_dir = config.storage.data_dir
        try:
            config.storage.recordings_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot create {data_dir}: "
                               f"{exc.strerror or exc}") from exc
        logger.info("data directory %s", data_dir)
        # The master keys of encrypted recordings, installed for every reader of them.
        self.keys = open_ring(config.storage)
        store = self.store = self.telemetry.parts.store = open_store(config.storage)
        stage.stop = store.close
        # Before anything records: the recordings a crash left open first (recording/recovery).
        journal = self.journal = Journal(data_dir)
        try:
            contents = journal.open()
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot open the crash journal "
                               f"{journal.path}: {exc.strerror or exc}") from exc

        audit = self._start_audit(store, journal, contents)

        def close() -> None:
            if audit is not None:
                # Last of all: every entry the stages before queued is written (or, if the
                # database refuses it, left in the journal for the next start).
                _halt("audit writer", audit.stop, audit.join)
            journal.close()
            store.close()

        stage.stop = close
        recovered = recover(store.recordings, journal, contents, file_keys=store.file_keys)
        self._recovered = [r.event for r in recovered if r.event is not None]
        self._recovered += [make_event(kind, fields) for kind, fields in contents.announce]

    def _start_audit(self, store: Store, journal: Journal, contents: JournalContents
                     ) -> AuditQueue | None:
        """The audit trail's writer (``recorder.store.auditqueue``): first the entries a crash
        left queued in the journal, then every request's through it, in batches."""
        trail = store.audit
        if not isinstance(trail, SqliteAudit):
            return None
        # The chain's head is kept in the journal too (docs/storage.md), by the writer, with
        # the last queued entry each batch committed.
        audit = AuditQueue(trail, trail, journal)
        try:
            replay_pending(trail, journal, contents.audit_pending, contents.audit_head)
        except (StoreError, OSError) as exc:
            # The database refuses them now: the writer tries again, before anything new.
            logger.error("audit: cannot write the entries a crash left queued yet: %s", exc)
            audit.requeue(contents.audit_pending)
        store.audit = audit
        audit.start()
        return audit

    def reload_keys(self) -> str | None:
        """SIGHUP: the key file again (``recorderctl key rotate`` under a running service);
        None when done, else why not (the keys stay as they were)."""
        if self.keys is None:
            return None
        return reload_ring(self.keys, self.config.storage.data_dir)

    def _start_events(self, stage: Stage) -> None:
        events = self.events = self.telemetry.parts.events = EventBus(
            self.config.api.event_queue_size)
        # Closed in the drain pass, once the last events are published: each subscription
        # then ends after them.
        stage.drain = events.close
        # Subscribers can only connect once the API listens: the recovered recordings'
        # RECORDINGSTOPPED wait for them a while.
        events.hold(self._recovered, RECOVERED_EVENTS_HOLD_SECONDS)

    def _start_recording(self, stage: Stage) -> None:
        config, storage = self.config, self.config.storage
        assert self.store is not None
        assert self.events is not None
        options: dict[str, Any] = {}
        if storage.format == "mp3":
            options = {"bitrate": storage.mp3_bitrate or None, "quality": storage.mp3_quality}
        elif storage.format == "vox":
            options = {"rate": storage.vox_rate}
        stored = StoredFormat(storage.format, storage.encode == "after-call", options)
        disk = self.disk = self.telemetry.parts.disk = DiskGuard.from_config(config)
        after_call: AfterCallEncoder | None = None
        if stored.after_call and storage.format != "wav":
            # Encodes only what fits beside the recordings' room; the rest waits as WAV.
            after_call = self.after_call = AfterCallEncoder(
                self.store.recordings, storage.format, storage.recordings_dir,
                storage.transcode_workers, options, room=disk, keys=self.keys)
        stats = RecordingStats()
        completion = self.completion = self.telemetry.parts.completion = Completion(
            self.store.recordings, journal=self.journal, events=self.events,
            after_call=after_call, stats=stats, disk_full=disk.disk_full)
        writer = self.writer = self.telemetry.parts.writer = WriterLoop(
            completion, fsync_interval=storage.fsync_interval_seconds,
            threads=storage.writer_threads or default_threads())
        # The room kept for the recordings in progress grows with what they write.
        disk.count_live(writer.bytes_per_second)
        self.files = RecordingFiles(
            recordings_dir=storage.recordings_dir, store=self.store.recordings, writer=writer,
            completion=completion, stored=stored, stereo=storage.stereo,
            commit_delay_seconds=config.capture.commit_delay_seconds, journal=self.journal,
            stats=stats, disk_full=disk.disk_full, keys=self.keys)

        def drain() -> None:
            # The files still inside their commit delay get their last audio (the capture
            # core still runs), then the completion worker finishes every closed file.
            _halt("writer", writer.stop, writer.join)
            _halt("completion", completion.stop, completion.join)

        def stop() -> None:
            if after_call is not None:
                _halt("after-call", after_call.stop, after_call.join)

        stage.drain, stage.stop = drain, stop
        if after_call is not None:
            after_call.start()
        completion.start()
        writer.start()

    def _start_capture(self, stage: Stage) -> None:
        config = self.config
        drivers: list[Driver] = []
        problems: list[str] = []
        for i, board in enumerate(config.boards):
            try:
                drivers.append(create_driver(f"boards[{i}]", board))
            except DriverError as exc:
                problems.append(str(exc))  # every board's, as --check-config says them
        if problems:
            raise DriverError("\n".join(problems))
        self._drivers = drivers
        capture = self.capture = CaptureCore(
            [CaptureBoard(driver, _channel_devices(driver, board),
                          config.capture.lookback_seconds, board.silence_threshold_dbfs)
             for driver, board in zip(drivers, config.boards, strict=True)],
            triggers=[[board.channel_trigger(i) for i in range(driver.channels)]
                      for driver, board in zip(drivers, config.boards, strict=True)],
        )
        capture.start()
        self.telemetry.parts.capture = capture
        stage.stop = lambda: _halt("capture", capture.stop, capture.join)
        if not capture.channels:
            logger.warning("no boards configured: calls are tracked but nothing is recorded")

    def _start_calls(self, stage: Stage) -> None:
        config = self.config
        assert self.store is not None
        assert self.capture is not None
        assert self.disk is not None
        assert self.files is not None
        capture, disk = self.capture, self.disk
        scheduler = self.scheduler = Scheduler(
            capture=capture, store=self.store, files=self.files, core_ident=config.core.ident,
            preroll_seconds=config.capture.preroll_seconds,
            policy=Policy.from_config(config.recording, len(capture.channels)),
            disk_ok=disk.ok, events=self.events,
            max_tracked_devices=config.recording.max_tracked_devices)
        self.telemetry.parts.scheduler = scheduler
        watch = self.watch = self.telemetry.parts.watch = LimitsWatch(
            scheduler, scheduler.table, capture, disk_ok=disk.ok, disk_full=disk.disk_full)
        # Purges expired recordings daily (and makes room when the config allows it); only
        # complete rows are ever touched, so it may run beside the scheduler.
        retention = self.retention = RetentionJob.from_config(self.store.recordings, config,
                                                              disk, audit=self.store.evidence)
        triggers = TriggerLoop(capture, scheduler, vox=[
            VoxParams(round(board.vox_start_seconds * driver.sample_rate),
                      round(board.vox_hold_seconds * driver.sample_rate))
            for driver, board in zip(self._drivers, config.boards, strict=True)
            for _ in range(driver.channels)], sessions=SessionCalls(capture, scheduler))

        def drain() -> None:
            _halt("triggers", triggers.stop, triggers.join)  # no new calls from the lines
            _halt("retention", retention.stop, retention.join)
            scheduler.stop()  # refuses new calls, ends every recording in progress
            _halt("limits watch", watch.stop, watch.join)  # it finds no call left

        stage.drain = drain
        watch.start()
        retention.start()
        triggers.start()

    def _start_api(self, stage: Stage) -> None:
        config = self.config
        assert self.scheduler is not None
        assert self.store is not None
        assert self.events is not None
        work_dir = config.storage.data_dir / "tmp"
        try:
            removed = clean_work_dir(work_dir)
        except OSError as exc:
            raise StartupError(f"storage.data_dir: cannot create {work_dir}: "
                               f"{exc.strerror or exc}") from exc
        if removed:
            logger.info("removed %d unfinished export(s) from %s", removed, work_dir)
        passwords = PasswordHasher()
        # One work area for the API's exports and the portal's renditions and downloads.
        exports = self.exports = ExportWorkspace(work_dir, config.api.export_max_bytes,
                                                 config.api.export_concurrency, guard=self.disk)
        context = ApiContext(scheduler=self.scheduler, store=self.store,
                             core_ident=config.core.ident,
                             calllist_max_rows=config.api.calllist_max_rows,
                             recordings_dir=config.storage.recordings_dir,
                             terminology=config.terminology, events=self.events,
                             mailer=Mailer(config.smtp), work_dir=work_dir,
                             exports=exports,
                             passwords=passwords)
        dispatcher = self.dispatcher = self.telemetry.parts.dispatcher = Dispatcher(context)
        api = self.api = ApiServer(config.api, dispatcher, self.events,
                                   metrics=self.telemetry.render_metrics, status=self.status,
                                   access=ApiAccess(config.api, self.store))
        try:
            api.start()
        except BaseException:
            passwords.close()
            raise
        self.telemetry.parts.api = api

        def stop() -> None:
            _halt("api", api.stop, api.join)
            passwords.close()  # after the API's workers, the only ones that hash

        # Stopped in the second pass: while the other stages drain, requests are answered (a
        # new call is refused with "shutting down") and subscribers get the last events.
        stage.stop = stop


    def _start_portal(self, stage: Stage) -> None:
        config = self.config
        if not config.portal.enabled:
            logger.info("web portal off ([portal] enabled = true turns it on; docs/portal.md)")
            return
        assert self.store is not None
        portal = self.portal = PortalServer(config.portal, self.store, config.storage.data_dir,
                                            config.storage.recordings_dir, status=self.status,
                                            directory_changed=self._directory_changed,
                                            live_session=self.scheduler.status.live_session
                                            if self.scheduler is not None else None,
                                            mailer=Mailer(config.smtp), exports=self.exports,
                                            blackouts=self.scheduler.blackouts
                                            if self.scheduler is not None else None)
        portal.start()
        self.telemetry.parts.portal = portal
        # Stopped in the second pass, after the recordings have drained (pages still answer
        # meanwhile), before the store closes.
        stage.stop = lambda: _halt("portal", portal.stop, portal.join)
        if not any(user.has_password for user in self.store.directory.list_users()):
            logger.warning("portal: no user can sign in yet (there is no default password); "
                           "create the first administrator with: recorderctl user add --admin "
                           "USERNAME")


    def _directory_changed(self) -> None:
        if self.scheduler is not None:
            self.scheduler.lookup.directory_changed()


def _channel_devices(driver: Driver, board: BoardCommon) -> tuple[str, ...]:
    """The device of each of the board's channels; "" for a channel bound to calls as they
    come (a siprec board's)."""
    return board.devices if board.devices_are_channels else ("",) * driver.channels


def _halt(name: str, stop: Callable[[], None], join: Callable[[float], bool]) -> None:
    stop()
    if not join(JOIN_TIMEOUT):
        logger.error("%s did not stop within %.0f s", name, JOIN_TIMEOUT)
