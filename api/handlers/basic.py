"""TEST: the manual's echo request, for checking the API is up."""

from __future__ import annotations

from recorder.api.context import ApiContext
from recorder.api.params import Params
from recorder.api.request import ApiResult
from recorder.resultcodes import ResultCode


def test(ctx: ApiContext, params: Params) -> ApiResult:
    return ApiResult(ResultCode.API_OK, "API_OK")
