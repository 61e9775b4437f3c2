"""``recorderctl recover``: offline, what start-up recovery does (recorder/recording/recovery.py)
on the configuration's data directory: recordings a crash left in progress get their files
repaired and their rows completed. Refused while recorderd runs on that directory
(recorder/service/datalock.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    command,
    install_configured_key,
    local_time,
    offline_config,
    open_offline_store,
    require_database,
)
from recorder.errors import StoreError
from recorder.service.datalock import DataDirBusy, DataDirLock

EPILOG = """Recordings a killed or crashed recorderd left in progress are completed from what
their files hold: a WAV header is made to count every frame on disk, a pending blackout is
silenced, and the row gets the file's duration, size and hash, stop reason "recovered".
The crash journal lists every recording that was open, so a recording whose row never reached
the database is completed too. Their RECORDINGSTOPPED events are sent by recorderd when it next
starts.
recorderd does the same when it starts; this command does it without starting the service.
It works on the data directory the configuration names and refuses while recorderd (or
another recover) holds it.

exit status:
  0  every interrupted recording was completed (with --dry-run: listed)
  1  some could not be completed, or the database failed
  2  usage error, the configuration or its database cannot be used, or recorderd is running
     on the data directory"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "recover", "complete the recordings a crash left in progress",
                     EPILOG, run)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list what would be completed; change nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the master key of encrypted recordings (default: the "
                        "configuration's storage.key_file)")


def _file_size(filename: str) -> int | None:
    try:
        return Path(filename).stat().st_size if filename else None
    except OSError:
        return None


def run(args: argparse.Namespace) -> int:
    from recorder.recording.journal import Journal  # noqa: PLC0415 - reaches the codecs
    from recorder.recording.recovery import complete_interrupted  # noqa: PLC0415

    config = offline_config(args)
    data_dir = config.storage.data_dir
    require_database(config)
    install_configured_key(config, args.key_file)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirBusy as exc:
        who = f"process {exc.pid}" if exc.pid is not None else "another process"
        raise CtlError(f"{data_dir} is in use by {who} (recorderd?); it completes interrupted "
                       "recordings itself when it starts. Stop it first to recover offline "
                       "(systemctl stop recorder)", EXIT_USAGE) from exc
    except OSError as exc:
        raise CtlError(f"cannot lock {lock.path}: {exc.strerror or exc}", EXIT_USAGE) from exc
    # What matters is printed below; the library's own warnings would repeat it. Errors
    # (a file that cannot be read back) still show.
    logging.disable(logging.WARNING)
    journal = Journal(data_dir)
    try:
        store = open_offline_store(config, seals=not args.dry_run)
        try:
            rows = complete_interrupted(store.recordings, journal, dry_run=args.dry_run,
                                        file_keys=store.file_keys)
            if not args.dry_run:
                # The service sends their RECORDINGSTOPPED when it next starts.
                for done in rows:
                    if done.event is not None:
                        journal.announce(done.event.event_type, dict(done.event.data))
        except StoreError as exc:
            raise CtlError(str(exc), EXIT_FAILED) from exc
        except OSError as exc:
            raise CtlError(f"{journal.path}: {exc.strerror or exc}", EXIT_FAILED) from exc
        finally:
            journal.close()
            store.close()
    finally:
        lock.release()

    report: list[dict[str, Any]] = []
    failures = 0
    for row in rows:
        failures += row.result == "failed"
        report.append({
            "recordid": row.record_id, "device": row.device_id, "start_time": row.start_time,
            "filename": row.filename, "bytes": _file_size(row.filename), "result": row.result,
            "duration": row.duration, "stop_reason": row.stop_reason,
        })
    if args.json:
        print(json.dumps({"dry_run": args.dry_run, "data_dir": str(data_dir),
                          "recordings": report, "failures": failures}, indent=2))
    else:
        for item in report:
            what = (f"{item['duration']:.2f} s" if item["duration"] is not None
                    else f"started {local_time(item['start_time'])}")
            held = f"{item['bytes']} bytes" if item["bytes"] is not None else "no file"
            print(f"{item['result']}\tRECORDID {item['recordid']}\t{item['device']}\t{what}\t"
                  f"{item['filename'] or '(no file)'}\t{held}")
        verb = "would complete" if args.dry_run else "completed"
        print(f"{verb} {len(rows) - failures} interrupted recording(s)" if rows
              else f"no interrupted recordings in {data_dir}")
        if failures:
            print(f"{failures} could not be completed (see the errors above)")
    return EXIT_FAILED if failures else EXIT_OK
