"""Reading chunk batches over plain HTTP/1.1 on asyncio streams: the hot path of a download.

httpx reads a response 64 KiB at a time through several layers; a batch of 1 MiB chunks then
costs more CPU in the client than in hashing and writing them. Here a batch's response (sized
by the service in advance: ``Content-Length``) is read frame by frame with `readexactly`, on
connections kept open and reused. Used for ``http://`` services; anything else goes through
httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

from thresher.files.chunking import HASH_BYTES, MAX_CHUNK
from thresher.files.frames import HEADER

LIMIT = 4 * 1024 * 1024


class RawError(Exception):
    """The service answered an error or broke the framing."""


class RawReader:
    """Chunk batches from one file service over a small pool of kept-alive connections."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def aclose(self) -> None:
        for _, writer in self._idle:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._idle.clear()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        """A connection, and whether it was kept from an earlier batch (the service may have
        closed it since: its keep-alive is short)."""
        if self._idle:
            return (*self._idle.pop(), True)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=LIMIT), self.timeout
        )
        return reader, writer, False

    async def _ask(
        self, digests: Sequence[str]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bool]:
        """Send the request and read the answer's head: on a kept connection the service
        closed, once more on a new one."""
        body = json.dumps({"hashes": list(digests)}).encode()
        head = (
            f"POST {self.base}/files/v1/chunks/read HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        while True:
            reader, writer, kept = await self._connect()
            try:
                writer.write(head + body)
                await writer.drain()
                length, keep = await self._headers(reader)
                return reader, writer, length, keep
            except (OSError, asyncio.IncompleteReadError) as exc:
                writer.close()
                if not kept:
                    raise RawError(f"no answer: {type(exc).__name__}: {exc}") from exc

    async def read(self, digests: Sequence[str]) -> AsyncIterator[tuple[str, bytes]]:
        """(hash, bytes) of each chunk the service sends back, in order."""
        reader, writer, length, keep = await self._ask(digests)
        done = False
        try:
            while length > 0:
                frame = await asyncio.wait_for(reader.readexactly(HEADER), self.timeout)
                digest = frame[:HASH_BYTES].hex()
                size = int.from_bytes(frame[HASH_BYTES:], "big")
                if size > MAX_CHUNK or HEADER + size > length:
                    raise RawError("the service broke the batch's framing")
                data = await asyncio.wait_for(reader.readexactly(size), self.timeout)
                length -= HEADER + size
                yield digest, data
            done = keep
        except asyncio.IncompleteReadError as exc:
            raise RawError("the connection ended in the middle of a batch") from exc
        finally:
            if done:
                self._idle.append((reader, writer))
            else:
                writer.close()

    async def _headers(self, reader: asyncio.StreamReader) -> tuple[int, bool]:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RawError("the service sent no Content-Length")
        length = int(headers["content-length"])
        if status != 200:
            text = (await reader.readexactly(length)).decode(errors="replace")
            raise RawError(f"{status} {text[:300]}")
        return length, headers.get("connection", "").lower() != "close"
