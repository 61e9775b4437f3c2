"""``recorderctl channels``: every channel's state, trigger, levels and lost audio, from the
socket API's CHANNELS with DETAIL=Y (docs/capture.md explains states and counters)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from lxml import etree

from recorder.ctl.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_OK,
    CtlError,
    SubParsers,
    Target,
    api_call,
    command,
    connection_options,
    dbfs,
    fields,
    finite,
    print_json,
    print_table,
    require_ok,
    target,
)

EPILOG = f"""GAPS counts the holes in a channel's audio (the device delivered nothing for a
while; frames lost in total after the slash), OVERRUNS the times the capture fell behind and
dropped audio. Levels are the newest block's, in dBFS (0 = full scale; -inf = digital silence).

{EXIT_CODES}"""


@dataclass(frozen=True)
class ChannelRow:
    """One channel as CHANNELS DETAIL=Y answers it."""

    id: int
    device: str
    state: str
    state_code: int | None
    detail: str
    trigger: str
    since: int | None
    peak_dbfs: float
    rms_dbfs: float
    silent: bool
    gaps: int
    gap_frames: int
    overruns: int
    overrun_frames: int

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "device": self.device, "state": self.state,
                "state_code": self.state_code, "detail": self.detail, "trigger": self.trigger,
                "since": self.since, "peak_dbfs": finite(self.peak_dbfs),
                "rms_dbfs": finite(self.rms_dbfs), "silent": self.silent, "gaps": self.gaps,
                "gap_frames": self.gap_frames, "overruns": self.overruns,
                "overrun_frames": self.overrun_frames}


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "channels", "show every channel: state, trigger, levels, lost "
                     "audio", EPILOG, run)
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    connection_options(parser, defaults=False)


def _number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def _level(text: str) -> float:
    try:
        return float(text)  # "-inf" included
    except ValueError:
        return -math.inf


def parse_channels(result: etree._Element) -> list[ChannelRow]:
    rows = []
    for element in result.iterfind("CHANNELS/CHANNEL"):
        f = fields(element)
        code = f.get("STATECODE", "")
        since = f.get("LASTSTATECHANGEUNIXTIME", "")
        rows.append(ChannelRow(
            id=_number(f.get("ID", "")), device=f.get("RECORDINGDEVICE", ""),
            state=f.get("STATE", ""), state_code=int(code) if code.isdigit() else None,
            detail=f.get("STATEDETAIL", ""), trigger=f.get("TRIGGER", ""),
            since=int(since) if since.isdigit() else None,
            peak_dbfs=_level(f.get("PEAKDBFS", "")), rms_dbfs=_level(f.get("RMSDBFS", "")),
            silent=f.get("SILENT") == "Y", gaps=_number(f.get("GAPS", "")),
            gap_frames=_number(f.get("GAPFRAMES", "")), overruns=_number(f.get("OVERRUNS", "")),
            overrun_frames=_number(f.get("OVERRUNFRAMES", ""))))
    return rows


def fetch_channels(where: Target) -> list[ChannelRow]:
    """Every channel, now; CtlError if the service cannot be asked or refuses."""
    result = require_ok(api_call(where, "CHANNELS", DETAIL="Y"))
    rows = parse_channels(result)
    if rows and rows[0].state_code is None:
        raise CtlError("this recorderd does not answer CHANNELS DETAIL=Y (levels and "
                       "counters); it is older than this recorderctl", EXIT_FAILED)
    return rows


def run(args: argparse.Namespace) -> int:
    rows = fetch_channels(target(args))
    if args.json:
        print_json([row.as_json() for row in rows])
        return EXIT_OK
    if not rows:
        print("no channels (no boards configured)")
        return EXIT_OK
    print_table(
        ["ID", "DEVICE", "STATE", "TRIGGER", "PEAK dBFS", "RMS dBFS", "GAPS/FRAMES",
         "OVERRUNS/FRAMES"],
        [[str(r.id), r.device, r.state + (f" ({r.detail})" if r.detail else ""), r.trigger,
          dbfs(r.peak_dbfs), dbfs(r.rms_dbfs), f"{r.gaps}/{r.gap_frames}",
          f"{r.overruns}/{r.overrun_frames}"] for r in rows],
        right={0, 4, 5, 6, 7})
    return EXIT_OK
