"""``recorderctl purge``: the retention purge, now, on the configuration's data directory."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    CtlError,
    ProgressBar,
    SubParsers,
    command,
    offline_config,
    open_offline_store,
    require_database,
)

if TYPE_CHECKING:
    from recorder.archive.retention import PurgeOutcome, PurgeReport

EPILOG = """Purges now what the daily purge would: the recordings whose retention
([retention] in the configuration, see docs/retention.md) has expired. Their files are deleted
and their rows marked purged (CALLLIST still lists them). It works on the data directory the
configuration names, directly, whether recorderd is running or not.

exit status:
  0  every due recording was purged (with --dry-run: listed)
  1  some files could not be deleted (those recordings are kept), or the database failed
  2  usage error, or the configuration or its database cannot be used"""

_LABELS = {"purged": "purged", "would purge": "would purge", "missing": "purged",
           "failed": "FAILED", "deferred": "deferred", "raced": "skipped"}


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "purge", "purge the recordings whose retention has expired",
                     EPILOG, run,
                     description="Delete the files of expired recordings and mark their rows "
                                 "purged.")
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")
    parser.add_argument("--dry-run", action="store_true",
                        help="only list what would be purged; delete nothing")
    parser.add_argument("--json", action="store_true",
                        help="print the counts and every recording as one JSON object")


def _outcome_line(outcome: PurgeOutcome) -> str:
    size = f"{outcome.bytes} bytes" if outcome.bytes else "-"
    return (f"{_LABELS.get(outcome.result, outcome.result)}\tRECORDID {outcome.ident}\t"
            f"{outcome.filename or '(no file)'}\t{size}\t{outcome.detail}")


def _report_json(report: PurgeReport, outcomes: list[PurgeOutcome]) -> str:
    return json.dumps({
        "dry_run": report.dry_run, "examined": report.examined, "purged": report.purged,
        "bytes_freed": report.bytes_freed, "failures": report.failures,
        "missing": report.missing, "deferred": report.deferred,
        "recordings": [{"recordid": o.ident, "filename": o.filename,
                        "start_time": o.start_time, "result": o.result, "bytes": o.bytes,
                        "detail": o.detail} for o in outcomes],
    }, indent=2)


def run(args: argparse.Namespace) -> int:
    # Imported here: retention reaches the codecs (numpy, lameenc), which `send` does not need.
    from recorder.archive.retention import FAILED, RetentionJob, summary  # noqa: PLC0415
    from recorder.errors import StoreError  # noqa: PLC0415

    config = offline_config(args)
    require_database(config)
    # Everything worth saying is in the lines printed; the log would only repeat it.
    logging.disable(logging.ERROR)
    on_tty = sys.stdout.isatty() and not args.json
    bar = ProgressBar() if on_tty else None
    outcomes: list[PurgeOutcome] = []

    def on_outcome(outcome: PurgeOutcome) -> None:
        if args.json:
            outcomes.append(outcome)
        elif bar is None:
            print(_outcome_line(outcome))
        elif outcome.result == FAILED:
            bar.clear()
            print(_outcome_line(outcome), file=sys.stderr)

    store = open_offline_store(config, seals=not args.dry_run)
    try:
        job = RetentionJob.from_config(store.recordings, config, audit=store.evidence)
        report = job.run_now(bar.update if bar is not None else None, dry_run=args.dry_run,
                             on_outcome=on_outcome)
    except StoreError as exc:
        if bar is not None:
            bar.finish()
        raise CtlError(f"{exc}", EXIT_FAILED) from exc
    finally:
        store.close()
    if bar is not None:
        bar.finish()
    print(_report_json(report, outcomes) if args.json else summary(report))
    return EXIT_FAILED if report.failures else EXIT_OK
