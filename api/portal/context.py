"""What portal handlers may use: the store, the settings, the sessions, the templates, the
worker threads; and the request as the server has vetted it (``PortalRequest``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from recorder.api.portal.peaks import PeakCache
from recorder.api.portal.principals import AccessCache
from recorder.api.portal.render import Templates
from recorder.api.portal.renditions import Renditions
from recorder.api.portal.sessions import Session, Sessions
from recorder.api.portal.throttle import SignInThrottle
from recorder.archive.mailer import Mailer
from recorder.calls.blackouts import BlackoutControl
from recorder.config.portal import PortalConfig
from recorder.recording.session import RecordingSession
from recorder.rules.access import Principal
from recorder.store.audit import AuditEntry
from recorder.store.factory import Store

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# Password checks at once: each is a scrypt hash (a core and 16 MiB for ~60 ms). More sign-ins
# wait their turn on the event loop, holding no thread, so a flood of them cannot take every
# worker from the pages (and max_clients bounds how many wait).
PASSWORD_CHECKS = 2


@dataclass
class PortalContext:
    config: PortalConfig
    store: Store
    sessions: Sessions
    throttle: SignInThrottle
    templates: Templates
    executor: Executor
    recordings_dir: Path
    renditions: Renditions
    secure: bool  # served over HTTPS: the cookies are Secure
    clock: Callable[[], float] = field(default=time.time)
    # The recorder's status document (Recorder.status), for the live view; None: no live view.
    status: Callable[[], Mapping[str, Any]] | None = None
    # The session of a recording in progress by RECORDID, for listening live; None: no live
    # audio (the portal reads the capture ring itself: recordings.live).
    live_session: Callable[[int], RecordingSession | None] | None = None
    # Tells the scheduler users or their phones changed (a user deleted frees their phones).
    directory_changed: Callable[[], None] = field(default=lambda: None)
    peaks: PeakCache = field(default_factory=PeakCache)  # the recordings' waveforms
    access: AccessCache = field(default_factory=AccessCache)  # users' permissions, as read
    mailer: Mailer | None = None  # [smtp], for e-mailing a recording (as the API's EMAIL)
    # The scheduler's blackouts, as BLACKOUTSTART/STOP and AGENTBLACKOUTSTART/STOP use them
    # (raising ResultError with the API's message). None: no blackouts from the portal.
    blackouts: BlackoutControl | None = None
    password_checks: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(PASSWORD_CHECKS))

    async def run(self, call: Callable[[], _T]) -> _T:
        """``call()`` on a portal worker: the database and password hashes never block the
        event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def audit(self, entry: AuditEntry, *, wait: bool = True) -> None:
        """Append to the audit trail, on the worker calling it. ``wait``: return once the
        entry is committed (before audio leaves, a mail is sent, a file is deleted or a change
        is answered); else once it is queued, in the crash journal (a search: the trail's
        writer commits it within milliseconds, docs/security.md). A trail that cannot be
        written is logged, not raised: the entry stays queued and is written later."""
        if self.store.audit is None:
            return
        try:
            if wait:
                self.store.audit.append_audit(entry)
            else:
                self.store.audit.enqueue_audit(entry)
        except Exception:
            logger.exception("portal: cannot write the audit entry %s %s", entry.action,
                             entry.target)


@dataclass
class PortalRequest:
    """A request the server has admitted: its session and principal when signed in."""

    request: web.Request
    ctx: PortalContext
    address: str
    session: Session | None = None
    principal: Principal | None = None

    @property
    def user(self) -> Principal:
        """The signed-in user (routes that are not public always have one)."""
        assert self.principal is not None
        return self.principal

    def page(self, template: str, status: int = 200, **values: Any) -> web.Response:
        """An HTML page from ``template``, with the session's CSRF token and user."""
        html = self.ctx.templates.render(
            template, user=self.principal, csrf=self.session.csrf if self.session else "",
            **values)
        return web.Response(text=html, status=status, content_type="text/html",
                            charset="utf-8")

    def entry(self, action: str, target: str = "", detail: str = "") -> AuditEntry:
        user = self.principal
        return AuditEntry(time=self.ctx.clock(), user_id=user.user_id if user else None,
                          username=user.username if user else "", action=action,
                          target=target, detail=detail, address=self.address)
