"""CHANNELS answers as the manual's example shows, over the socket and the WebAPI."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from tests.helpers.api import result_code
from tests.helpers.recorders import Running

CHANNEL_FIELDS = ["ID", "STATE", "PLAYBACKEXTENSION", "RECORDINGDEVICEALIAS", "RECORDINGDEVICE",
                  "LASTSTATECHANGE", "LASTSTATECHANGEUNIXTIME"]
MANUAL_TIME = re.compile(r"^\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M$")


def test_channels_has_the_manuals_shape(running: Running) -> None:
    began = time.time()
    result = running.request("CHANNELS", 255)
    assert [e.tag for e in result] == ["REQUESTTYPE", "REQUESTID", "RESULTTYPE", "RESULTCODE",
                                       "RESULTMSG", "COUNT", "CHANNELS"]
    assert (result.findtext("REQUESTTYPE"), result.findtext("REQUESTID")) == ("CHANNELS", "255")
    assert (result.findtext("RESULTTYPE"), result_code(result)) == ("API_OK", 20)
    assert result.findtext("COUNT") == "4"
    channels = result.findall("CHANNELS/CHANNEL")
    assert len(channels) == 4
    for n, channel in enumerate(channels, 1):
        assert [e.tag for e in channel] == CHANNEL_FIELDS
        assert channel.findtext("ID") == str(n)
        assert channel.findtext("STATE") == "Idle"
        assert channel.findtext("RECORDINGDEVICE") == f"100{n}"
        assert MANUAL_TIME.match(channel.findtext("LASTSTATECHANGE") or "")
        # Set when the recorder started, a moment before this test asked.
        assert began - 60 < int(channel.findtext("LASTSTATECHANGEUNIXTIME") or 0) <= time.time()


def test_a_recording_channel_shows_recording_with_its_device_alias(running: Running) -> None:
    before = int(time.time())
    assert result_code(running.request("CALLSTART", 1, deviceid="1003",
                                       devicealias="Desk 3")) == 20
    result = running.request("CHANNELS", 2)
    third = result.findall("CHANNELS/CHANNEL")[2]
    assert third.findtext("STATE") == "Recording"
    assert third.findtext("RECORDINGDEVICEALIAS") == "Desk 3"
    assert int(third.findtext("LASTSTATECHANGEUNIXTIME") or 0) >= before
    assert result.findall("CHANNELS/CHANNEL")[0].findtext("STATE") == "Idle"
    assert result_code(running.request("CALLSTOP", 3, deviceid="1003")) == 20
    third = running.request("CHANNELS", 4).findall("CHANNELS/CHANNEL")[2]
    assert third.findtext("STATE") == "Idle"


def test_channels_over_the_webapi(running: Running) -> None:
    result = running.web_result(type="CHANNELS", requestid="7")
    assert result_code(result) == 20
    assert result.findtext("COUNT") == "4"
    assert [e.tag for e in result.find("CHANNELS/CHANNEL")] == CHANNEL_FIELDS  # type: ignore


def test_detail_adds_levels_and_counters_for_the_field(running: Running) -> None:
    time.sleep(0.3)  # let the level meter see a few windows of the demo board's speech
    result = running.request("CHANNELS", 1, detail="Y")
    channel = result.find("CHANNELS/CHANNEL")
    assert channel is not None
    assert [e.tag for e in channel][:7] == CHANNEL_FIELDS
    assert channel.findtext("STATECODE") == "0"
    assert channel.findtext("TRIGGER") == "api"
    assert float(channel.findtext("RMSDBFS") or "x") <= 0.0  # "-inf" for digital silence
    assert channel.findtext("SILENT") in ("Y", "N")
    assert channel.findtext("GAPS") == "0"
    assert channel.findtext("OVERRUNS") == "0"
    assert result_code(running.request("CHANNELS", 1, detail="maybe")) == 16


def test_a_recorder_without_boards_has_no_channels(start_recorder: Any, tmp_path: Path) -> None:
    result = start_recorder(boards=[]).request("CHANNELS", 1)
    assert result_code(result) == 20
    assert result.findtext("COUNT") == "0"
    assert result.find("CHANNELS") is not None
