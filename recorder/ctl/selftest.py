"""``recorderctl selftest``: record a few seconds on a channel through the API, export the
recording over the WebAPI, decode it, and say whether the whole chain works."""

from __future__ import annotations

import argparse
import contextlib
import math
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recorder.ctl.channels import ChannelRow, fetch_channels
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    Target,
    api_call,
    command,
    connection_options,
    print_json,
    result_failure,
    size,
    target,
    web_json,
)
from recorder.ctl.events import EventStream, ReceivedEvent
from recorder.ctl.export import download

EPILOG = """Steps: pick a channel (the first idle one, preferring API-triggered channels, unless
--channel or --device names one); CALLSTART on its device and wait for RECORDINGSTARTED; wait
--seconds; CALLSTOP and wait for RECORDINGSTOPPED; export the recording as WAV over the WebAPI;
decode it. Checks: the file decodes; its duration is the call's plus the pre-roll
([capture] preroll_seconds of the configuration) within 0.5 s; its sample rate is the
channel's board's (from /status); its level. Digital silence is a WARN (an idle real line may
be quiet) unless --require-signal makes it a FAIL. The test call stays in the database like any
other recording (CALLID "selftest").

exit status:
  0  PASS
  1  FAIL (the failing step says why)
  2  usage error
  3  the recorder could not be reached or did not answer"""

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
DURATION_TOLERANCE = 0.5
EVENT_TIMEOUT = 10.0
CALL_ID = "selftest"


@dataclass
class Step:
    name: str
    status: str = PASS
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(step.status == FAIL for step in self.steps)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """A timed step; a _Failed raised inside marks it FAIL and ends the test."""
        step = Step(name)
        self.steps.append(step)
        started = time.monotonic()
        try:
            yield step
        except _Failed as exc:
            step.status, step.detail = FAIL, str(exc)
            raise
        finally:
            step.seconds = time.monotonic() - started

    def check(self, name: str, status: str, detail: str) -> None:
        self.steps.append(Step(name, status, 0.0, detail))


class _Failed(Exception):
    """The step cannot pass; the test goes no further."""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "selftest", "record, export and decode a test call: PASS/FAIL",
                     EPILOG, run)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--channel", type=int, metavar="ID", help="the channel to test")
    which.add_argument("--device", metavar="DEVICEID", help="the device to test")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to record (3)")
    parser.add_argument("--require-signal", action="store_true",
                        help="digital silence fails the test")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    connection_options(parser, defaults=False)


def _pick(channels: list[ChannelRow], args: argparse.Namespace) -> ChannelRow:
    if args.channel is not None or args.device is not None:
        for row in channels:
            if row.id == args.channel or (args.device is not None and row.device == args.device):
                return row
        named = f"channel {args.channel}" if args.channel is not None else \
            f"device {args.device}"
        raise CtlError(f"no {named}; `recorderctl channels` lists them", EXIT_USAGE)
    idle = [row for row in channels if row.state_code == 0]
    if not idle:
        raise _Failed(f"no idle channel among {len(channels)}; name one with --channel")
    return next((row for row in idle if row.trigger == "api"), idle[0])


def _board_rate(where: Target, channel: ChannelRow) -> tuple[int | None, str]:
    """The sample rate of the board the channel belongs to (channels are numbered across the
    boards in order), from /status; None and why when it cannot be told."""
    try:
        doc = web_json(where, "/status")
    except CtlError as exc:
        return None, f"cannot read /status: {exc.message}"
    first = 1
    for board in doc.get("boards", []):
        count = int(board.get("channels") or 0)
        if first <= channel.id < first + count:
            return int(board["sample_rate"]), str(board.get("name", ""))
        first += count
    return None, f"/status names no board for channel {channel.id}"


def _wait_for(stream: EventStream, event_type: str, device: str) -> ReceivedEvent:
    deadline = time.monotonic() + EVENT_TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        event = stream.next(left)
        if event is not None and event.event_type == event_type and \
                event.data.get("DEVICEID") == device:
            return event
    raise _Failed(f"no {event_type} event within {EVENT_TIMEOUT:g} s")


def _call(where: Target, request_type: str, device: str) -> None:
    result = api_call(where, request_type, DEVICEID=device, CALLID=CALL_ID)
    failure = result_failure(result)
    if failure is not None:
        raise _Failed(f"{request_type} answered {failure}")


