"""What the running service says about itself: Prometheus metrics, the /status document, health.

The composition root hands ``Telemetry`` the components it has started (``Components``); this
module reads them when asked, at scrape time: the capture core's dropped-sample counters, the
event bus's subscribers, the disk guard's free space, and the counts the components keep of
what only they know (the dispatcher's requests and latencies, the scheduler's decisions and
recordings, the writer's bytes, the store's errors). Nothing flows the other way: no component
imports this module or a registry of metrics.

Health is about the core being stuck, not about the world: the writer loop, the capture
monitor, the limits watch, the completion worker and the API event loop each note the time of
their last turn, and one that has not turned for ``hung_after`` seconds, or whose thread has
ended, is a problem (systemd's watchdog restarts a service that stays so). A database that is
away is shown in /status but is not a health problem: recording goes on without it and a
restart would not bring it back.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recorder import __version__
from recorder.capture.channels import STATE_NAMES, ChannelState
from recorder.drivers.base import DriverState
from recorder.telemetry.components import Components
from recorder.telemetry.metrics import collect
from recorder.telemetry.prometheus import render

HUNG_AFTER_SECONDS = 10.0
# How long /status waits for the scheduler's lock before it leaves "active" out (null): a
# diagnostic must answer while the scheduler is stuck.
LOCK_TIMEOUT_SECONDS = 1.0
GIB = 1 << 30

NOT_RUNNING = "the recorder is not running"


@dataclass(frozen=True)
class _Loop:
    """One loop whose heartbeat health watches."""

    name: str
    heartbeat: float  # time.monotonic() of its last turn
    alive: bool  # its thread is running


def process_start_time() -> float | None:
    """Unix time this process started (from /proc), or None where that cannot be read."""
    try:
        stat = Path("/proc/self/stat").read_text(encoding="ascii")
        # Fields after the command name (which may hold spaces and parentheses); starttime is
        # field 22 of the whole line, in clock ticks since boot.
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        with open("/proc/stat", encoding="ascii") as proc_stat:
            boot = next(int(line.split()[1]) for line in proc_stat
                        if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _dbfs(value: float) -> float | None:
    """A level for JSON, which has no infinity: digital silence (-inf) is null."""
    return round(value, 1) if math.isfinite(value) else None


def _address(address: tuple[str, int] | None) -> str | None:
    return f"{address[0]}:{address[1]}" if address is not None else None


def _disk_total(path: Path) -> int:
    """Size of the file system holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).total


