"""The call log (recorder/calllog.py): one line per call at most, and ``log.calls = false``
turns those lines off; ``log.requests = false`` does the same for the request log. A real
recorderd, its real log; SIGHUP applies both."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from recorder.app import Recorder
from recorder.calllog import CALL_LOG_NAME, REQUEST_LOG_NAME, set_call_log, set_request_log
from recorder.config.loader import config_from_dict
from recorder.config.printing import to_toml
from recorder.service.daemon import _reload
from tests.helpers.api import result_code
from tests.helpers.recorders import RECORDERD_ONLY, base_config, write_toml
from tests.helpers.waiting import wait_for


@RECORDERD_ONLY
@pytest.mark.process
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


@RECORDERD_ONLY
@pytest.mark.process
@pytest.mark.parametrize("requests", [True, False], ids=["on", "off"])
def test_log_requests_false_leaves_no_request_lines(start_recorder: Any,
                                                    requests: bool) -> None:
    running = start_recorder(log={"requests": requests})
    before = len(running.log().splitlines())
    conn = running.connect()
    try:
        assert result_code(conn.request("CALLSTART", 11, DEVICEID="7777")) == 20  # API_OK
        assert result_code(conn.request("CALLSTOP", 12, DEVICEID="7777")) == 20  # API_OK
    finally:
        conn.close()
    def logged() -> list[str]:
        lines = running.log().splitlines()[before:]
        return [line for line in lines if "recorder.api.requests" in line]

    if requests:
        # The log is read from the process as it comes: wait for both lines to arrive.
        wait_for(lambda: any(line.endswith(": CALLSTOP 12") for line in logged()), 15,
                 what=lambda: f"the CALLSTOP's request line in {logged()}")
        assert any(line.endswith(": CALLSTART 11") for line in logged()), logged()
    else:
        # The call's own line comes after both answers: once it is there, so would they be.
        wait_for(lambda: "not recorded" in running.log(), 15, what="the call's log line")
        assert logged() == [], logged()


def test_sighup_turns_the_request_and_call_logs_off_and_on(tmp_path: Path) -> None:
    on = base_config(tmp_path, boards=[{"driver": "synthetic", "devices": ["1001"]}])
    recorder = Recorder(config_from_dict(on, base_dir=tmp_path))
    recorder.start()
    requests, calls = logging.getLogger(REQUEST_LOG_NAME), logging.getLogger(CALL_LOG_NAME)
    try:
        path = write_toml(tmp_path / "r.toml", to_toml(config_from_dict(
            {**on, "log": {"requests": False, "calls": False}}, base_dir=tmp_path)))
        assert _reload(recorder, path) is None
        assert not requests.isEnabledFor(logging.INFO)
        assert not calls.isEnabledFor(logging.INFO)
        assert requests.isEnabledFor(logging.WARNING)  # only the routine lines go
        write_toml(path, to_toml(config_from_dict(on, base_dir=tmp_path)))
        assert _reload(recorder, path) is None
        # Back to the level the service logs at (the root logger's, which pytest leaves).
        assert requests.level == calls.level == logging.NOTSET
    finally:
        recorder.stop()
        set_request_log(True)
        set_call_log(True)
