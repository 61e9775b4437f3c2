"""The call log (recorder/calllog.py): one line per call at most, and ``log.calls = false``
turns those lines off. A real recorderd, its real log."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.api import result_code
from tests.helpers.recorders import RECORDERD_ONLY
from tests.helpers.waiting import wait_for

pytestmark = [pytest.mark.process]


@RECORDERD_ONLY
@pytest.mark.parametrize("calls", [True, False], ids=["on", "off"])
def test_a_call_is_one_log_line_and_log_calls_false_leaves_none(start_recorder: Any,
                                                               calls: bool) -> None:
    running = start_recorder(log={"calls": calls})
    before = len(running.log().splitlines())
    conn = running.connect()
    try:
        assert result_code(conn.request("CALLSTART", 1, DEVICEID="1001")) == 20  # API_OK
        running.wait_recorded("1001", 0.5)
        assert result_code(conn.request("CALLSTOP", 2, DEVICEID="1001")) == 20  # API_OK
        # A device no board taps: answered API_OK, not recorded.
        assert result_code(conn.request("CALLSTART", 3, DEVICEID="7777")) == 20  # API_OK
        assert result_code(conn.request("CALLSTOP", 4, DEVICEID="7777")) == 20  # API_OK
        # The recorded call's line is written as its row is completed.
        wait_for(lambda: running.metric("recorder_recordings_completed_total") >= 1, 15,
                 what="the recording to be completed")
    finally:
        conn.close()
    lines = running.log().splitlines()[before:]
    about = [line for line in lines if "1001" in line or "7777" in line]
    if calls:
        assert len(about) == 2, about
        assert any(line.split(": ", 1)[-1].startswith("recorded 1001 on channel 1")
                   for line in about), about
        assert any("7777" in line and "not recorded" in line for line in about), about
    else:
        assert about == [], about