class Telemetry:
    """Reads the components for /metrics, /status, health and systemd's STATUS= line."""

    def __init__(self, parts: Components, *, hung_after: float = HUNG_AFTER_SECONDS,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.parts = parts
        self.hung_after = hung_after
        self._clock = clock
        self._monotonic = monotonic
        self.started = clock()
        self._started_monotonic = monotonic()
        self._process_started = process_start_time() or self.started

    def starting(self) -> None:
        """The service is starting now: ``started`` and the uptime count from here."""
        self.started = self._clock()
        self._started_monotonic = self._monotonic()

    # --- health ------------------------------------------------------------------------------

    def _loops(self) -> list[_Loop]:
        p = self.parts
        loops: list[_Loop] = []
        if p.writer is not None:
            loops.append(_Loop("writer loop", p.writer.heartbeat, p.writer.alive))
        if p.capture is not None:
            loops.append(_Loop("capture monitor", p.capture.heartbeat, p.capture.monitor_alive))
        if p.watch is not None:
            loops.append(_Loop("limits watch", p.watch.heartbeat, p.watch.alive))
        if p.completion is not None:
            loops.append(_Loop("completion worker", p.completion.heartbeat,
                               p.completion.alive))
        if p.api is not None:
            loops.append(_Loop("API event loop", p.api.heartbeat, p.api.loop_alive))
        if p.portal is not None:
            loops.append(_Loop("portal event loop", p.portal.heartbeat, p.portal.alive))
        return loops

    def health(self) -> list[str]:
        """One sentence per hung or dead loop of the core; empty when healthy."""
        if not self.parts.running:
            return [NOT_RUNNING]
        now = self._monotonic()
        problems: list[str] = []
        for loop in self._loops():
            if not loop.alive:
                problems.append(f"{loop.name} has stopped: its thread is not running")
            elif now - loop.heartbeat > self.hung_after:
                problems.append(f"{loop.name} has not run for {now - loop.heartbeat:.0f} s")
        return problems

    def summary_line(self) -> str:
        """One line for systemd's STATUS=: what is being recorded, disk, health."""
        p = self.parts
        channels = p.capture.channels if p.capture is not None else []
        recording = sum(1 for c in channels
                        if c.status.snapshot().state is ChannelState.RECORDING)
        started = p.scheduler.stats.started if p.scheduler is not None else 0
        free = self._free_bytes()
        disk = f"disk {free / GIB:.1f} GB free" if free is not None else "disk space unknown"
        if p.disk is not None and p.disk.full:
            disk = f"DISK FULL, new recordings refused ({disk})"
        problems = self.health()
        # A board that does not capture is not a hang (its driver keeps reopening the device),
        # but it is the first thing `systemctl status` should show.
        down = [f"{board.key} {board.driver_state.value}"
                for board in (p.capture.boards if p.capture is not None else [])
                if board.driver_state is not DriverState.RUNNING]
        state = problems[0] if problems else "; ".join([*down, "healthy"])
        return (f"recording {recording} of {len(channels)} channels; {started} recordings "
                f"since start; {disk}; {state}")

    def _free_bytes(self) -> int | None:
        if self.parts.disk is None:
            return None
        try:
            return self.parts.disk.free_bytes()
        except OSError:
            return None

    # --- /status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The /status document (docs/metrics.md); JSON-able, no infinities."""
        p = self.parts
        problems = self.health()
        scheduler = p.scheduler
        stats = scheduler.stats if scheduler is not None else None
        return {
            "version": __version__,
            "ident": p.config.core.ident,
            "pid": os.getpid(),
            "started": self.started,
            "uptime_seconds": round(self._monotonic() - self._started_monotonic, 3),
            "health": {"ok": not problems, "problems": problems},
            "boards": self._boards(),
            "channels": self._channels(),
            "disk": self._disk(),
            "database": self._database(),
            "recordings": {
                "active": stats.active if stats else 0,
                "started": stats.started if stats else 0,
                "completed": stats.completed if stats else 0,
                "refused": stats.refused if stats else 0,
            },
            "active": self._active(),
            "devices": self._devices(),
            "api": {
                "socket": _address(p.api.socket_address) if p.api else None,
                "web": _address(p.api.web_address) if p.api else None,
                "tls": _address(p.api.tls_address) if p.api else None,
                "requests": p.dispatcher.stats.total if p.dispatcher else 0,
                "event_subscribers": p.events.subscribers if p.events else 0,
            },
        }

    def _boards(self) -> list[dict[str, Any]]:
        p = self.parts
        if p.capture is None:
            return []
        return [{
            "name": board.key,
            "driver": p.config.boards[i].driver if i < len(p.config.boards) else "",
            "sample_rate": board.driver.sample_rate,
            "channels": board.driver.channels,
            "state": board.driver_state.value,
            "detail": board.driver_detail,
        } for i, board in enumerate(p.capture.boards)]

    def _channels(self) -> list[dict[str, Any]]:
        if self.parts.capture is None:
            return []
        found: list[dict[str, Any]] = []
        for channel in self.parts.capture.channels:
            state = channel.status.snapshot()
            levels = channel.levels()
            found.append({
                "id": channel.id,
                "device": channel.device_id,
                "state": STATE_NAMES[state.state],
                "since": state.since,
                "trigger": channel.trigger,
                "recording": state.state is ChannelState.RECORDING,
                "peak_dbfs": _dbfs(levels.peak_dbfs),
                "rms_dbfs": _dbfs(levels.rms_dbfs),
                "silent": levels.silent,
                "gaps": levels.gaps,
                "gap_frames": levels.gap_frames,
                "overruns": levels.overruns,
                "overrun_frames": levels.overrun_frames,
            })
        return found

    def _disk(self) -> dict[str, Any]:
        path = self.parts.config.storage.recordings_dir
        disk = self.parts.disk
        floor = disk.floor_bytes if disk is not None else 0
        detail = ""
        free: int | None = None
        total: int | None = None
        try:
            free = disk.free_bytes() if disk is not None else shutil.disk_usage(path).free
            total = _disk_total(path)
        except OSError as exc:
            detail = f"cannot read the space on {path}: {exc.strerror or exc}"
        full = disk is not None and disk.full
        if full and disk is not None and not detail:
            detail = disk.explain()
        return {
            "path": str(path),
            "free_bytes": free,
            "total_bytes": total,
            "min_free_bytes": floor,
            # A write failed for lack of space: new recordings wait for resume_free_bytes.
            "full": full,
            "resume_free_bytes": disk.resume_bytes if full and disk is not None else None,
            "truncated": disk.truncated if disk is not None else 0,
            "ok": free is not None and (floor <= 0 or free >= floor) and not full,
            "detail": detail,
        }

    def _database(self) -> dict[str, Any]:
        store = self.parts.store
        storage = self.parts.config.storage
        if store is None:
            # (storage.database holds no password: the config refuses one.)
            return {"backend": "", "path": storage.database or str(storage.database_path),
                    "ok": False,
                    "recordings": None, "errors": 0, "spooled": 0,
                    "detail": "the store is not open"}
        recordings: int | None = None
        detail = ""
        try:
            recordings = store.recordings.count_recordings()
        except Exception as exc:  # StoreError, or anything a broken backend raises
            detail = str(exc)
        return {"backend": store.backend, "path": store.location, "ok": recordings is not None,
                "recordings": recordings, "errors": store.errors,
                "spooled": store.recordings.spooled,
                "detail": detail}

    def _devices(self) -> dict[str, int] | None:
        if self.parts.scheduler is None:
            return None
        size = self.parts.scheduler.status.device_table_size()
        return {"tapped": size.tapped, "tracked": size.tracked,
                "max_tracked": size.max_tracked, "evicted": size.evicted}

    def _active(self) -> list[dict[str, Any]] | None:
        if self.parts.scheduler is None:
            return []
        found = self.parts.scheduler.status.in_progress(timeout=LOCK_TIMEOUT_SECONDS)
        if found is None:
            return None  # the scheduler is stuck; health says so once it has been for long
        return [{
            "recordid": r.record_id,
            "device": r.device_id,
            "global_id": r.global_id,
            "started": r.started,
            "seconds": round(r.seconds, 3),
            "partial": r.partial,
            "paused": r.paused,
            "filename": r.filename,
        } for r in found]

    # --- /metrics ----------------------------------------------------------------------------

    def render_metrics(self) -> str:
        """The Prometheus text exposition of every metric (docs/metrics.md)."""
        return render(collect(self.parts, healthy=not self.health(),
                              free_bytes=self._free_bytes(),
                              process_started=self._process_started))


__all__ = ["HUNG_AFTER_SECONDS", "Components", "Telemetry", "process_start_time"]
