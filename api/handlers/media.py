"""EXPORT, COMBINEDEXPORT (also spelled COMBINEEXPORT) and MULTIEXPORT: recorded media as the
answer to a WebAPI request.

The handlers export into a temporary file in the work directory and hand it to the transport
(``deliver``), which sends it as the response body and deletes it; only errors become a RESULT.
Each export is admitted by the work area (``ApiContext.exports``, recorder.archive.workspace)
before it writes anything, with the most it takes: too many at once or the budget in use → 47,
no room beside the live recordings → 2; a disk that fills up anyway while it is written → 2,
with nothing of it left behind.
The manual calls these functions "unique to the WebAPI": over the socket API they answer 15
API_INVALID_REQUEST_TYPE, pointing at the WebAPI. What EMAIL and COMBINEDEMAIL share with them
(finding recordings, MEDIA_FORMAT) is here too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from recorder.api.context import ApiContext
from recorder.api.protocol.fields import INT64_MAX
from recorder.api.protocol.params import Params, parse_int
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.archive.export import (
    MEDIA_TYPES,
    combined_bytes,
    export_bytes,
    export_combined,
    export_name,
    export_recording,
    export_sealed,
    export_zip,
    extension,
    zip_bytes,
)
from recorder.archive.workspace import Export, ExportWorkspace
from recorder.codecs.buffered import out_of_space
from recorder.errors import CodecError
from recorder.resultcodes import ResultCode
from recorder.rules.access import Principal
from recorder.store.audit import AUDIT_EXPORT, AuditEntry
from recorder.store.records import STATUS_RECORDING, TYPE_SCREEN, RecordingRow
from recorder.store.schema import MANUAL_COLUMNS

logger = logging.getLogger(__name__)

T = TypeVar("T")

MEDIA_REQUESTS = ("EXPORT", "COMBINEDEXPORT", "COMBINEEXPORT", "MULTIEXPORT")
MAX_IDENTS = 200  # one request's recordings; more is a batch job, not a download

# MEDIA_FORMAT as sent (any case) -> export format. The manual names WAV, MP3, VOX and CAV; the
# G.711 WAVs the recorder can store are offered too.
MEDIA_FORMATS: dict[str, str] = {
    "WAV": "wav", "MP3": "mp3", "VOX": "vox", "CAV": "cav",
    "WAV-ULAW": "wav-ulaw", "ULAW": "wav-ulaw", "WAV-ALAW": "wav-alaw", "ALAW": "wav-alaw",
}
AUDIO_FORMATS = tuple(name for name in MEDIA_FORMATS if name != "CAV")

# UNIQUEFIELD: the manual's list of Recording table columns (any case), and the API's names
# for the same columns, which the manual also invites ("any parameter inserted from a Call
# Handling API function ... such as deviceid or devicealias").
UNIQUE_FIELDS: dict[str, str] = {
    **{column.upper(): column for column in MANUAL_COLUMNS},
    "RECORDID": "ident", "DEVICEID": "device_id", "DEVICEALIAS": "device_alias",
    "GROUP": "sgroup", "AGENTID": "agent_id", "ARCHIVEACTION": "archive_action_id",
    "KEEPDAYS": "keepdays", "KEEP_DAYS": "keepdays", "RECORDINGTIME": "recording_time",
    "GLOBALCALLID": "globalid",
}


@dataclass(frozen=True)
class Media:
    """An export ready to send: a temporary file the transport deletes once sent."""

    path: Path
    content_type: str
    filename: str  # the name offered to the client (Content-Disposition)


Deliver = Callable[[Media], None]


# --- over the socket API ---------------------------------------------------------------------


def audit_export(ctx: ApiContext, address: str, params: Sequence[tuple[str, str]],
                 media: Media, principal: Principal | None = None) -> None:
    """The audit trail's entry for an export the WebAPI sends: the user who asked (with
    api.require_auth) and the client's address. A trail that cannot be written is logged: the
    export is made."""
    trail = ctx.store.audit
    if trail is None:
        return
    named = {name.upper(): value for name, value in params}
    kind = (named.get("TYPE") or named.get("REQUESTTYPE") or "").strip().upper()
    field = (named.get("UNIQUEFIELD") or "IDENT").strip()
    value = named.get("UNIQUEID") or named.get("IDENT") or ""
    target = value if field.upper() == "IDENT" else f"{field}={value}"
    try:
        trail.append_audit(AuditEntry(
            time=ctx.clock(), user_id=principal.user_id if principal else None,
            username=principal.username if principal else "", action=AUDIT_EXPORT,
            target=target[:255], detail=f"WebAPI {kind} {media.filename}"[:255],
            address=address))
    except Exception:
        logger.exception("cannot write the audit entry of an export")


def webapi_only(ctx: ApiContext, params: Params) -> ApiResult:
    """The media functions where no media can be answered (the socket API): 15."""
    raise RequestError(
        ResultCode.API_INVALID_REQUEST_TYPE,
        "this function answers with the recording's media and is only available through the "
        "WebAPI: http://<recorder>:2012/webAPI.aspx?type=export&requestid=1&uniquefield=ident"
        "&uniqueid=<RECORDID>&media_format=wav")


# --- over the WebAPI -------------------------------------------------------------------------


def media_handlers(deliver: Deliver) -> dict[str, Callable[[ApiContext, Params], ApiResult]]:
    """The handlers of the media functions for one WebAPI request, delivering to ``deliver``."""
    combined = partial(combined_export, deliver)
    return {"EXPORT": partial(export, deliver), "COMBINEDEXPORT": combined,
            "COMBINEEXPORT": combined, "MULTIEXPORT": partial(multi_export, deliver)}


def export(deliver: Deliver, ctx: ApiContext, params: Params) -> ApiResult:
    """EXPORT: UNIQUEFIELD, UNIQUEID, MEDIA_FORMAT; ENCRYPT=Y with PASSWORD makes a sealed CAV."""
    require(params, "UNIQUEFIELD", "UNIQUEID", "MEDIA_FORMAT")
    column = unique_field(params.text("UNIQUEFIELD") or "", "UNIQUEFIELD")
    value = params.text("UNIQUEID") or ""
    fmt = media_format(params.text("MEDIA_FORMAT"))
    password = _password(params, fmt)
    row = exportable(find(ctx, column, value, f"UNIQUEFIELD {column} = {value!r}"))
    # ENCRYPT=Y with an audio format is an encrypted CAV holding that audio (docs/api-notes.md)
    sent_as = "cav" if password is not None else fmt
    what = f"EXPORT of recording {row.ident} as {sent_as.upper()}"
    estimate = exported([row], what, lambda: export_bytes(row, fmt,
                                                          sealed=password is not None))
    with admit(ctx, what, estimate) as held, temporary(ctx, extension(sent_as)) as path:

        def work() -> Path:
            if password is None:
                return export_recording(row, fmt, path)
            return export_sealed(row, fmt, path, password, work_dir(ctx))

        exported([row], what, work)
        held.hand_over(path)
        deliver(Media(path, MEDIA_TYPES[sent_as], export_name(row, sent_as)))
    logger.info("EXPORT: recording %d as %s%s", row.ident, fmt,
                " in an encrypted CAV" if password is not None and fmt != "cav" else "")
    return ApiResult(ResultCode.API_OK, "API_OK")


def combined_export(deliver: Deliver, ctx: ApiContext, params: Params) -> ApiResult:
    """COMBINEDEXPORT: the IDENT list played in order as one MEDIA_FORMAT file."""
    require(params, "IDENT", "MEDIA_FORMAT")
    idents = parse_idents(params.text("IDENT") or "")
    fmt = media_format(params.text("MEDIA_FORMAT"), combined=True)
    rows = [exportable(row) for row in by_ident(ctx, idents)]
    what = f"COMBINEDEXPORT of {_counted(rows)} as {fmt.upper()}"
    estimate = exported(rows, what, lambda: combined_bytes(rows, fmt))
    with admit(ctx, what, estimate) as held, temporary(ctx, extension(fmt)) as path:
        exported(rows, what, lambda: export_combined(rows, fmt, path))
        held.hand_over(path)
        deliver(Media(path, MEDIA_TYPES[fmt], combined_name(rows, fmt)))
    logger.info("COMBINEDEXPORT: recordings %s as one %s", _listed(rows), fmt)
    return ApiResult(ResultCode.API_OK, "API_OK")


def multi_export(deliver: Deliver, ctx: ApiContext, params: Params) -> ApiResult:
    """MULTIEXPORT: a ZIP of the IDENT list's single exports in MEDIA_FORMAT."""
    require(params, "IDENT", "MEDIA_FORMAT")
    idents = parse_idents(params.text("IDENT") or "")
    fmt = media_format(params.text("MEDIA_FORMAT"))
    rows = [exportable(row) for row in by_ident(ctx, idents)]
    what = f"MULTIEXPORT of {_counted(rows)} as {fmt.upper()}"
    estimate = exported(rows, what, lambda: zip_bytes(rows, fmt))
    with admit(ctx, what, estimate) as held, temporary(ctx, "zip") as path:
        exported(rows, what, lambda: export_zip(rows, fmt, path, work_dir(ctx)))
        held.hand_over(path)
        deliver(Media(path, MEDIA_TYPES["zip"], zip_name(rows)))
    logger.info("MULTIEXPORT: recordings %s as %s in a ZIP", _listed(rows), fmt)
    return ApiResult(ResultCode.API_OK, "API_OK")