def _record(where: Target, report: Report, channel: ChannelRow,
            seconds: float) -> tuple[int, float]:
    """CALLSTART, wait, CALLSTOP; (RECORDID, how long the call lasted)."""
    device = channel.device
    stream = EventStream(where, "RECORD", (device,))
    stopped = False
    try:
        with report.step("start call") as step:
            _call(where, "CALLSTART", device)
            began = time.monotonic()
            started = _wait_for(stream, "RECORDINGSTARTED", device)
            reason = started.data.get("ERRORREASON", "")
            if reason not in ("", "NONE"):
                raise _Failed(f"the call is not recorded: {reason}")
            step.detail = f"recording to {started.data.get('FILENAME', '?')}"
        with report.step("record") as step:
            time.sleep(max(0.0, began + seconds - time.monotonic()))
            step.detail = f"{seconds:g} s on device {device}"
        with report.step("stop call") as step:
            try:
                _call(where, "CALLSTOP", device)
            finally:
                stopped = True
            ended = time.monotonic()
            done = _wait_for(stream, "RECORDINGSTOPPED", device)
            recordid = done.data.get("RECORDID", "")
            if not recordid.isdigit():
                raise _Failed("RECORDINGSTOPPED names no RECORDID: the recording has no row "
                              "(is the database failing? see `recorderctl status`)")
            reason = done.data.get("ERRORREASON", "")
            step.detail = f"RECORDID {recordid}" + (
                f", stopped: {reason}" if reason not in ("", "NONE") else "")
        return int(recordid), ended - began
    finally:
        if not stopped:
            # Never leave the test call running on a line, whatever went wrong.
            with contextlib.suppress(CtlError):
                api_call(where, "CALLSTOP", DEVICEID=device)
        stream.close()


def _audio_checks(report: Report, path: Path, call_seconds: float, preroll: float, *,
                  rate: int | None,
                  rate_source: str, require_signal: bool) -> None:
    import numpy as np  # noqa: PLC0415 - the audio stack only for the commands that decode
    import soundfile  # noqa: PLC0415

    with report.step("decode") as step:
        try:
            audio, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
        except (RuntimeError, soundfile.LibsndfileError) as exc:
            raise _Failed(f"the export does not decode: {exc}") from exc
        frames, channels = audio.shape
        duration = frames / file_rate
        step.detail = f"{file_rate} Hz, {channels} channel(s), {duration:.2f} s"
    # The pre-roll is audio from before the call's start, as much as the channel holds: all of
    # it on a board that has been running, less on one that has just started.
    shortest, longest = call_seconds, call_seconds + preroll
    fits = shortest - DURATION_TOLERANCE <= duration <= longest + DURATION_TOLERANCE
    report.check("duration", PASS if fits else FAIL,
                 f"{duration:.2f} s; expected the call's {call_seconds:.2f} s plus up to "
                 f"{preroll:g} s of pre-roll, ± {DURATION_TOLERANCE:g} s")
    if rate is None:
        report.check("sample rate", WARN, f"{file_rate} Hz; the channel's is unknown "
                     f"({rate_source})")
    else:
        report.check("sample rate", PASS if file_rate == rate else FAIL,
                     f"{file_rate} Hz; {rate_source} runs at {rate} Hz")
    peak = float(np.max(np.abs(audio))) if frames else 0.0
    if peak == 0.0:
        report.check("level", FAIL if require_signal else WARN,
                     "digital silence (nothing but zeros)"
                     + ("" if require_signal else ": fine on an idle line, check the wiring "
                        "otherwise"))
    else:
        report.check("level", PASS, f"peak {20 * math.log10(peak):.1f} dBFS")


def _test(where: Target, args: argparse.Namespace, report: Report,
          about: dict[str, Any]) -> None:
    """Every step, in order, filling ``about`` (channel, device, recordid) as it goes; the
    first step that fails raises _Failed."""
    with report.step("pick channel") as step:
        channel = _pick(fetch_channels(where), args)
        rate, rate_source = _board_rate(where, channel)
        about.update(channel=channel.id, device=channel.device)
        step.detail = (f"channel {channel.id}, device {channel.device}, {channel.state}, "
                       f"trigger {channel.trigger}")
    recordid, call_seconds = _record(where, report, channel, args.seconds)
    about["recordid"] = recordid
    with tempfile.TemporaryDirectory(prefix="recorderctl-selftest-") as work:
        with report.step("export WAV") as step:
            try:
                path, written = download(where, recordid, "wav", Path(work) / "selftest.wav")
            except CtlError as exc:
                raise _Failed(exc.message) from exc
            step.detail = f"{size(written)} over the WebAPI"
        _audio_checks(report, path, call_seconds, where.config.capture.preroll_seconds,
                      rate=rate, rate_source=rate_source,
                      require_signal=args.require_signal)


def _print(report: Report) -> None:
    for step in report.steps:
        timing = f"{step.seconds:6.2f} s" if step.seconds else " " * 8
        print(f"{step.status:<4}  {step.name:<13} {timing}  {step.detail}")
    print("FAIL" if report.failed else "PASS")


def run(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        raise CtlError("--seconds must be more than 0", EXIT_USAGE)
    where = target(args)
    report = Report()
    about: dict[str, Any] = {}
    with contextlib.suppress(_Failed):
        _test(where, args, report, about)
    if args.json:
        print_json({"result": FAIL if report.failed else PASS, **about,
                    "steps": [{"name": s.name, "status": s.status,
                               "seconds": round(s.seconds, 3), "detail": s.detail}
                              for s in report.steps]})
    else:
        _print(report)
    return EXIT_FAILED if report.failed else EXIT_OK
