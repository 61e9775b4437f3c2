"""``recorderctl events``: tail the event stream (EVENTS on the socket API, docs/events.md)."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

from recorder.ctl.client import ApiConnection, ClientError, ClientTimeout, ConnectionClosed
from recorder.ctl.common import (
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    Target,
    command,
    connection_options,
    fields,
    parse_line,
    print_json,
    request_xml,
    require_ok,
    target,
)

EPILOG = """Prints one line per event: the time it arrived, its type, its device and the
identifiers it carries (global call ID, call instance, RECORDID, ...), or with --json one JSON
object per line. Stops after --count events, after --seconds, or at Ctrl-C.

exit status:
  0  stopped as asked (--count, --seconds or Ctrl-C)
  1  the recorder refused the subscription (printed)
  2  usage error
  3  the recorder could not be reached, or closed the stream before it was asked to stop"""

CLASSES = ("ALL", "CALL", "RECORD", "CHAT")
# What a human line shows after the type and device, when the event carries it.
SHOWN = (("GLOBALCALLID", "call"), ("CALLINSTANCE", "instance"), ("RECORDID", "recordid"),
         ("SESSIONID", "session"), ("ANI", "ani"), ("DNIS", "dnis"),
         ("ERRORREASON", "reason"), ("FILENAME", "file"))


@dataclass(frozen=True)
class ReceivedEvent:
    """One ``<CALLCOPYEVENT>`` and when it arrived."""

    time: float
    event_class: str
    event_type: str
    xref: str
    data: dict[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"time": round(self.time, 3), "class": self.event_class,
                "type": self.event_type, "xref": self.xref, "data": self.data}

    def line(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time)) + \
            f".{int(self.time % 1 * 1000):03d}"
        shown = [f"{label}={self.data[name]}" for name, label in SHOWN if self.data.get(name)]
        return "  ".join([stamp, f"{self.event_type:<17}", self.data.get("DEVICEID") or "-",
                          *shown])


class EventStream:
    """A subscription on its own socket API connection."""

    def __init__(self, where: Target, event_class: str = "ALL",
                 devices: tuple[str, ...] = ()) -> None:
        try:
            self._conn = ApiConnection(where.host, where.socket_port, where.timeout)
        except ClientError as exc:
            raise CtlError(str(exc), EXIT_UNREACHABLE) from exc
        try:
            answer = self._conn.request(request_xml(
                "EVENTS", EVENTCLASS=event_class, EVENTVALUE=",".join(devices)))
            self.result = require_ok(parse_line(answer, "EVENTS"))
        except ClientError as exc:
            self._conn.close()
            raise CtlError(str(exc), EXIT_UNREACHABLE) from exc
        except BaseException:
            self._conn.close()
            raise
        self.xref = self.result.findtext("EVENTXREF") or ""

    def next(self, timeout: float | None) -> ReceivedEvent | None:
        """The next event within ``timeout`` seconds (None: wait as long as it takes), or None
        when none came. ConnectionClosed when the service ends the stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 3600.0 if deadline is None else deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self._conn.read_line(left)
            except ClientTimeout:
                if deadline is None:
                    continue
                return None
            element = parse_line(line, "EVENTS")
            if element.tag != "CALLCOPYEVENT":
                continue  # a RESULT among the events answers a request; none is sent here
            data = element.find("EVENTDATA")
            return ReceivedEvent(
                time=time.time(), event_class=element.findtext("EVENTCLASS") or "",
                event_type=element.findtext("EVENTTYPE") or "",
                xref=element.findtext("EVENTXREF") or "",
                data=fields(data) if data is not None else {})

    def close(self) -> None:
        self._conn.close()


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "events", "print the recorder's events as they happen", EPILOG,
                     run)
    parser.add_argument("--class", dest="event_class", type=str.upper, choices=CLASSES,
                        default="ALL", help="which events (ALL)")
    parser.add_argument("--device", action="append", default=[], metavar="DEVICEID",
                        help="only events about this device (repeatable; default: every one)")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    connection_options(parser, defaults=False)


def run(args: argparse.Namespace) -> int:
    if (args.count is not None and args.count < 1) or (args.seconds is not None
                                                        and args.seconds <= 0):
        raise CtlError("--count and --seconds must be more than 0", EXIT_USAGE)
    where = target(args)
    stream = EventStream(where, args.event_class, tuple(args.device))
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    seen = 0
    try:
        # On stderr, so a script reading stdout sees only events, and knows when to act.
        print(f"recorderctl events: subscribed to {args.event_class} events on {where.host}:"
              f"{where.socket_port} (EVENTXREF {stream.xref})", file=sys.stderr, flush=True)
        while args.count is None or seen < args.count:
            left = None if deadline is None else deadline - time.monotonic()
            event = stream.next(left)
            if event is None:
                break  # --seconds passed
            seen += 1
            if args.json:
                print_json(event.as_json(), indent=None)
            else:
                print(event.line(), flush=True)
    except KeyboardInterrupt:
        pass
    except ConnectionClosed as exc:
        raise CtlError(f"the recorder ended the event stream ({exc})", EXIT_UNREACHABLE) from exc
    finally:
        stream.close()
    return EXIT_OK
