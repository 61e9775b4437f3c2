"""A request as the dispatcher sees it, whichever transport it came by, and its result."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Union

from recorder.errors import ResultError
from recorder.resultcodes import ResultCode

# A result body: (TAG, text) leaves and (TAG, [children]) sections, rendered in order; and
# (RAW, xml): elements already written as XML text (checked and escaped), put in as they are.
Node = tuple[str, Union[str, "Sequence[Node]"]]
RAW = ""


@dataclass(frozen=True)
class ApiRequest:
    """A parsed request: its TYPE (upper case), REQUESTID as sent, and parameters by name."""

    type: str
    request_id: str | None
    params: Mapping[str, str] = field(default_factory=dict)  # upper-case names


@dataclass(frozen=True)
class ApiResult:
    code: ResultCode
    message: str
    body: Sequence[Node] = ()


class RequestError(ResultError):
    """A request refused as sent; carries its TYPE and REQUESTID when they could be read."""

    def __init__(self, code: ResultCode, message: str, *, request_type: str = "",
                 request_id: str | None = None) -> None:
        super().__init__(code, message)
        self.request_type = request_type
        self.request_id = request_id


def invalid(message: str) -> RequestError:
    """The manual's answer to missing or malformed parameters: 16 API_INVALID_MESSAGE_FORMAT."""
    return RequestError(ResultCode.API_INVALID_MESSAGE_FORMAT, message)
