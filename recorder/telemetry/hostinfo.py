"""The host's health as SYSTEMSTATUS reports it, read from /proc, /sys and statvfs.

The parsers take text, so they are tested with fixed inputs; the readers only open the files.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PROC = Path("/proc")
SYS_CPU = Path("/sys/devices/system/cpu")
MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True)
class DiskSpace:
    total: int  # bytes
    free: int  # bytes the recorder can still write (what non-root users may use)


@dataclass(frozen=True)
class Processor:
    speed_mhz: float | None
    type: str


@dataclass(frozen=True)
class Memory:
    total_kib: int
    free_kib: int  # available for new work without swapping (MemAvailable)


def disk_space(path: Path) -> DiskSpace | None:
    """Space on the file system holding ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError as exc:
        logger.warning("SYSTEMSTATUS: cannot read the space on %s: %s", probe, exc)
        return None
    return DiskSpace(total=st.f_blocks * st.f_frsize, free=st.f_bavail * st.f_frsize)


def uptime_seconds() -> float:
    """Seconds since the system booted."""
    try:
        return float((PROC / "uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return time.clock_gettime(time.CLOCK_BOOTTIME)


def format_uptime(seconds: float) -> str:
    """The manual's wording: ``0 days, 18 hours, 24 minutes, 37 seconds.``"""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} days, {hours} hours, {minutes} minutes, {secs} seconds."


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per block (per logical CPU on x86)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip().lower()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def processor_type(block: dict[str, str]) -> str:
    """In the form of the manual's example (Windows' identifier) where the fields exist:
    ``x86 Family 6 Model 15 Stepping 11``; else the model name the kernel reports."""
    if all(k in block for k in ("cpu family", "model", "stepping")):
        return (f"x86 Family {block['cpu family']} Model {block['model']} "
                f"Stepping {block['stepping']}")
    for key in ("model name", "cpu model", "processor", "hardware"):
        value = block.get(key, "")
        if value and not value.isdigit():
            return value
    return platform.machine()


def processors(cpuinfo: str, count: int, sys_cpu: Path = SYS_CPU) -> list[Processor]:
    """One entry per logical CPU, with its clock and type."""
    blocks = parse_cpuinfo(cpuinfo)
    by_index = {int(b["processor"]): b for b in blocks if b.get("processor", "").isdigit()}
    # ARM kernels put the model in a block of its own, shared by every CPU.
    shared = {k: v for b in blocks if not b.get("processor", "").isdigit() for k, v in b.items()}
    found = []
    for i in range(count):
        block = {**shared, **by_index.get(i, {})}
        found.append(Processor(_speed(block, i, sys_cpu), processor_type(block)))
    return found


def _speed(block: dict[str, str], index: int, sys_cpu: Path) -> float | None:
    try:
        return float(block["cpu mhz"])
    except (KeyError, ValueError):
        pass
    for name in ("scaling_cur_freq", "cpuinfo_max_freq"):
        try:
            return int((sys_cpu / f"cpu{index}" / "cpufreq" / name).read_text()) / 1000
        except (OSError, ValueError):
            continue
    return None


def read_processors() -> list[Processor]:
    try:
        text = (PROC / "cpuinfo").read_text()
    except OSError:
        text = ""
    return processors(text, os.cpu_count() or 1)


_MEMINFO = re.compile(r"^(\w+):\s+(\d+)\s*kB", re.MULTILINE)


def parse_meminfo(text: str) -> Memory | None:
    values = {m[1]: int(m[2]) for m in _MEMINFO.finditer(text)}
    if "MemTotal" not in values:
        return None
    free = values.get("MemAvailable", values.get("MemFree", 0))
    return Memory(total_kib=values["MemTotal"], free_kib=min(free, values["MemTotal"]))


def read_memory() -> Memory | None:
    try:
        return parse_meminfo((PROC / "meminfo").read_text())
    except OSError as exc:
        logger.warning("SYSTEMSTATUS: cannot read memory figures: %s", exc)
        return None
