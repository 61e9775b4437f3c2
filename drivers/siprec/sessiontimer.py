"""Session timers (RFC 4028) as a UAS: what an INVITE or UPDATE asks, what we answer, and when
this end acts. Pure functions over headers, tested with tables.

The rules, RFC 4028 §9 and §10:
- Only a request whose SRC supports timers (``timer`` in Supported or Require) gets a session
  timer; a Session-Expires a proxy added for a UAC that does not know the extension is left
  alone, as the UAS in §9 only answers one to a request that supports it.
- An interval under our minimum (``Min-SE``, 90 s unless told otherwise, never lower in
  service) is refused with 422 carrying our Min-SE; we never lengthen the SRC's interval
  (§9: MUST NOT increase it), nor ask for one it did not.
- The refresher is the one the SRC names; when it names none, the SRC (``uac``): a recorder
  lets the SRC refresh. A 2xx naming ``uac`` carries ``Require: timer`` (§9).
- Who waits acts at the end of the interval less min(32 s, a third of it) (§10): we end the
  session with a BYE. When the SRC made us the refresher we send an UPDATE at half the
  interval, and end the session at its expiry if no refresh succeeded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from recorder.drivers.siprec.errors import ProtocolError
from recorder.drivers.siprec.sipheaders import Headers, parse_params

RFC_MIN_SE = 90  # §4: the smallest Min-SE anyone may ask for
BYE_MARGIN = 32.0  # §10: the non-refresher gives up this much (at most) before expiry

Refresher = Literal["uac", "uas"]


class SessionTimerError(ProtocolError):
    """A Session-Expires or Min-SE we cannot read (400)."""


@dataclass(frozen=True)
class TimerAnswer:
    """What we answer about timers: ``too_small`` set means 422 with ``Min-SE: too_small``;
    ``interval`` None means no session timer."""

    interval: int | None = None
    refresher: Refresher = "uac"
    too_small: int | None = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The headers of the 2xx (or of the 422)."""
        if self.too_small is not None:
            return [("Min-SE", str(self.too_small))]
        if self.interval is None:
            return []
        headers = [("Session-Expires", f"{self.interval};refresher={self.refresher}")]
        if self.refresher == "uac":
            headers.append(("Require", "timer"))
        return headers

    @property
    def we_refresh(self) -> bool:
        return self.interval is not None and self.refresher == "uas"


def _seconds(value: str, name: str) -> tuple[int, dict[str, str | None]]:
    head, _, params = value.partition(";")
    if not re.fullmatch(r"\s*\d{1,10}\s*", head):
        raise SessionTimerError(f"{name} is not a number of seconds: {value[:40]!r}")
    try:
        parsed = parse_params(params)
    except ValueError as exc:
        raise SessionTimerError(f"{name}: {exc}") from None
    return int(head), parsed


def supports_timer(headers: Headers) -> bool:
    tags = {t.lower() for t in headers.values("supported") + headers.values("require")}
    return "timer" in tags


def negotiate(headers: Headers, min_se: int = RFC_MIN_SE) -> TimerAnswer:
    """Our answer to the timer headers of an INVITE or UPDATE; raises SessionTimerError."""
    raw = headers.get("session-expires")
    if raw is None or not supports_timer(headers):
        return TimerAnswer()
    interval, params = _seconds(raw, "Session-Expires")
    asked = (params.get("refresher") or "").lower()
    if asked not in ("", "uac", "uas"):
        raise SessionTimerError(f"Session-Expires: refresher={asked[:10]!r} is neither uac "
                                "nor uas")
    if interval < min_se:
        return TimerAnswer(too_small=min_se)
    refresher: Refresher = "uas" if asked == "uas" else "uac"
    return TimerAnswer(interval, refresher)


def refreshed_interval(headers: Headers, current: int) -> int:
    """The interval a 2xx to our refresh settled on (§7.2: the answer's value holds)."""
    raw = headers.get("session-expires")
    if raw is None:
        return current
    try:
        return max(1, _seconds(raw, "Session-Expires")[0])
    except SessionTimerError:
        return current


def expiry_delay(interval: int, refresher: Refresher) -> float:
    """Seconds from a refresh until we end the session if nothing refreshed it again."""
    if refresher == "uas":
        return float(interval)  # ours to refresh: only the session's own end counts
    return interval - min(BYE_MARGIN, interval / 3)


def refresh_delay(interval: int) -> float:
    """Seconds from a refresh until we send the next one, when we are the refresher (§7.2)."""
    return interval / 2
