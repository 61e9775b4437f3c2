"""Requests about the recorder itself: TEST (the manual's echo), SYSTEMSTATUS and
FETCHTERMINOLOGY."""

from __future__ import annotations

import re

from recorder.api.context import ApiContext
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, Node
from recorder.resultcodes import ResultCode
from recorder.telemetry import hostinfo
from recorder.telemetry.hostinfo import GIB, MIB


def test(ctx: ApiContext, params: Params) -> ApiResult:
    """TEST: the manual's echo request, for checking the API is up."""
    return ApiResult(ResultCode.API_OK, "API_OK")


def system_status(ctx: ApiContext, params: Params) -> ApiResult:
    body: list[Node] = [*_disk(ctx), ("SYSTEMUPTIME", hostinfo.format_uptime(
        hostinfo.uptime_seconds()))]
    for i, cpu in enumerate(hostinfo.read_processors()):
        speed = "" if cpu.speed_mhz is None else f"{round(cpu.speed_mhz)}MHz"
        body.append((f"PROCESSOR{i}", [("SYSTEMPROCESSORSPEED", speed),
                                       ("SYSTEMPROCESSORTYPE", cpu.type)]))
    body += _memory()
    return ApiResult(ResultCode.API_OK, "API_OK", body)


def _disk(ctx: ApiContext) -> list[Node]:
    path = ctx.recordings_dir
    space = hostinfo.disk_space(path) if path is not None else None
    if space is None or space.total <= 0:
        info = capacity = free = pct = ""
    else:
        # The manual's units: capacity and free space in MB (2^20 bytes: its example's
        # 476819 is its "465.64GB"), the summary in GB, the percentage with two decimals.
        info = f"{space.free / GIB:.2f}GB of {space.total / GIB:.2f}GB"
        capacity, free = str(space.total // MIB), str(space.free // MIB)
        pct = f"{space.free * 100 / space.total:.2f}"
    return [
        ("RECORDINGPATH", str(path) if path is not None else ""),
        # The example spells it RECORDINGSPEACEINFO, the parameter definitions
        # RECORDINGSPACEINFO: both are answered.
        ("RECORDINGSPEACEINFO", info),
        ("RECORDINGSPACEINFO", info),
        ("RECORDINGTOTALDISKCAPACITY", capacity),
        ("RECORDINGTOTALDISKFREE", free),
        ("RECORDINGTOTALDISKFREEPCT", pct),
    ]


def _memory() -> list[Node]:
    memory = hostinfo.read_memory()
    if memory is None or memory.total_kib <= 0:
        total = free = used = pct = ""
    else:
        total_mb, free_mb = memory.total_kib // 1024, memory.free_kib // 1024
        used_mb = total_mb - free_mb
        # Whole percent, rounded down as the manual's example is (1623 of 3325 MB -> 48).
        total, free, used = str(total_mb), str(free_mb), str(used_mb)
        pct = str(used_mb * 100 // total_mb) if total_mb else "0"
    return [("SYSTEMRAMTOTAL", total), ("SYSTEMRAMFREE", free), ("SYSTEMRAMUSED", used),
            ("SYSTEMRAMUSEDPCT", pct)]


def _natural(name: str) -> list[tuple[int, str]]:
    """user2 before user10, as a person reads them."""
    return [(int(part), "") if part.isdigit() else (-1, part)
            for part in re.split(r"(\d+)", name.casefold())]


def fetch_terminology(ctx: ApiContext, params: Params) -> ApiResult:
    names = sorted(ctx.terminology, key=_natural)
    body: list[Node] = [
        ("COUNT", str(len(names))),
        ("SETTINGS", [("TERMINOLOGY", [("NAME", name), ("VALUE", ctx.terminology[name])])
                      for name in names]),
    ]
    return ApiResult(ResultCode.API_OK, "API_OK", body)
