"""The XML socket API: a TCP server answering each message with a RESULT line (CRLF-ended).

A client may send many requests on one connection, pretty-printed or on one line, or drop after
one. Requests on a connection are answered in order; handlers run on the API worker threads so
the event loop never waits for a disk or the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import Executor

from recorder.api.dispatcher import Dispatcher
from recorder.api.framing import MessageFramer, MessageTooLarge
from recorder.api.request import ApiResult
from recorder.api.xmlcodec import render_result
from recorder.resultcodes import ResultCode

logger = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
CRLF = b"\r\n"
# A client that stops reading must not hold a connection, or shutdown, open for long.
CLOSE_TIMEOUT = 2.0


class SocketApi:
    """Serves the XML socket API on one listening socket."""

    def __init__(self, dispatcher: Dispatcher, executor: Executor, max_message_bytes: int,
                 message_timeout: float) -> None:
        self._dispatcher = dispatcher
        self._executor = executor
        self._max_message_bytes = max_message_bytes
        self._message_timeout = message_timeout
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port,
                                                  reuse_address=True)
        address = self._server.sockets[0].getsockname()
        return str(address[0]), int(address[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()  # stop accepting
        # Connections go before wait_closed(): since Python 3.12 it waits for all of them.
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        peer = writer.get_extra_info("peername")
        framer = MessageFramer(self._max_message_bytes)
        aborting = False
        try:
            while True:
                # A partial message that stays incomplete (no closing tag ever comes) is
                # answered after a quiet period instead of leaving the client waiting forever.
                timeout = self._message_timeout if framer.pending else None
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    await self._answer_partial(writer, framer)
                    continue
                if not data:
                    await self._answer_partial(writer, framer)
                    break
                try:
                    messages = framer.feed(data)
                except MessageTooLarge as exc:
                    for message in exc.complete:
                        await self._answer(writer, message)
                    await self._send(writer, render_result("", None, ApiResult(
                        ResultCode.API_INVALID_MESSAGE_FORMAT,
                        f"message longer than {exc.limit} bytes; closing the connection")))
                    logger.warning("socket API: %s sent a message over %d bytes; disconnected",
                                   peer, exc.limit)
                    break
                for message in messages:
                    await self._answer(writer, message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing of ours is lost with it
        except asyncio.CancelledError:
            aborting = True  # shutting down: answers the client has not read are dropped
        except Exception:
            logger.exception("socket API: connection from %s failed", peer)
        finally:
            self._clients.discard(task)
            await _close(writer, aborting)

    async def _answer_partial(self, writer: asyncio.StreamWriter, framer: MessageFramer) -> None:
        partial = framer.flush()
        if partial is not None:
            await self._answer(writer, partial)

    async def _answer(self, writer: asyncio.StreamWriter, message: bytes) -> None:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self._dispatcher.handle_xml, message)
        await self._send(writer, result)

    async def _send(self, writer: asyncio.StreamWriter, result: bytes) -> None:
        writer.write(result + CRLF)
        await writer.drain()


async def _close(writer: asyncio.StreamWriter, abort: bool) -> None:
    """Close a connection, flushing what is queued unless told not to or the peer won't read."""
    if not abort:
        writer.close()
        with contextlib.suppress(ConnectionError, TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
            return
    writer.transport.abort()
