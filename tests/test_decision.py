"""The recording decision, as a table."""

from __future__ import annotations

import pytest

from recorder.calls import CallStart, DeviceQuery
from recorder.decision import decide
from recorder.resultcodes import ResultCode

CALL = CallStart(device=DeviceQuery(device_id="1001"))


@pytest.mark.parametrize(("device", "channel", "record", "reason", "detail"), [
    ("1001", 1, True, ResultCode.API_RECORDING_STARTED, "recorded on channel 1"),
    ("1004", 4, True, ResultCode.API_RECORDING_STARTED, "recorded on channel 4"),
    ("9999", None, False, ResultCode.API_DEVICE_INVALID, "9999 is not tapped by any channel"),
])
def test_decide(device: str, channel: int | None, record: bool, reason: ResultCode,
                detail: str) -> None:
    decision = decide(CALL, device, channel)
    assert (decision.record, decision.reason) == (record, reason)
    assert detail in decision.detail
