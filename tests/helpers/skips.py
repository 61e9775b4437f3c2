"""Which skips a full run may have (docs/testing.md, "Skips"), and the report of the others.

A skip hides a missing tool as well as it hides a test that cannot apply. On the full run
(``scripts/test`` sets ``RECORDER_TESTS_FORBID_SKIPS=1``) only the skips listed here pass; any
other fails the session, so a CI machine short of e2fsprogs, libbcg729 or root cannot go green
with the real-fault tests silently left out. A developer running one file without the switch
still gets ordinary skips.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest

SWITCH = "RECORDER_TESTS_FORBID_SKIPS"


@dataclass(frozen=True)
class AllowedSkip:
    """Skips in ``path`` whose reason matches ``reason`` (a regular expression) are expected."""

    path: str
    reason: str
    why: str


# Keep this short: every entry is a test that cannot apply on any machine CI runs on, never
# one that needs something scripts/test could install. docs/testing.md repeats it for readers.
ALLOWED: tuple[AllowedSkip, ...] = (
    AllowedSkip("tests/test_drivers.py", r"has no device to lose",
                "the synthetic and file boards have no device to unplug; the PortAudio and "
                "voice-modem harnesses run these device-loss cases"),
    AllowedSkip("tests/test_voicemodem.py", r"could not import 'audioop'",
                "Python 3.13 removed audioop; the G.711 table is then checked against the "
                "tests' own decoder only"),
)


def forbidden() -> bool:
    """Whether this run fails on skips outside ALLOWED (the full run's switch is on)."""
    return os.environ.get(SWITCH, "") not in ("", "0")


def reason_of(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The skip's reason as pytest prints it (``longrepr`` is (path, line, reason) for skips)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def is_allowed(nodeid: str, reason: str) -> bool:
    path = nodeid.split("::", 1)[0]
    return any(path == entry.path and re.search(entry.reason, reason) for entry in ALLOWED)


class SkipWatch:
    """Collects the skips a run reports (in the xdist controller, which sees every worker's)."""

    def __init__(self) -> None:
        self.unexpected: dict[str, str] = {}

    def note(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        # An xfail is reported as skipped too, with ``wasxfail``: it is no skip.
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = reason_of(report)
        if not is_allowed(report.nodeid, reason):
            self.unexpected[report.nodeid] = reason

    def message(self) -> str:
        lines = [f"{len(self.unexpected)} test(s) skipped that the full run must not skip "
                 f"({SWITCH} is on; the allowed skips are in tests/helpers/skips.py and "
                 "docs/testing.md). Install what they need (scripts/test does, as root) or, "
                 "if a test truly cannot apply here, add it to the allow-list with the reason:"]
        lines += [f"  {nodeid}: {reason}" for nodeid, reason in sorted(self.unexpected.items())]
        return "\n".join(lines)
