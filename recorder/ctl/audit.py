"""``recorderctl audit``: the audit trail (who signed in, searched, played, downloaded,
deleted what, when, from where), read from this machine's database; ``recorderctl audit
verify`` checks its hash chain and the heads kept outside the database (docs/storage.md)."""

from __future__ import annotations

import argparse
import dataclasses

from recorder.ctl.calls import parse_time
from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CtlError,
    SubParsers,
    checking_seal_key,
    command,
    local_time,
    offline_config,
    open_offline_store,
    print_json,
    print_table,
    seal_key_option,
)
from recorder.errors import StoreError
from recorder.recording.journal import JOURNAL_NAME, JournalContents, read_journal
from recorder.store.audit import AuditEntry, AuditQuery
from recorder.store.audithead import read_head
from recorder.store.auditqueue import entry_from, unwritten
from recorder.store.evidence import (
    JOURNAL_SOURCE,
    AuditFinding,
    AuditHead,
    AuditTrailState,
    check_chain,
)

EPILOG = """`recorderctl audit verify` checks the whole trail instead: every entry's hash, the
chain from each entry to the one before (or to the anchor a purge left), and the newest entry
against the two copies of the head kept outside the database (the audit-head file beside it
and the crash journal). It names the first bad entry.

Newest first. Reads the database of the configuration's data directory (--config)
directly, whether recorderd runs or not; it never changes it (nothing can: the trail is
append-only). Times (--since, --until) as for `recorderctl calls`: UNIX seconds, an ISO 8601
date or date and time in local time, or a time ago (90s, 15m, 2h, 7d).

exit status:
  0  done (verify: the chain and its heads agree)
  1  the database failed (verify: an entry was edited or deleted, the tail truncated, or a
     head is missing or differs)
  2  usage or configuration error, or no database"""


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "audit", "read the audit trail (portal sign-ins, plays, ...)",
                     EPILOG, run)
    parser.add_argument("check", nargs="?", choices=["verify"],
                        help="verify: check the chain instead of listing entries")
    parser.add_argument("--user", help="only this user name's entries")
    parser.add_argument("--action", help="only this action (signin, signin-failed, signout, "
                        "search, play, download, delete, export, email, api-change, token, "
                        "seal-key)")
    parser.add_argument("--since", metavar="TIME", help="at or after TIME")
    parser.add_argument("--until", metavar="TIME", help="at or before TIME")
    parser.add_argument("--limit", type=int, default=100, metavar="N",
                        help="at most N entries (default 100)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    seal_key_option(parser)
    parser.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="the recorderd configuration (default: the one recorderd reads)")


def printable(text: str) -> str:
    """``text`` safe for a terminal: a name typed into the sign-in form may hold escape
    sequences meant for whoever reads the trail."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def run(args: argparse.Namespace) -> int:
    if args.check == "verify":
        return verify(args)
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until, end=True) if args.until else None
    except ValueError as exc:
        raise CtlError(str(exc), EXIT_USAGE) from exc
    if args.limit < 1:
        raise CtlError("--limit: at least 1", EXIT_USAGE)
    store = open_offline_store(offline_config(args))
    try:
        if store.audit is None:
            raise CtlError("this store keeps no audit trail", EXIT_FAILED)
        entries = store.audit.list_audit(AuditQuery(
            username=args.user, action=args.action, since=since, until=until,
            limit=args.limit))
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    if args.json:
        print_json([dataclasses.asdict(e) for e in entries])
    else:
        print_table(["TIME", "USER", "ACTION", "TARGET", "ADDRESS", "DETAIL"],
                    [[local_time(e.time), *map(printable, (e.username, e.action, e.target,
                                                           e.address, e.detail))]
                     for e in entries])
    return EXIT_OK


def _queued(contents: JournalContents, trail: AuditTrailState) -> list[AuditFinding]:
    """A note for the entries recorderd queued that a crash kept from the table: the crash
    journal holds them, and the next start writes them (recorder.store.auditqueue)."""
    after = contents.audit_head[0] if contents.audit_head else 0
    written = [AuditEntry(time=e.time, user_id=e.user_id, username=e.username,
                          action=e.action, target=e.target, detail=e.detail,
                          address=e.address) for e in trail.entries if e.entry_id > after]
    missing = unwritten([entry_from(doc) for _, doc in sorted(contents.audit_pending.items())],
                        written)
    if not missing:
        return []
    return [AuditFinding(0, f"{len(missing)} entr{'y' if len(missing) == 1 else 'ies'} "
                            "recorderd queued before it stopped (a crash) are in the crash "
                            "journal, not yet in the table: its next start writes them",
                         failed=False)]


def verify(args: argparse.Namespace) -> int:
    config = offline_config(args)
    findings: list[AuditFinding] = []
    store = open_offline_store(config, seal_key_file=args.seal_key_file)
    try:
        if store.evidence is None:
            raise CtlError("this store keeps no audit chain", EXIT_FAILED)
        state = store.evidence.seal_state()
        key = checking_seal_key(config, args.seal_key_file, state)
        # The heads before the table: an entry appended meanwhile is then one after the head,
        # never a head beyond the table's end.
        heads: list[AuditHead] = []
        try:
            head = read_head(store.evidence.head_path)
        except ValueError as exc:
            head = None
            findings.append(AuditFinding(0, f"the audit-head file is unreadable: {exc}"))
        if head is not None:
            heads.append(head)
        contents = read_journal(config.storage.data_dir / JOURNAL_NAME)
        if contents.audit_head is not None:
            heads.append(AuditHead(JOURNAL_SOURCE, *contents.audit_head))
        trail = store.evidence.audit_trail()
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    finally:
        store.close()
    # The file is written with every entry: once anything was written, it must be there.
    ever_written = bool(trail.entries) or trail.anchor is not None or bool(heads)
    findings += check_chain(trail, heads, head_file_required=ever_written and not findings,
                            key=key.secret if key is not None else None)
    findings += _queued(contents, trail)
    for finding in findings:
        print(("FAILED  " if finding.failed else "note    ") + finding.message)
    first = trail.entries[0].entry_id if trail.entries else None
    span = (f"entries {first}-{trail.entries[-1].entry_id}" if trail.entries
            else "no entries")
    anchored = (f", purged through entry {trail.anchor.entry_id} (anchored)"
                if trail.anchor is not None else "")
    bad = next((f for f in findings if f.failed), None)
    if key is not None and state.keyed:
        print(f"sealed with seal key {key.id} since "
              f"{f'entry {state.since_entry}' if state.since_entry else 'before the anchor'}")
    if bad is None:
        print(f"audit trail: {len(trail.entries)} entries ({span}{anchored}): the chain and "
              f"its heads ({', '.join(h.source for h in heads) or 'none yet'}) agree")
        return EXIT_OK
    where = f"entry {bad.entry_id}" if bad.entry_id else "the heads"
    print(f"audit trail: {len(trail.entries)} entries ({span}{anchored}): NOT intact; the "
          f"first bad one: {where}")
    return EXIT_FAILED
