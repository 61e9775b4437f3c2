"""Every Prometheus metric of the running service, read from its components at scrape time
(docs/metrics.md lists them); ``recorder.telemetry.prometheus`` writes the text format."""

from __future__ import annotations

from recorder import __version__
from recorder.capture.channels import STATE_NAMES
from recorder.drivers.base import DriverState
from recorder.telemetry.components import Components
from recorder.telemetry.prometheus import MetricFamily


def collect(p: Components, *, healthy: bool, free_bytes: int | None,
            process_started: float) -> list[MetricFamily]:
    """Every metric family, from what has started (``p``)."""
    families: list[MetricFamily] = []

    info = MetricFamily("recorder_build_info", "The recorder's version (always 1)", "gauge")
    info.add(1, version=__version__)
    families.append(info)
    start = MetricFamily("process_start_time_seconds",
                         "Start time of the process since the unix epoch in seconds",
                         "gauge")
    start.add(process_started)
    families.append(start)
    up = MetricFamily("recorder_healthy",
                      "1 when every loop of the core is turning, else 0 (see /status)", "gauge")
    up.add(1 if healthy else 0)
    families.append(up)

    families += _capture_families(p)
    families += _recording_families(p)
    families += _device_families(p)

    written = MetricFamily("recorder_bytes_written_total",
                           "Bytes written into recording files while recording", "counter")
    written.add(p.writer.bytes_written.total if p.writer is not None else 0)
    families.append(written)

    free = free_bytes
    disk = MetricFamily("recorder_disk_free_bytes",
                        "Free bytes on the file system holding the recordings", "gauge")
    if free is not None:
        disk.add(free)
    families.append(disk)
    floor = MetricFamily("recorder_disk_min_free_bytes",
                         "The free-space floor below which new recordings are refused "
                         "(0: none)", "gauge")
    floor.add(p.disk.floor_bytes if p.disk is not None else 0)
    families.append(floor)
    full = MetricFamily("recorder_disk_full",
                        "1 while new recordings are refused because a write found the disk "
                        "full, until the resume threshold is free again", "gauge")
    full.add(1 if p.disk is not None and p.disk.full else 0)
    families.append(full)
    truncated = MetricFamily("recorder_recordings_truncated_total",
                             "Recordings cut short by a full disk (stop reason truncated)",
                             "counter")
    truncated.add(p.disk.truncated if p.disk is not None else 0)
    families.append(truncated)

    if p.dispatcher is not None:
        families.append(p.dispatcher.stats.requests.collect())
        families.append(p.dispatcher.stats.latency.collect())
        families.append(p.dispatcher.stats.ignored.collect())
        families.append(p.dispatcher.stats.pending.collect())
        families.append(p.dispatcher.stats.clients.collect())
        families.append(p.dispatcher.stats.call_pending.collect())
        families.append(p.dispatcher.stats.http_connections.collect())
    subscribers = MetricFamily("recorder_event_subscribers",
                               "Event subscribers connected (socket EVENTS, WebAPI EVENTS, "
                               "Server-Sent Events)", "gauge")
    subscribers.add(p.events.subscribers if p.events is not None else 0)
    families.append(subscribers)
    errors = MetricFamily("recorder_store_errors_total",
                          "Errors the database store has raised, whoever called", "counter")
    errors.add(p.store.errors if p.store is not None else 0)
    families.append(errors)
    spooled = MetricFamily("recorder_store_spooled_changes",
                           "Recording rows' changes waiting in the spool for the database "
                           "to take them", "gauge")
    spooled.add(p.store.recordings.spooled if p.store is not None else 0)
    families.append(spooled)
    return families


def _capture_families(p: Components) -> list[MetricFamily]:
    capture = p.capture
    channels = capture.channels if capture is not None else []
    boards = MetricFamily("recorder_board_up", "1 when the board's driver is running",
                          "gauge")
    by_state = MetricFamily("recorder_channels", "Channels by state (as CHANNELS names "
                            "it)", "gauge")
    dropped = MetricFamily("recorder_dropped_samples_total",
                           "Samples lost per channel: gap (never captured, written as "
                           "silence) or overrun (overwritten before a reader got them)",
                           "counter")
    if capture is not None:
        for i, board in enumerate(capture.boards):
            config = p.config.boards
            boards.add(1 if board.driver_state is DriverState.RUNNING else 0, board=board.key,
                       driver=config[i].driver if i < len(config) else "")
    counts = dict.fromkeys(STATE_NAMES.values(), 0)
    for channel in channels:
        counts[STATE_NAMES[channel.status.snapshot().state]] += 1
        levels = channel.levels()
        labels = {"channel": str(channel.id), "device": channel.device_id}
        dropped.add(levels.gap_frames, **labels, kind="gap")
        dropped.add(levels.overrun_frames, **labels, kind="overrun")
    for state, count in counts.items():
        by_state.add(count, state=state)
    return [boards, by_state, dropped]

def _recording_families(p: Components) -> list[MetricFamily]:
    scheduler = p.scheduler
    active = MetricFamily("recorder_recordings_active",
                          "Recordings whose file is open", "gauge")
    totals = {
        what: MetricFamily(f"recorder_recordings_{what}_total", text, "counter")
        for what, text in (
            ("started", "Recordings started (calls and RECORDSTART)"),
            ("completed", "Recordings completed (file closed, row written)"),
            ("refused", "Calls not recorded (refused by the rules, or no file could be "
                        "made)"))
    }
    decisions = MetricFamily("recorder_decisions_total",
                             "Recording decisions at CALLSTART, by outcome and the "
                             "reason's RESULTTYPE", "counter")
    if scheduler is not None:
        stats = scheduler.stats
        active.add(stats.active)
        totals["started"].add(stats.started)
        totals["completed"].add(stats.completed)
        totals["refused"].add(stats.refused)
        for (record, reason), count in sorted(stats.decisions().items()):
            decisions.add(count, decision="record" if record else "refuse", reason=reason)
    return [active, *totals.values(), decisions]

def _device_families(p: Components) -> list[MetricFamily]:
    scheduler = p.scheduler
    devices = MetricFamily("recorder_devices", "Devices in the live device table: tapped "
                           "by a channel, or tracked from their calls", "gauge")
    limit = MetricFamily("recorder_devices_max_tracked",
                         "recording.max_tracked_devices: tracked devices beyond it are "
                         "forgotten, least recently used first", "gauge")
    evicted = MetricFamily("recorder_devices_evicted_total",
                           "Tracked devices forgotten to keep the table at its limit",
                           "counter")
    if scheduler is not None:
        size = scheduler.status.device_table_size()
        devices.add(size.tapped, kind="tapped")
        devices.add(size.tracked, kind="tracked")
        limit.add(size.max_tracked)
        evicted.add(size.evicted)
    return [devices, limit, evicted]


