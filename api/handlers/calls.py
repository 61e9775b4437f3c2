"""Call handling functions: CALLSTART, CALLSTOP, CALLUPDATE (live and post-recording)."""

from __future__ import annotations

from recorder.api.context import ApiContext
from recorder.api.params import Params
from recorder.api.request import ApiResult
from recorder.calls import CallStart, CallUpdate
from recorder.resultcodes import ResultCode


def call_start(ctx: ApiContext, params: Params) -> ApiResult:
    start = CallStart(
        device=params.device(),
        instance=params.text("CALLINSTANCE") or "",
        meta=params.metadata(),
        priority=params.integer("PRIORITY"),
        max_record_time=params.integer("MAXRECORDTIME"),
        max_record_silence=params.integer("MAXRECORDSILENCE"),
        keep_days=params.integer("KEEP_DAYS"),
        archive_action=params.integer("ARCHIVEACTION"),
        cti_initiated=params.flag("CTIINITIATED"),
        agent_initiated=params.flag("AGENTINITIATED"),
    )
    # The manual's API_OK means "the cores have the call"; whether it is recorded is the
    # scheduler's decision, visible in DEVICESTATUS and the log.
    ctx.scheduler.call_start(start)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CALLSTART"))


def call_stop(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.call_stop(params.device(), params.text("CALLINSTANCE"))
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CALLSTOP"))


def call_update(ctx: ApiContext, params: Params) -> ApiResult:
    update = CallUpdate(
        meta=params.metadata(),
        keep_days=params.integer("KEEP_DAYS"),
        archive_action=params.integer("ARCHIVEACTION"),
    )
    record_id = params.integer("RECORDID")
    if record_id is not None:
        ctx.scheduler.update_recording(record_id, update)
        return ApiResult(ResultCode.API_OK, "Updated recording in database")
    updated = ctx.scheduler.call_update(
        params.device(), params.text("CALLINSTANCE"), update,
        if_not_recording=params.flag("UPDATE_IF_NOT_RECORDING") == "Y",
    )
    if updated == "recording":
        return ApiResult(ResultCode.API_OK, "Updated recording in database")
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CALLUPDATE"))
