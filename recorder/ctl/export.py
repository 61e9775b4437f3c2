"""``recorderctl export``: one recording, in any format, through the WebAPI's EXPORT."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import http.client
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from recorder.ctl.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CtlError,
    ProgressBar,
    SubParsers,
    Target,
    command,
    connection_options,
    install_configured_key,
    offline_config,
    open_offline_store,
    require_ok,
    size,
    sized,
    target,
    web_get,
)

if TYPE_CHECKING:
    from recorder.store.factory import Store

EPILOG = """Asks the WebAPI (--web-port, else api.web_port of the configuration) for
EXPORT UNIQUEFIELD=ident UNIQUEID=RECORDID MEDIA_FORMAT=FORMAT and streams the answer into
FILE.part next to FILE, renamed to FILE once complete: FILE never holds half a recording.
Without -o the file is named as the recorder offers it (42-1001-09-50-08.mp3), in the current
directory. A progress bar is drawn on a terminal.

--offline exports from the configuration's data directory (--config) instead, for when
recorderd is down: the same file, written the same way (an encrypted recording decrypted with
--key-file, else storage.key_file). It only reads the database.

exit status:
  0  the recording was written to FILE
  1  the recorder refused (e.g. 41: no such recording, still in progress, file missing), or FILE
     could not be written
  2  usage error, or FILE exists (--force to replace it)
  3  the recorder could not be reached, or the transfer broke off"""

FORMATS = ("wav", "mp3", "vox", "wav-ulaw", "wav-alaw", "cav")
CHUNK = 1 << 16
_OFFERED = re.compile(r'filename="?([^";]+)"?')


def register(commands: SubParsers[argparse.ArgumentParser]) -> None:
    parser = command(commands, "export", "write one recording to a file, in any format",
                     EPILOG, run)
    parser.add_argument("recordid", type=int, metavar="RECORDID")
    parser.add_argument("--format", choices=FORMATS, default="wav", help="(wav)")
    parser.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="where to write it (default: the name the recorder offers)")
    parser.add_argument("--force", action="store_true", help="replace FILE if it exists")
    parser.add_argument("--offline", action="store_true",
                        help="export from the data directory directly (recorderd down)")
    parser.add_argument("--key-file", type=Path, metavar="PATH",
                        help="--offline: the master key of encrypted recordings (default: the "
                        "configuration's storage.key_file)")
    connection_options(parser, defaults=False)


def _refusal(body: bytes) -> CtlError:
    try:
        result = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return CtlError(f"EXPORT answered neither media nor a RESULT: {body[:80]!r}",
                        EXIT_FAILED)
    try:
        require_ok(result)
    except CtlError as exc:
        return exc
    return CtlError("EXPORT answered API_OK without the media", EXIT_FAILED)


def _offered_name(response: http.client.HTTPResponse, recordid: int, fmt: str) -> Path:
    found = _OFFERED.search(response.getheader("Content-Disposition") or "")
    # Only the last component of what the service offers, in the current directory.
    name = Path(found.group(1)).name if found else ""
    return Path(name or f"{recordid}.{fmt}")


def download(where: Target, recordid: int, fmt: str, output: Path | None, *,
             force: bool = False, progress: bool = False) -> tuple[Path, int]:
    """Export recording ``recordid`` as ``fmt`` into ``output``; returns (path, bytes).

    CtlError: 1 for a refusal (the RESULT's code and message) or a file that cannot be
    written, 2 for an existing file without ``force``, 3 for a transfer that broke off.
    """
    response = web_get(where, "/webAPI.aspx", {
        "type": "export", "requestid": "1", "uniquefield": "ident",
        "uniqueid": str(recordid), "media_format": fmt})
    with contextlib.closing(response):
        if response.status != 200:
            raise CtlError(f"EXPORT answered HTTP {response.status} {response.reason}",
                           EXIT_FAILED)
        content_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if content_type in ("text/xml", "application/xml"):
            raise _refusal(response.read())
        path = output if output is not None else _offered_name(response, recordid, fmt)
        if path.exists() and not force:
            raise CtlError(f"{path} exists (--force to replace it)", EXIT_USAGE)
        length_header = response.getheader("Content-Length")
        total = int(length_header) if length_header and length_header.isdigit() else 0
        part = path.with_name(path.name + ".part")
        bar = ProgressBar(sys.stderr, sized) if progress and total else None
        done = 0
        try:
            with part.open("wb") as f:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise CtlError(f"the transfer broke off after {size(done)}: {exc}",
                                       EXIT_UNREACHABLE) from exc
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    if bar is not None:
                        bar.update(done, total)
                if total and done != total:
                    raise CtlError(f"the transfer broke off after {size(done)} of "
                                   f"{size(total)}", EXIT_UNREACHABLE)
                f.flush()
                os.fsync(f.fileno())
            os.replace(part, path)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise CtlError(f"cannot write {path}: {exc.strerror or exc}", EXIT_FAILED) from exc
        except BaseException:
            part.unlink(missing_ok=True)  # never leave half a recording behind, even on Ctrl-C
            raise
        finally:
            if bar is not None:
                bar.finish()
    return path, done


def export_offline(args: argparse.Namespace) -> tuple[Path, int]:
    """Export from the data directory's database and files, as EXPORT would."""

    config = offline_config(args)
    install_configured_key(config, args.key_file)  # an encrypted recording's plain audio
    store = open_offline_store(config, seals=True)  # audited
    try:
        return _export_from(store, args)
    finally:
        store.close()


def _export_from(store: Store, args: argparse.Namespace) -> tuple[Path, int]:
    from recorder.archive.export import export_name, export_recording  # noqa: PLC0415 - codecs
    from recorder.errors import CodecError, StoreError  # noqa: PLC0415
    from recorder.store.audit import AUDIT_EXPORT, AuditEntry  # noqa: PLC0415
    from recorder.store.records import STATUS_COMPLETE  # noqa: PLC0415

    try:
        row = store.recordings.get_recording(args.recordid)
    except StoreError as exc:
        raise CtlError(str(exc), EXIT_FAILED) from exc
    if row is None:
        raise CtlError(f"no recording with RECORDID {args.recordid}", EXIT_FAILED)
    if row.status != STATUS_COMPLETE:
        raise CtlError(f"recording {args.recordid} was never completed (recorderd was "
                       "stopped during it?): `recorderctl recover` completes it", EXIT_FAILED)
    if row.purged_time is not None:
        raise CtlError(f"recording {args.recordid} was purged (retention): its file is gone",
                       EXIT_FAILED)
    path = args.output if args.output is not None else Path(export_name(row, args.format))
    if path.exists() and not args.force:
        raise CtlError(f"{path} exists (--force to replace it)", EXIT_USAGE)
    try:
        # The copy the engineer takes away: in clear, as `recorderctl decrypt` writes it.
        export_recording(row, args.format, path, in_clear=True)
    except (OSError, CodecError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise CtlError(f"cannot export recording {args.recordid}: {detail}",
                       EXIT_FAILED) from exc
    if store.audit is not None:
        # Straight from the files, past the service: the trail still says who took a copy.
        try:
            store.audit.append_audit(AuditEntry(
                time=time.time(), user_id=None, username=getpass.getuser(),
                action=AUDIT_EXPORT, target=str(args.recordid),
                detail=f"recorderctl export --offline {path.resolve()}"[:1024],
                address="local"))
        except StoreError as exc:
            raise CtlError(f"exported to {path}, but the audit trail cannot be written: "
                           f"{exc}", EXIT_FAILED) from exc
    return path, path.stat().st_size


def run(args: argparse.Namespace) -> int:
    if args.offline:
        path, written = export_offline(args)
    else:
        path, written = download(target(args), args.recordid, args.format, args.output,
                                 force=args.force, progress=sys.stderr.isatty())
    print(f"{path}: recording {args.recordid} as {args.format}, {written} bytes")
    return EXIT_OK