def _counted(rows: Sequence[RecordingRow]) -> str:
    """The recordings of a request, for its refusals: "recording 12" or "3 recordings"."""
    return f"recording {rows[0].ident}" if len(rows) == 1 else f"{len(rows)} recordings"


def _listed(rows: Sequence[RecordingRow]) -> str:
    return ", ".join(str(row.ident) for row in rows)


# --- shared with EMAIL and COMBINEDEMAIL -----------------------------------------------------


def require(params: Params, *names: str) -> None:
    """16 naming every one of ``names`` that is missing or blank."""
    missing = [name for name in names if not params.text(name)]
    if missing:
        listed = (missing[0] if len(missing) == 1
                  else f"{', '.join(missing[:-1])} and {missing[-1]}")
        raise invalid(f"{listed} {'is' if len(missing) == 1 else 'are'} required")


def media_format(raw: str | None, *, combined: bool = False) -> str:
    """MEDIA_FORMAT as an export format; 16 if it is not one (CAV is not one for a combined
    file: a CAV holds one recording with its metadata)."""
    offered = AUDIO_FORMATS if combined else tuple(MEDIA_FORMATS)
    fmt = MEDIA_FORMATS.get((raw or "").strip().upper())
    if fmt is None or (combined and fmt == "cav"):
        why = "; CAV holds a single recording" if fmt == "cav" else ""
        raise invalid(f"MEDIA_FORMAT must be one of {', '.join(offered)}, not "
                      f"{(raw or '')[:40]!r}{why}")
    return fmt


