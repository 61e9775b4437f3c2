"""A stored recording's plain bytes as an HTTP answer, decrypted chunk by chunk as they are
sent, with HTTP Range (a seek decrypts only the chunks it covers; docs/encryption.md): the
portal's player and downloads, and the WebAPI's exports, whose work files are encrypted when
their recording is. Nothing of it is written to disk in clear.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from recorder.api.transport.webresponses import TemporaryFileResponse
from recorder.codecs.stored import ENCRYPTED_MAGIC, open_stored

Run = Callable[[Callable[[], Any]], Awaitable[Any]]
SEND_BYTES = 1 << 16
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The [start, end) a Range header asks of ``size`` bytes; None: the whole file (no header,
    or one this server does not serve, such as several ranges); ValueError: unsatisfiable."""
    match = _RANGE.match(header.replace(" ", ""))
    if not header or match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        count = int(last)
        if count == 0:
            raise ValueError("an empty suffix range")
        return max(0, size - count), size
    start = int(first)
    end = min(size, int(last) + 1) if last else size
    if start >= size or end <= start:
        raise ValueError(f"bytes {header} of {size}")
    return start, end


class PlainMediaResponse(web.StreamResponse):
    """The plain bytes of an opened stored recording (``recorder.codecs.stored``), sent by the
    server itself as ``MediaResponse`` is, the reads on the portal's workers (``run``); it
    closes the file. A chunk that does not authenticate midway ends the answer short."""

    def __init__(self, file: BinaryIO, headers: Mapping[str, str], run: Run, *,
                 temporary: Path | None = None) -> None:
        super().__init__(headers=headers)
        self._file = file
        self._run = run
        self._temporary = temporary  # a work file deleted once sent (or not)

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return None
        file = self._file
        try:
            size = await self._run(lambda: file.seek(0, 2))
            try:
                wanted = byte_range(request.headers.get("Range", ""), size)
            except ValueError:
                self.set_status(416)
                self.headers["Content-Range"] = f"bytes */{size}"
                writer = await super().prepare(request)
                await self.write_eof()
                return writer
            start, end = wanted if wanted is not None else (0, size)
            self.headers["Accept-Ranges"] = "bytes"
            self.content_length = end - start
            if wanted is not None:
                self.set_status(206)
                self.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            writer = await super().prepare(request)
            if request.method == "HEAD":
                return writer
            position = start

            def read() -> bytes:
                file.seek(position)
                data: bytes = file.read(min(SEND_BYTES, end - position))
                return data

            while position < end:
                data = await self._run(read)
                if not data:
                    break  # the file shrank meanwhile: what was promised cannot be sent
                await self.write(data)
                position += len(data)
            await self.write_eof()
            return writer
        finally:
            await self._run(file.close)
            if self._temporary is not None:
                path = self._temporary
                await self._run(lambda: path.unlink(missing_ok=True))


async def in_executor(work: Callable[[], Any]) -> Any:
    """``work`` on the loop's default executor (a ``Run`` for callers without one of their own)."""
    return await asyncio.get_running_loop().run_in_executor(None, work)


async def temporary_media(path: Path, headers: Mapping[str, str], run: Run
                          ) -> web.StreamResponse:
    """An export's work file as the answer, deleted once sent: as it is on disk
    (``TemporaryFileResponse``), or decrypted as it is sent when it is encrypted (an export
    of an encrypted recording)."""
    opened: BinaryIO | None = await run(lambda: _opened_if_sealed(path))
    if opened is None:
        return TemporaryFileResponse(path, headers)
    return PlainMediaResponse(opened, headers, run, temporary=path)


def _opened_if_sealed(path: Path) -> BinaryIO | None:
    with path.open("rb") as head:
        if head.read(len(ENCRYPTED_MAGIC)) != ENCRYPTED_MAGIC:
            return None
    return open_stored(path)
