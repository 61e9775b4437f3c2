"""What the composition root has started, as the telemetry reads it."""

from __future__ import annotations

from dataclasses import dataclass

from recorder.api.dispatcher import Dispatcher
from recorder.api.portal.server import PortalServer
from recorder.api.transport.server import ApiServer
from recorder.calls.scheduler import Scheduler
from recorder.calls.watch import LimitsWatch
from recorder.capture.core import CaptureCore
from recorder.config.model import Config
from recorder.events.bus import EventBus
from recorder.recording.completion import Completion
from recorder.recording.diskspace import DiskGuard
from recorder.recording.writer import WriterLoop
from recorder.store.factory import Store


@dataclass
class Components:
    """What the composition root has started; None until (unless) it has."""

    config: Config
    store: Store | None = None
    capture: CaptureCore | None = None
    writer: WriterLoop | None = None
    completion: Completion | None = None
    scheduler: Scheduler | None = None
    watch: LimitsWatch | None = None
    events: EventBus | None = None
    disk: DiskGuard | None = None
    dispatcher: Dispatcher | None = None
    api: ApiServer | None = None
    portal: PortalServer | None = None  # when [portal] enabled
    running: bool = False  # every component started, and stopping has not begun
