"""EMAIL and COMBINEDEMAIL: exported recordings sent as a mail attachment through [smtp].

EMAIL attaches one recording as MEDIA_FORMAT, or a ZIP of several; COMBINEDEMAIL attaches the
recordings played one after the other as one file. The checks run cheapest first, so a request
is refused before any audio is converted: parameters (16), addresses (45), a mail server to send
through (31), the recordings (41). The SMTP conversation itself can still end in 31 (server
unreachable, login refused) or 45 (the server refused an address).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from email.headerregistry import Address
from email.message import EmailMessage

from recorder.api.context import ApiContext
from recorder.api.handlers.media import (
    admit,
    combined_name,
    exportable,
    exported,
    find,
    media_format,
    parse_idents,
    require,
    temporary,
    unique_field,
    work_dir,
)
from recorder.api.handlers.media import (
    by_ident as rows_by_ident,
)
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, RequestError, invalid
from recorder.archive.export import (
    MEDIA_TYPES,
    combined_bytes,
    export_bytes,
    export_combined,
    export_name,
    export_recording,
    export_zip,
    extension,
    zip_bytes,
)
from recorder.archive.mailer import (
    Attachment,
    Mailer,
    MailRefused,
    MailUnavailable,
    build_message,
    split_addresses,
)
from recorder.config.values import address_problem
from recorder.resultcodes import ResultCode
from recorder.store.records import RecordingRow
from recorder.timefmt import manual_datetime

logger = logging.getLogger(__name__)

# COMBINEDEMAIL has no MEDIA_FORMAT in the manual's parameter list (its data-type table has
# one): without it the combined file is an MP3, small enough for a mailbox.
COMBINED_DEFAULT_FORMAT = "mp3"
_LINE_BREAK = re.compile(r"[\r\n]")


def email(ctx: ApiContext, params: Params) -> ApiResult:
    """EMAIL: IDENT (one or a comma list), TOADDRESS, MEDIA_FORMAT."""
    require(params, "IDENT", "TOADDRESS", "MEDIA_FORMAT")
    idents = parse_idents(params.text("IDENT") or "")
    fmt = media_format(params.text("MEDIA_FORMAT"))
    recipients = _recipients(params)
    mailer = _mailer(ctx)
    rows = [exportable(row) for row in rows_by_ident(ctx, idents)]
    single = len({row.ident for row in rows}) == 1
    what = (f"EMAIL of recording {rows[0].ident} as {fmt.upper()}" if single
            else f"EMAIL of {len(rows)} recordings as {fmt.upper()} in a ZIP")
    estimate = exported(rows, what, lambda: export_bytes(rows[0], fmt) if single
                        else zip_bytes(rows, fmt))
    # The attachment is made in the work area under its budget, like an export, and removed
    # once the message is sent or has failed.
    with admit(ctx, what, estimate), temporary(ctx, extension(fmt) if single else "zip") as path:
        if single:
            exported(rows, what, lambda: export_recording(rows[0], fmt, path))
            attachment = Attachment(path, export_name(rows[0], fmt), MEDIA_TYPES[fmt])
        else:
            exported(rows, what, lambda: export_zip(rows, fmt, path, work_dir(ctx)))
            attachment = Attachment(path, f"recordings-{rows[0].ident}-{rows[-1].ident}.zip",
                                    MEDIA_TYPES["zip"])
        subject = (f"Recording {rows[0].ident}" if single
                   else f"Recordings {', '.join(str(row.ident) for row in rows)}")
        _send(mailer, build_message(mailer.sender, recipients, subject, _body(rows),
                                    [attachment]))
        path.unlink(missing_ok=True)
    return ApiResult(ResultCode.API_OK, "API_OK")


def combined_email(ctx: ApiContext, params: Params) -> ApiResult:
    """COMBINEDEMAIL: the IDENT list as one file, from FROMADDRESS/FROMNAME to TOADDRESS/TONAME.

    UNIQUEID names the field the IDENT values are found in, as in the manual's example
    (``<UNIQUEID>IDENT</UNIQUEID>``, the default): RECORDIDs, or e.g. USER2 values (the newest
    recording of each); UNIQUEFIELD is taken as a synonym.
    """
    require(params, "IDENT", "TOADDRESS")
    field_name = _field_name(params)
    column = unique_field(field_name, "UNIQUEID")
    values = [value.strip() for value in (params.text("IDENT") or "").split(",")]
    if column == "ident":
        values = [str(ident) for ident in parse_idents(params.text("IDENT") or "")]
    elif not all(values):
        raise invalid("IDENT has an empty value between its commas")
    fmt = media_format(params.text("MEDIA_FORMAT") or COMBINED_DEFAULT_FORMAT, combined=True)
    recipients = _recipients(params)
    sent_from = (_address(params, "FROMADDRESS", "FROMNAME") if params.text("FROMADDRESS")
                 else None)
    from_name = _name(params, "FROMNAME")
    mailer = _mailer(ctx)
    # Without FROMADDRESS, the configured sender, under FROMNAME if one is given.
    sender = sent_from or Address(from_name or mailer.sender.display_name,
                                  addr_spec=mailer.sender.addr_spec)
    rows = [exportable(find(ctx, column, value, f"{field_name.upper()} {value!r}"))
            for value in values]
    what = (f"COMBINEDEMAIL of recording {rows[0].ident}" if len(rows) == 1
            else f"COMBINEDEMAIL of {len(rows)} recordings") + f" as {fmt.upper()}"
    estimate = exported(rows, what, lambda: combined_bytes(rows, fmt))
    with admit(ctx, what, estimate), temporary(ctx, extension(fmt)) as path:
        exported(rows, what, lambda: export_combined(rows, fmt, path))
        attachment = Attachment(path, combined_name(rows, fmt), MEDIA_TYPES[fmt])
        subject = ("Recording " if len(rows) == 1 else "Recordings ") + ", ".join(
            str(row.ident) for row in rows)
        _send(mailer, build_message(sender, recipients, subject,
                                    _body(rows, combined=True), [attachment]))
        path.unlink(missing_ok=True)
    return ApiResult(ResultCode.API_OK, "API_OK")


def _field_name(params: Params) -> str:
    by_id, by_field = params.text("UNIQUEID"), params.text("UNIQUEFIELD")
    if by_id and by_field and by_id.upper() != by_field.upper():
        raise invalid(f"UNIQUEID {by_id!r} and UNIQUEFIELD {by_field!r} name different fields; "
                      "send one")
    return by_id or by_field or "IDENT"


def _mailer(ctx: ApiContext) -> Mailer:
    if ctx.mailer is None or not ctx.mailer.configured:
        raise RequestError(ResultCode.API_ERROR_CLIENT_NOT_FOUND,
                           "no mail server is configured (the [smtp] section's host)")
    return ctx.mailer


def _recipients(params: Params) -> list[Address]:
    addresses = split_addresses(params.text("TOADDRESS") or "")
    if not addresses:
        raise invalid("TOADDRESS is required")
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            raise RequestError(ResultCode.API_EMAIL_NOT_VALID, f"TOADDRESS: {problem}")
    # TONAME names the recipient when there is one; several addresses go unnamed.
    name = _name(params, "TONAME") if len(addresses) == 1 else ""
    return [Address(name, addr_spec=address) for address in addresses]


def _address(params: Params, address_param: str, name_param: str) -> Address:
    address = params.text(address_param) or ""
    problem = address_problem(address)
    if problem is not None:
        raise RequestError(ResultCode.API_EMAIL_NOT_VALID, f"{address_param}: {problem}")
    return Address(_name(params, name_param), addr_spec=address)


def _name(params: Params, name: str) -> str:
    value = params.text(name) or ""
    if _LINE_BREAK.search(value):
        raise invalid(f"{name} must be one line")
    return value


def _send(mailer: Mailer, message: EmailMessage) -> None:
    try:
        mailer.send(message)
    except MailRefused as exc:
        raise RequestError(ResultCode.API_EMAIL_NOT_VALID, str(exc)) from exc
    except MailUnavailable as exc:
        logger.warning("mail to %s not sent: %s", message["To"], exc)
        raise RequestError(ResultCode.API_ERROR_CLIENT_NOT_FOUND, str(exc)) from exc


def _body(rows: Sequence[RecordingRow], *, combined: bool = False) -> str:
    """A line per recording: what a recipient needs to know which call they are hearing."""
    intro = ("The attached file holds these recordings, one after the other:" if combined
             else "The attached file holds:" if len(rows) == 1
             else "The attached ZIP file holds these recordings:")
    lines = [intro, ""]
    for row in rows:
        facts = [f"RECORDID {row.ident}", f"device {row.device_id}",
                 f"started {manual_datetime(row.start_time)}"]
        if row.duration is not None:
            facts.append(f"{row.duration:.0f} s")
        facts += [f"{name} {row.meta[name]}" for name in ("ANI", "DNIS", "CALLDIRECTION")
                  if row.meta.get(name)]
        lines.append("- " + ", ".join(facts))
    return "\n".join(lines) + "\n"
