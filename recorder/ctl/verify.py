"""``recorderctl verify``: re-hash the stored recordings and report any file that differs from
the one stored at its close, is missing, or has no row, and any row changed since it was
sealed (docs/storage.md, "Evidence that nothing was changed")."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from recorder.crypt.keyring import load_keys
from recorder.crypt.keys import CryptKeyError, MasterKey
from recorder.ctl.calls import parse_time
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    checking_seal_key,
    command,
    offline_config,
    open_offline_store,
    print_json,
    seal_key_option,
)
from recorder.errors import StoreError

EPILOG = """Reads the database of the configuration's data directory (--config) directly,
whether recorderd runs or not, and hashes every recording's file (a long run on a large
store: --since limits it to the recordings started, and the files changed, since DATE). Times
as for `recorderctl calls`: UNIX seconds, an ISO 8601 date or date and time in local time, or a
time ago (90s, 15m, 2h, 7d). Rows recorded before verification existed have no hash: they are
listed as "not hashed", which is not a failure. Every chunk of an encrypted recording is also
authenticated with the master key (--key-file, else storage.key_file): a flipped byte, a cut
file or a wrong or missing key file beside it is reported (`recorderctl key restore` puts a lost
one back from its row); without a key they are noted as not authenticated. Recordings still
being recorded, and files retention purged, are counted, not checked.

exit status:
  0  every file and row checked is as stored (rows not hashed do not count)
  1  something is reported: a file differs, is missing or has no row, an encrypted file's
     chunk does not authenticate or its key is missing, a row was changed or lost its seal;
     or the database failed
  2  usage or configuration error, or no database"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "verify", "check the stored recordings against their hashes",
                     EPILOG, run)
    parser.add_argument("--since", metavar="DATE", help="only recordings started (and files "
                        "changed) at or after DATE")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="the master key that authenticates encrypted recordings' chunks "
                        "(default: the configuration's storage.key_file)")
    seal_key_option(parser)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def run(args: argparse.Namespace) -> int:
    from recorder.archive.verify import verify_recordings  # noqa: PLC0415 - offline only

    try:
        since = parse_time(args.since) if args.since else None
    except ValueError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    config = offline_config(args)
    keys = _keys(args.key_file or (Path(config.storage.key_file) if config.storage.key_file
                                   else None))
    store = open_offline_store(config, seal_key_file=args.seal_key_file)
    try:
        if store.evidence is None:
            raise CtlError("this store keeps no evidence", EXIT_FAILED)
        key = checking_seal_key(config, args.seal_key_file, store.evidence.seal_state())
        report = verify_recordings(store.evidence, config.storage.recordings_dir, since,
                                   key.secret if key is not None else None, keys=keys)
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    if args.json:
        print_json({**{k: v for k, v in dataclasses.asdict(report).items()
                       if k != "findings"},
                    "failed": report.failed,
                    "findings": [dataclasses.asdict(f) for f in report.findings]})
    else:
        for finding in report.findings:
            print(("FAILED  " if finding.failed else "note    ") + finding.message)
        failures = sum(f.failed for f in report.findings)
        notes = len(report.findings) - failures
        if key is not None:
            print(f"seals checked with seal key {key.id}")
        print(f"{report.checked} recording(s) checked: {report.good} as stored, "
              f"{failures} problem(s), {notes} note(s); {report.in_progress} in progress, "
              f"{report.purged} purged, {report.no_file} without a file; "
              f"{report.files_scanned} file(s) in the recordings directory")
    return EXIT_FAILED if report.failed else EXIT_OK


def _keys(path: Path | None) -> list[MasterKey]:
    """The master keys that open the encrypted recordings (a rotation's new one too); none
    without a key file (their chunks are then noted as not authenticated)."""
    if path is None:
        return []
    try:
        return load_keys(path)[1]
    except CryptKeyError as exc:
        raise CtlError(f"{path}: {exc}", EXIT_USAGE) from exc
