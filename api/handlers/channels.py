"""CHANNELS: the state of every recording channel, as the manual's example shows it.

``DETAIL=Y`` (an extension, docs/api-notes.md) adds what a field engineer needs on top: the
numeric STATE code, the channel's trigger, its newest levels and its lost-audio counters.
"""

from __future__ import annotations

from recorder.api.context import ApiContext
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, Node
from recorder.calls.status import ChannelInfo
from recorder.capture.channels import STATE_NAMES
from recorder.resultcodes import ResultCode
from recorder.timefmt import manual_datetime


def channels(ctx: ApiContext, params: Params) -> ApiResult:
    detail = params.flag("DETAIL") == "Y"
    infos = ctx.scheduler.status.channels()
    body: list[Node] = [
        ("COUNT", str(len(infos))),
        ("CHANNELS", [("CHANNEL", _channel(info, detail)) for info in infos]),
    ]
    return ApiResult(ResultCode.API_OK, "API_OK", body)


def _channel(info: ChannelInfo, detail: bool) -> list[Node]:
    nodes: list[Node] = [
        ("ID", str(info.id)),
        ("STATE", STATE_NAMES[info.state.state]),
        ("PLAYBACKEXTENSION", ""),  # this recorder does not play back to extensions
        ("RECORDINGDEVICEALIAS", info.device_alias),
        ("RECORDINGDEVICE", info.device_id),
        ("LASTSTATECHANGE", manual_datetime(info.state.since)),
        ("LASTSTATECHANGEUNIXTIME", str(int(info.state.since))),
    ]
    if detail:
        levels = info.levels
        nodes += [
            ("STATECODE", str(int(info.state.state))),
            ("STATEDETAIL", info.state.detail),
            ("TRIGGER", info.trigger),
            ("PEAKDBFS", f"{levels.peak_dbfs:.1f}"),
            ("RMSDBFS", f"{levels.rms_dbfs:.1f}"),
            ("SILENT", "Y" if levels.silent else "N"),
            ("GAPS", str(levels.gaps)),
            ("GAPFRAMES", str(levels.gap_frames)),
            ("OVERRUNS", str(levels.overruns)),
            ("OVERRUNFRAMES", str(levels.overrun_frames)),
        ]
    return nodes