def unique_field(raw: str, name: str) -> str:
    """The column a UNIQUEFIELD names; 16 if it is not in the manual's list."""
    column = UNIQUE_FIELDS.get(raw.strip().upper())
    if column is None:
        raise invalid(f"{name} must be a column of the Recording table as the manual lists "
                      f"them (ident, user1-user15, callid, ani, device_id, ...), not "
                      f"{raw[:40]!r}")
    return column


def parse_idents(raw: str) -> list[int]:
    """IDENT: RECORDIDs separated by commas, in order; 16 for anything else."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) > MAX_IDENTS:
        raise invalid(f"IDENT lists {len(parts)} recordings; the limit is {MAX_IDENTS}")
    idents: list[int] = []
    for part in parts:
        number = parse_int(part)
        # Past INT64_MAX no RECORDID can exist, and SQLite cannot even be asked about it.
        if number is None or not 1 <= number <= INT64_MAX:
            raise invalid(f"IDENT must be RECORDIDs separated by commas; {part[:40]!r} is not one")
        idents.append(number)
    return idents


def find(ctx: ApiContext, column: str, value: str, described: str) -> RecordingRow:
    """The recording ``column`` = ``value`` identifies (the newest if several); 41 if none."""
    row = ctx.store.recordings.find_recording(column, value)
    if row is None:
        raise RequestError(ResultCode.API_FILE_NOT_FOUND, f"no recording with {described}")
    return row


def by_ident(ctx: ApiContext, idents: Sequence[int]) -> list[RecordingRow]:
    """The recordings ``idents`` name, in order; 41 naming the first that does not exist."""
    rows: list[RecordingRow] = []
    for ident in idents:
        row = ctx.store.recordings.get_recording(ident)
        if row is None:
            raise RequestError(ResultCode.API_FILE_NOT_FOUND, f"no recording with IDENT {ident}")
        rows.append(row)
    return rows


def exportable(row: RecordingRow) -> RecordingRow:
    """``row`` if it has finished audio to export; 41 saying why not otherwise."""
    if row.status == STATUS_RECORDING:
        raise RequestError(ResultCode.API_FILE_NOT_FOUND,
                           f"recording {row.ident} is still in progress; it can be exported "
                           "once its call has ended")
    if row.recording_type == TYPE_SCREEN or not row.filename:
        raise RequestError(ResultCode.API_FILE_NOT_FOUND,
                           f"recording {row.ident} is a screen session and has no audio")
    if not Path(row.filename).is_file():
        raise RequestError(ResultCode.API_FILE_NOT_FOUND,
                           f"the file of recording {row.ident} is missing: {row.filename}")
    return row


def combined_name(rows: Sequence[RecordingRow], fmt: str) -> str:
    ends = f"{rows[0].ident}-{rows[-1].ident}" if len(rows) > 1 else str(rows[0].ident)
    return f"combined-{ends}.{extension(fmt)}"


def zip_name(rows: Sequence[RecordingRow]) -> str:
    ends = f"{rows[0].ident}-{rows[-1].ident}" if len(rows) > 1 else str(rows[0].ident)
    return f"recordings-{ends}.zip"


def work_dir(ctx: ApiContext) -> Path:
    return ctx.work_dir or Path(tempfile.gettempdir())


@contextlib.contextmanager
def temporary(ctx: ApiContext, suffix: str) -> Iterator[Path]:
    """A new file name in the work directory, removed if the block fails (on success its
    receiver removes it). Never named after anything a client sent."""
    directory = work_dir(ctx)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="export-", suffix=f".{suffix}", dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        yield path
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def admit(ctx: ApiContext, what: str, estimate: int) -> Export:
    """A place for ``what`` in the work area, holding ``estimate`` bytes; 47 or 2 if there
    is none (recorder.archive.workspace). A context built without a work area (tests that
    make one by hand) limits nothing."""
    workspace = ctx.exports if ctx.exports is not None else ExportWorkspace(work_dir(ctx))
    return workspace.admit(what, estimate)


def exported(rows: Sequence[RecordingRow], what: str, work: Callable[[], T]) -> T:
    """Run one step of an export (its estimate, its writing): a disk that fills up while it
    writes is 2 (the step's files are gone by then), a file that vanished meanwhile
    (retention) 41, one that cannot be decoded 11 with the reason (details in the log)."""
    try:
        return work()
    except (CodecError, OSError) as exc:
        if _out_of_space(exc):
            logger.warning("%s: the disk filled up while it was written; nothing of it is "
                           "kept", what)
            raise RequestError(ResultCode.API_ERROR_OUT_OF_DISK_SPACE,
                               f"{what} was stopped: the disk filled up while it was written "
                               "and the live recordings come first; nothing of it is kept, "
                               "try again later") from exc
        missing = next((row for row in rows if not Path(row.filename).is_file()), None)
        if missing is not None:
            raise RequestError(ResultCode.API_FILE_NOT_FOUND,
                               f"the file of recording {missing.ident} is missing") from exc
        if not isinstance(exc, CodecError):
            raise
        logger.exception("%s failed", what)
        raise RequestError(ResultCode.API_ERROR_PROCESSING_MESSAGE,
                           f"the recording could not be exported: {exc}") from exc


def _out_of_space(exc: BaseException) -> bool:
    """``exc`` or what it was raised from is the disk refusing data (ENOSPC, EDQUOT): the
    writers name it in their own CodecError ("cannot write WAV header: ...")."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if out_of_space(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _password(params: Params, fmt: str) -> str | None:
    """The password to encrypt with (ENCRYPT=Y), or None; 16 for a half-given pair."""
    encrypt = (params.text("ENCRYPT") or "").strip().upper()
    password = params.text("PASSWORD") or ""
    if encrypt not in ("", "Y", "N"):
        raise invalid(f"ENCRYPT must be Y or N, not {encrypt[:40]!r}")
    if encrypt == "Y" and not password:
        raise invalid("PASSWORD is required with ENCRYPT=Y")
    if password and encrypt != "Y":
        raise invalid("PASSWORD is only used with ENCRYPT=Y; send both to encrypt the export")
    return password if encrypt == "Y" else None
