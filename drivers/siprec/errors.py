"""The one error every SIPREC parser raises: what was wrong, and the SIP status to answer."""

from __future__ import annotations

from recorder.errors import RecorderError


class ProtocolError(RecorderError):
    """Input from the network that cannot be taken as it is.

    ``status`` is the SIP response the caller should answer with (400, 413, 415, 488, 513...),
    or None when nothing should be answered (a response, an ACK, bytes that are not SIP).
    """

    default_status: int | None = 400

    def __init__(self, reason: str, status: int | None = -1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status: int | None = self.default_status if status == -1 else status
