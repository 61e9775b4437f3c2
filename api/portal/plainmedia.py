"""An encrypted recording played or downloaded from the portal: its plain bytes, decrypted
chunk by chunk as they are sent, with HTTP Range (a seek decrypts only the chunks it covers;
docs/encryption.md). Nothing of it is written to disk on the way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from recorder.codecs.stored import open_stored

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


async def open_plain_media(path: Path, headers: dict[str, str], run: Run
                           ) -> PlainMediaResponse:
    """The response for ``path``'s plain bytes; opening it (on a worker) checks its key and
    its last chunk, so a file that cannot be read is refused before any header is sent
    (OSError, CodecError)."""
    file: BinaryIO = await run(lambda: open_stored(path))
    return PlainMediaResponse(file, headers, run)


class PlainMediaResponse(web.StreamResponse):
    """The plain bytes of an opened stored recording (``recorder.codecs.stored``), sent by the
    server itself as ``MediaResponse`` is, the reads on the portal's workers (``run``); it
    closes the file. A chunk that does not authenticate midway ends the answer short."""

    def __init__(self, file: BinaryIO, headers: dict[str, str], run: Run) -> None:
        super().__init__(headers=headers)
        self._file = file
        self._run = run

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
