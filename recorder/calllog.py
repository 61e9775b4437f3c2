"""The call log: at most one INFO line per call, where it was recorded or why it was not; and
the switch of the API's request log (a line per request: which client sent what).

A busy site takes thousands of calls an hour, and a line per call was a sixth of the API's
time in a profile: ``log.calls = false`` turns these lines off without hiding anything else
(warnings about calls stay on their own loggers). Calls in progress are in ``recorderctl
calls`` and ``/status`` rather than the log. ``log.requests = false`` does the same for the
request log, whose lines a CTI sending two requests per call doubles; the audit trail, not this
log, is the record of who changed what.
"""

from __future__ import annotations

import logging

CALL_LOG_NAME = "recorder.calllog"
call_log = logging.getLogger(CALL_LOG_NAME)
REQUEST_LOG_NAME = "recorder.api.requests"


def set_call_log(enabled: bool) -> None:
    """Let the call log's lines through (at the root logger's level), or none of them."""
    call_log.setLevel(logging.NOTSET if enabled else logging.WARNING)


def set_request_log(enabled: bool) -> None:
    """Let the request log's lines through (at the root logger's level), or none of them."""
    logging.getLogger(REQUEST_LOG_NAME).setLevel(logging.NOTSET if enabled else logging.WARNING)


__all__ = ["CALL_LOG_NAME", "REQUEST_LOG_NAME", "call_log", "set_call_log", "set_request_log"]
