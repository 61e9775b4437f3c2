"""A scheduler with everything it records through, built the way the composition root builds
it, for tests that drive the call table by hand; ``Bench`` feeds its capture core by hand."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from recorder.calls.requests import CallStart, DeviceQuery
from recorder.calls.scheduler import Scheduler
from recorder.calls.watch import LimitsWatch
from recorder.capture.core import CaptureBoard, CaptureCore
from recorder.config.loader import config_from_dict
from recorder.drivers.registry import create_driver
from recorder.drivers.settings import SyntheticBoardConfig
from recorder.events.types import CollectedEvents, EventSink
from recorder.recording.completion import AfterCall, Completion
from recorder.recording.files import RecordingFiles, StoredFormat
from recorder.recording.journal import Journal
from recorder.recording.writer import WriterLoop
from recorder.rules.decision import Policy
from recorder.store.factory import Store
from recorder.store.records import RecordingQuery, RecordingRow
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


BLOCK = 160  # frames a Bench feeds at a time: 20 ms at 8 kHz


class Bench:
    """A scheduler whose capture core is fed by hand."""

    def __init__(self, tmp_path: Path, devices: tuple[str, ...] = ("1001", "1002"),
                 preroll: float = 0.0, delay: float = 0.0, **scheduler: Any) -> None:
        self.driver = create_driver("boards[0]", SyntheticBoardConfig(
            devices=devices, channels=len(devices)))
        self.now = 1_700_000_000.0
        # The board's clock is the bench's, which moves with the samples fed: a loaded machine
        # that feeds slowly must not look to the board clock like lost input (silence).
        self.capture = CaptureCore([CaptureBoard(self.driver, devices, 10,
                                                 clock=lambda: self.now)])
        self.store = SqliteStore(tmp_path / "recorder.sqlite3")
        self.store.open()
        self.recordings = tmp_path / "recordings"
        self.calls = make_calls(self.capture, self.store, self.recordings, core_ident=3,
                                preroll_seconds=preroll, commit_delay_seconds=delay,
                                clock=lambda: self.now, **scheduler)
        self.scheduler = self.calls.scheduler
        self.writer = self.calls.writer
        self.watch = self.calls.watch
        self.captured: list[np.ndarray] = []

    def feed(self, blocks: int) -> None:
        for _ in range(blocks):
            block = self.driver.next_block(BLOCK)
            self.capture.boards[0].on_block(block)
            self.captured.append(block)
            self.now += BLOCK / 8000

    def audio(self, channel: int, start: int, end: int) -> np.ndarray:
        return np.concatenate(self.captured)[start:end, channel]

    def start(self, device: str | None = "1001", instance: str = "", **meta: str) -> None:
        self.scheduler.call_start(CallStart(device=DeviceQuery(device_id=device),
                                            instance=instance, meta=meta))

    def stop(self, device: str = "1001", instance: str | None = None) -> None:
        self.scheduler.call_stop(DeviceQuery(device_id=device), instance)

    def rows(self, **equals: str) -> list[RecordingRow]:
        return self.store.list_recordings(RecordingQuery(equals=equals, limit=10_000))

    def race(self, workers: list[Callable[[], None]]) -> None:
        """Run ``workers`` in threads at once while a feeder thread keeps capture going."""
        self.writer.start()
        done = threading.Event()

        def feed() -> None:
            while not done.is_set():
                self.feed(1)
                time.sleep(0.001)

        threads = [threading.Thread(target=feed), *(threading.Thread(target=w) for w in workers)]
        for t in threads:
            t.start()
        for t in threads[1:]:
            t.join(60)
        done.set()
        threads[0].join(10)

    def check_files(self) -> list[RecordingRow]:
        """Every row complete with a file of its own, holding what the row says; no stray file."""
        rows = self.rows()
        assert {r.status for r in rows} == {"complete"}
        assert len({r.filename for r in rows}) == len(rows)
        for row in rows:
            assert soundfile.info(row.filename).frames * 2 + 44 == row.audio_size
        on_disk = {str(p) for p in self.recordings.rglob("*.wav")}
        assert on_disk == {r.filename for r in rows}
        return rows

    def close(self) -> None:
        self.scheduler.stop()
        self.writer.stop()
        self.writer.join(5)
        self.store.close()


# --- driving a Bench: what the call model's tests share -----------------------------------------

RATE = 8000
DEV = DeviceQuery(device_id="1001")


def policy(**recording: object) -> Policy:
    config = config_from_dict({"recording": recording})
    return Policy.from_config(config.recording, channels=2)


def make_bench(tmp_path: Path, **kwargs: object) -> tuple[Bench, CollectedEvents]:
    events = CollectedEvents()
    return Bench(tmp_path, events=events, **kwargs), events


def feed_seconds(bench: Bench, seconds: float) -> None:
    bench.feed(round(seconds * RATE / BLOCK))
    bench.capture.measure()


def feed_level(bench: Bench, seconds: float, amplitude: int) -> None:
    """Blocks of a 400 Hz tone at ``amplitude`` (0: digital silence) on every channel."""
    for _ in range(round(seconds * RATE / BLOCK)):
        start = sum(len(b) for b in bench.captured)
        t = np.arange(start, start + BLOCK) / RATE
        tone = (amplitude * np.sin(2 * np.pi * 400 * t)).astype(np.int16)
        block = np.repeat(tone[:, None], len(bench.capture.boards[0].devices), axis=1)
        bench.capture.boards[0].on_block(block)
        bench.captured.append(block)
        bench.now += BLOCK / RATE
    bench.capture.measure()


def start(bench: Bench, device: str = "1001", instance: str = "", **kw: object) -> None:
    bench.scheduler.call_start(CallStart(device=DeviceQuery(device_id=device),
                                         instance=instance, **kw))  # type: ignore[arg-type]


def frames(path: str | Path) -> np.ndarray:
    data, _ = soundfile.read(str(path), dtype="int16", always_2d=True)
    return data[:, 0]
