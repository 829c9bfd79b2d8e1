"""A lean HTTP/1.1 client for the agent's two hot calls (poll and report).

A worker with short tasks sends a poll every few milliseconds; through httpx each cost the
worker about 1 ms of CPU, most of it in the layers (auth flow, redirects, the connection pool,
anyio streams, header models) that these calls never use. This sends a pre-built request head
and the body's bytes on a kept-alive connection over asyncio streams and reads a response with a
Content-Length or chunked body. Only plain `http://` without a proxy takes this path (see
`lean_target`); anything else goes through httpx.

Errors: a connection that cannot be made, breaks, or answers garbage raises `OSError`,
`asyncio.IncompleteReadError` or `WireError`; a time limit passing raises `TimeoutError`. The
caller translates them (see `AgentClient`). A request on a reused connection that the server
had closed while it was idle, before any byte of an answer came back, is sent once more on a
new connection, as httpx does.
"""

from __future__ import annotations

import asyncio
import contextlib

from thresher.client._http1 import MAX_HEAD, AnswerHead, WireError, WireResponse, lean_target

__all__ = ["WireClient", "WireError", "WireResponse", "lean_target"]

_MAX_IDLE = 4  # kept-alive connections: one poll and a report or two at most at once


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False  # it has carried a request before (so the server may have closed it)
        self.answer = AnswerHead()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Stale(Exception):
    """A reused connection was closed by the server before it answered anything."""


class WireClient:
    """POSTs to one server over up to a few kept-alive connections (one request in flight on
    each). Not thread-safe: one event loop uses it."""

    def __init__(self, host: str, port: int, *, base_path: str = "") -> None:
        self._host = host
        self._port = port
        self._base_path = base_path.rstrip("/")
        authority = host if port == 80 else f"{host}:{port}"
        if ":" in host:  # an IPv6 literal
            authority = f"[{host}]" if port == 80 else f"[{host}]:{port}"
        self._host_header = authority
        self._idle: list[_Connection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heads: dict[tuple[str, str], bytes] = {}

    async def post(self, path: str, body: bytes, *, token: str, timeout: float) -> WireResponse:
        """Send one POST with a JSON body and read the whole answer within `timeout` seconds."""
        head = self._head(path, token)
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that made them
            self._loop = loop
            idle, self._idle = self._idle, []
            for connection in idle:
                connection.close()
        async with asyncio.timeout(timeout):
            while True:
                connection = self._idle.pop() if self._idle else await self._connect()
                try:
                    response, keep = await self._exchange(connection, head, body)
                except _Stale:
                    connection.close()
                    continue  # the server dropped it while it was idle: a new one
                except BaseException:
                    connection.close()  # broken, timed out or canceled midway: never reused
                    raise
                if keep and len(self._idle) < _MAX_IDLE:
                    connection.used = True
                    self._idle.append(connection)
                else:
                    connection.close()
                return response

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _head(self, path: str, token: str) -> bytes:
        key = (path, token)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 16:
                self._heads.clear()  # a new token (re-registered): the old heads are dead
            head = (
                f"POST {self._base_path}{path} HTTP/1.1\r\n"
                f"Host: {self._host_header}\r\n"
                "Accept: application/json\r\n"
                f"Authorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\n"
                "Content-Length: "
            ).encode("latin-1")
            self._heads[key] = head
        return head

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=MAX_HEAD)
        return _Connection(reader, writer)

    async def _exchange(
        self, connection: _Connection, head: bytes, body: bytes
    ) -> tuple[WireResponse, bool]:
        writer, reader, answer = connection.writer, connection.reader, connection.answer
        try:
            writer.write(b"%s%d\r\n\r\n%s" % (head, len(body), body))
            await writer.drain()
            status_line = await reader.readline()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            raise _unanswered(connection, exc) from None
        if not status_line:
            closed = WireError("the server closed the connection without an answer")
            raise _unanswered(connection, closed)
        answer.start(status_line)
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n"):  # the blank line that ends the head
                break
            if not line.endswith(b"\n"):  # the connection closed within the head
                raise asyncio.IncompleteReadError(line, None)
            answer.take(line)
        if answer.bodiless:
            content = b""
        elif answer.chunked:
            content = await _read_chunked(reader)
        elif answer.length is not None:
            content = await reader.readexactly(answer.length)
        else:  # read to the end: the connection cannot carry another answer
            content = await reader.read()
            answer.keep = False
        return WireResponse(answer.code, answer.reason, content), answer.keep


def _unanswered(connection: _Connection, error: Exception) -> Exception:
    """What to raise for a request that got no answer at all: on a reused connection the server
    may have closed it while it was idle (send it again on a new one), else `error` itself."""
    return _Stale() if connection.used else error


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readline()
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise WireError(f"bad chunk size: {size_line[:40]!r}") from None
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)
