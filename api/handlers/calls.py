"""Call handling: CALLSTART, CALLSTOP, CALLUPDATE, RECORDSTART, RECORDSTOP and blackouts."""

from __future__ import annotations

from recorder.api.context import ApiContext
from recorder.api.protocol.params import Params
from recorder.api.request import ApiResult, RequestError
from recorder.calls.requests import CallStart, CallUpdate
from recorder.resultcodes import ResultCode


def _call_start(params: Params) -> CallStart:
    return CallStart(
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


def call_start(ctx: ApiContext, params: Params, *, inline: bool = False) -> ApiResult:
    start = _call_start(params)
    # The manual's API_OK means "the cores have the call"; whether it is recorded is the
    # scheduler's decision, also in DEVICESTATUS and the log. A call that is not recorded says
    # why after the manual's text; one this core meant to record but could not (no file could
    # be made: a full disk, no descriptors left) is the error, as RECORDSTART answers it.
    call = ctx.scheduler.call_start(start, inline=inline)
    decision = call.decision
    if call.open_failed and decision is not None:
        raise RequestError(decision.reason, f"CALLSTART: the call on {call.device_id} is "
                           f"tracked but its recording could not be opened: {decision.detail}")
    message = ctx.sent_to_cores("CALLSTART")
    if call.main is None and decision is not None:
        message += f"; not recorded: {decision.reason.label}"
    return ApiResult(ResultCode.API_OK, message)


def call_stop(ctx: ApiContext, params: Params, *, inline: bool = False) -> ApiResult:
    ctx.scheduler.call_stop(params.device(), params.text("CALLINSTANCE"), inline=inline)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CALLSTOP"))


def call_start_inline(ctx: ApiContext, params: Params) -> ApiResult:
    """CALLSTART on the event loop: WouldBlock unless the call waits for nothing (it is not
    recorded, and replaces or preempts nothing)."""
    return call_start(ctx, params, inline=True)


def call_stop_inline(ctx: ApiContext, params: Params) -> ApiResult:
    """CALLSTOP on the event loop: WouldBlock unless the call has no recording to end."""
    return call_stop(ctx, params, inline=True)


def call_update(ctx: ApiContext, params: Params) -> ApiResult:
    update = CallUpdate(
        meta=params.metadata(),
        keep_days=params.integer("KEEP_DAYS"),
        archive_action=params.integer("ARCHIVEACTION"),
    )
    record_id = params.integer("RECORDID")
    if record_id is not None:
        ctx.scheduler.updates.recording(record_id, update)
        return ApiResult(ResultCode.API_OK, "Updated recording in database")
    updated = ctx.scheduler.updates.call(
        params.device(), params.text("CALLINSTANCE"), update,
        if_not_recording=params.flag("UPDATE_IF_NOT_RECORDING") == "Y",
    )
    if updated == "recording":
        return ApiResult(ResultCode.API_OK, "Updated recording in database")
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("CALLUPDATE"))


def record_start(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.record_start(_call_start(params))
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("RECORDSTART"))


def record_stop(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.record_stop(params.device(), params.text("CALLINSTANCE"), params.metadata())
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("RECORDSTOP"))


def blackout_start(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.blackouts.start(params.device(), params.text("CALLINSTANCE"),
                                  params.integer("TIMEOFFSET") or 0)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("BLACKOUTSTART"))


def blackout_stop(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.blackouts.stop(params.device(), params.text("CALLINSTANCE"),
                                 params.integer("TIMEOFFSET") or 0)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("BLACKOUTSTOP"))


def agent_blackout_start(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.blackouts.agent_start(_agent_devices(ctx, params),
                                        params.integer("TIMEOFFSET") or 0)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("AGENTBLACKOUTSTART"))


def agent_blackout_stop(ctx: ApiContext, params: Params) -> ApiResult:
    ctx.scheduler.blackouts.agent_stop(_agent_devices(ctx, params),
                                       params.integer("TIMEOFFSET") or 0)
    return ApiResult(ResultCode.API_OK, ctx.sent_to_cores("AGENTBLACKOUTSTOP"))


def _agent_devices(ctx: ApiContext, params: Params) -> list[str]:
    """The devices an AGENTBLACKOUT covers: the one named, or every phone of the agent named."""
    query = params.device()
    if not query:
        raise RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT, "one of DEVICEID, "
                           "DEVICEALIAS, CRM_USER or SYS_USER is required")
    if query.device_id or query.alias or query.station:
        return [device.device_id for device in ctx.scheduler.status.device_status(query)]
    devices = ctx.scheduler.lookup.agent_devices(query.sys_user, query.crm_user)
    if not devices:
        who = f"SYS_USER {query.sys_user!r}" if query.sys_user else f"CRM_USER {query.crm_user!r}"
        raise RequestError(ResultCode.API_AGENT_NOT_FOUND,
                           f"no agent or device found for {who}")
    return devices
