"""E-mailing a recording from its page (ALLOWEXPORTEMAIL), through the same mailer and [smtp]
server as the API's EMAIL: the recording converted to a chosen export format, attached, with a
line saying which call it is. Audited as ``email`` (the addresses and the format).

Addresses are checked before anything is converted (the config's own address rule); the SMTP
conversation runs on a portal worker, so a slow mail server holds one worker, never the event
loop. The attachment is made for the message and removed once it is sent or has failed.
"""

from __future__ import annotations

import logging
from email.headerregistry import Address

from aiohttp import web

from recorder.api.portal.context import PortalRequest
from recorder.api.portal.recordings import no_room, stored_file, visible
from recorder.api.portal.renditions import MAIL_FORMATS
from recorder.archive.export import MEDIA_TYPES, export_name
from recorder.archive.mailer import (
    Attachment,
    MailError,
    MailRefused,
    build_message,
    split_addresses,
)
from recorder.config.values import address_problem
from recorder.errors import CodecError, ResultError
from recorder.store.audit import AUDIT_EMAIL
from recorder.store.records import RecordingRow

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 10


def body(row: RecordingRow) -> str:
    """What a recipient needs to know which call they are hearing (plain text)."""
    meta = row.meta
    facts = [f"RECORDID {row.ident}", f"device {row.device_id}"]
    facts += [f"{name} {meta[name]}" for name in ("ANI", "DNIS") if meta.get(name)]
    if row.duration is not None:
        facts.append(f"{row.duration:.1f} s")
    return "The attached file holds the recording " + ", ".join(facts) + ".\n"


async def send(req: PortalRequest) -> web.StreamResponse:
    row = await visible(req)
    stored_file(req, row)  # 404 for a recording without its file
    ctx = req.ctx
    form = await req.request.post()
    fmt = str(form.get("format", "")).strip().lower()
    addresses = split_addresses(str(form.get("to", "")))

    def refused(message: str, status: int = 400) -> web.Response:
        return req.page("message.html", status=status, title="Not sent", message=message,
                        back=f"/recordings/{row.ident}")

    if fmt not in MAIL_FORMATS:
        return refused(f"Choose a format: one of {', '.join(MAIL_FORMATS)}.")
    if not addresses or len(addresses) > MAX_RECIPIENTS:
        return refused(f"Give one to {MAX_RECIPIENTS} e-mail addresses.")
    for address in addresses:
        problem = address_problem(address)
        if problem is not None:
            return refused(f"{address}: {problem}")
    mailer = ctx.mailer
    if mailer is None or not mailer.configured:
        return refused("No mail server is configured (the [smtp] section's host).", 503)

    sent_to = f"{fmt} to {', '.join(addresses)}"

    def mail() -> str | None:
        problem = deliver()
        if problem is not None:
            ctx.audit(req.entry(AUDIT_EMAIL, str(row.ident), f"not sent: {sent_to}"))
        return problem

    def deliver() -> str | None:
        path = ctx.renditions.download(row, fmt)
        # In the trail before the message leaves (docs/security.md); one the server then
        # refuses gets a second entry saying it was not sent.
        ctx.audit(req.entry(AUDIT_EMAIL, str(row.ident), sent_to))
        try:
            message = build_message(
                mailer.sender, [Address(addr_spec=a) for a in addresses],
                f"Recording {row.ident}", body(row),
                [Attachment(path, export_name(row, fmt), MEDIA_TYPES.get(fmt, "audio/wav"))])
            mailer.send(message)
        except MailRefused as exc:
            return f"The mail server refused it: {exc}"
        except MailError as exc:
            logger.warning("portal: mail of recording %d not sent: %s", row.ident, exc)
            return f"The mail server could not be reached: {exc}"
        finally:
            path.unlink(missing_ok=True)
        return None

    try:
        problem = await ctx.run(mail)
    except ResultError as exc:
        return no_room(req, exc, "attached")
    except (OSError, CodecError) as exc:
        logger.error("portal: cannot export recording %d as %s: %s", row.ident, fmt, exc)
        return refused("The recording cannot be converted.", 500)
    if problem is not None:
        return refused(problem, 502)
    return req.page("message.html", title="Sent",
                    message=f"Recording {row.ident} was sent as {fmt} to "
                            f"{', '.join(addresses)}.", back=f"/recordings/{row.ident}")
