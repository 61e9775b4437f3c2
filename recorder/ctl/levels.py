"""``recorderctl levels``: live level meters, polled from CHANNELS DETAIL=Y for a few seconds."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence

from recorder.ctl.channels import ChannelRow, parse_channels
from recorder.ctl.client import ApiConnection, ClientError
from recorder.ctl.common import (
    EXIT_CODES,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    connection_options,
    dbfs,
    parse_line,
    print_json,
    request_xml,
    require_ok,
    target,
)

EPILOG = f"""Each channel gets a bar from -60 dBFS (empty) to 0 dBFS (full): '#' up to the RMS
level, '|' at the peak. On a terminal the meters are redrawn in place; otherwise one line is
printed per sample. --json prints one JSON object per sample.

{EXIT_CODES}"""

FLOOR_DBFS = -60.0
BAR_WIDTH = 30


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "levels", "live level meters for a few seconds", EPILOG, run)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to watch (5)")
    parser.add_argument("--interval", type=float, default=0.25,
                        help="seconds between samples (0.25)")
    parser.add_argument("--channel", type=int, action="extend", nargs="+", metavar="ID",
                        help="only these channel IDs (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per sample")
    connection_options(parser, defaults=False)


def meter(row: ChannelRow) -> str:
    """``[#######|.......]``: '#' up to the RMS level, '|' at the peak."""
    def cells(level: float) -> int:
        if not math.isfinite(level):
            return 0
        return round(BAR_WIDTH * (min(0.0, max(FLOOR_DBFS, level)) - FLOOR_DBFS) / -FLOOR_DBFS)

    rms, peak = cells(row.rms_dbfs), cells(row.peak_dbfs)
    bar = ["#" if i < rms else "." for i in range(BAR_WIDTH)]
    if peak > 0:
        bar[peak - 1] = "|"
    return "[" + "".join(bar) + "]"


def _line(row: ChannelRow) -> str:
    return (f"{row.id:>3} {row.device:<8} {row.state:<18} {meter(row)} "
            f"peak {dbfs(row.peak_dbfs):>6}  rms {dbfs(row.rms_dbfs):>6} dBFS")


class _Screen:
    """Meters redrawn in place: the cursor goes back up over the previous drawing."""

    def __init__(self) -> None:
        self._lines = 0

    def draw(self, lines: Sequence[str]) -> None:
        out = sys.stdout
        if self._lines:
            out.write(f"\x1b[{self._lines}F")  # to the start of the first line drawn
        for line in lines:
            out.write(line + "\x1b[K\n")
        self._lines = len(lines)
        out.flush()


def run(args: argparse.Namespace) -> int:
    if args.seconds <= 0 or args.interval <= 0:
        raise CtlError("--seconds and --interval must be more than 0", EXIT_USAGE)
    where = target(args)
    wanted = set(args.channel or ())
    screen = _Screen() if sys.stdout.isatty() and not args.json else None
    request = request_xml("CHANNELS", DETAIL="Y")
    try:
        conn = ApiConnection(where.host, where.socket_port, where.timeout)
    except ClientError as exc:
        raise CtlError(str(exc), EXIT_UNREACHABLE) from exc
    with conn:
        start = time.monotonic()
        sample = 0
        while True:
            try:
                result = require_ok(parse_line(conn.request(request), "CHANNELS"))
            except ClientError as exc:
                raise CtlError(str(exc), EXIT_UNREACHABLE) from exc
            now = time.time()
            rows = [r for r in parse_channels(result) if not wanted or r.id in wanted]
            if wanted and not rows:
                raise CtlError(f"no channel {', '.join(map(str, sorted(wanted)))}; "
                               "`recorderctl channels` lists them", EXIT_USAGE)
            if args.json:
                print_json({"time": round(now, 3), "channels": [
                    {k: v for k, v in r.as_json().items()
                     if k in ("id", "device", "state", "peak_dbfs", "rms_dbfs", "silent")}
                    for r in rows]}, indent=None)
            elif screen is not None:
                screen.draw([_line(r) for r in rows])
            else:
                stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 10)}"
                print(stamp + "  " + "  ".join(
                    f"{r.id}:{r.device} {meter(r)} {dbfs(r.peak_dbfs)}/{dbfs(r.rms_dbfs)}"
                    for r in rows), flush=True)
            sample += 1
            next_at = start + sample * args.interval
            if next_at - start >= args.seconds:
                return EXIT_OK
            time.sleep(max(0.0, next_at - time.monotonic()))
