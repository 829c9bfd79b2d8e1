"""Reading chunk batches over plain HTTP/1.1 on sockets: the hot path of a download.

httpx reads a response 64 KiB at a time through several layers, and asyncio's StreamReader
copies every byte twice more; a batch of 1 MiB chunks then costs more CPU in the client than
hashing and writing them. Here a batch's response (sized by the service in advance:
``Content-Length``) is read frame by frame straight into each chunk's own buffer
(`loop.sock_recv_into`), on connections kept open and reused. Used for ``http://`` services;
anything else goes through httpx.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Sequence
from urllib.parse import urlsplit

from thresher.files.chunking import HASH_BYTES, MAX_CHUNK
from thresher.files.frames import HEADER

MAX_HEAD = 64 * 1024
SMALL = 64 * 1024


class RawError(Exception):
    """The service answered an error or broke the framing."""


class _Conn:
    """One connection, with the bytes read past what was asked for."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.extra = b""

    async def exactly(self, n: int, timeout: float) -> bytearray:
        """The next `n` bytes: small reads (frame heads, small files' chunks) are served from
        a buffer refilled 256 KiB at a time, large ones read straight into their own. One
        timeout for the whole read (`asyncio.timeout`: no task per receive, as `wait_for`
        makes)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while n < SMALL and len(self.extra) < n:
                more = await loop.sock_recv(self.sock, 4 * SMALL)
                if not more:
                    raise RawError("the connection ended in the middle of a batch")
                self.extra += more
            out = bytearray(n)
            view = memoryview(out)
            got = min(len(self.extra), n)
            view[:got] = self.extra[:got]
            self.extra = self.extra[got:]
            while got < n:
                read = await loop.sock_recv_into(self.sock, view[got:])
                if not read:
                    raise RawError("the connection ended in the middle of a batch")
                got += read
        return out

    async def head(self, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        data = self.extra
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                raise RawError("the answer's head is too long")
            more = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)
            if not more:
                raise ConnectionResetError("the service closed the connection")
            data += more
        head, _, self.extra = data.partition(b"\r\n\r\n")
        return head

    def close(self) -> None:
        self.sock.close()


class RawReader:
    """Chunk batches from one file service over a small pool of kept-alive connections."""

    def __init__(self, url: str, token: str, *, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._idle: list[_Conn] = []

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()

    async def _connect(self) -> tuple[_Conn, bool]:
        """A connection, and whether it was kept from an earlier batch (the service may have
        closed it since: its keep-alive is short)."""
        if self._idle:
            return self._idle.pop(), True
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, address), self.timeout)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock), False

    async def _ask(self, digests: Sequence[str]) -> tuple[_Conn, int, bool]:
        """Send the request and read the answer's head: on a kept connection the service
        closed, once more on a new one."""
        body = json.dumps({"hashes": list(digests)}).encode()
        head = (
            f"POST {self.base}/files/v1/chunks/read HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        while True:
            conn, kept = await self._connect()
            try:
                await asyncio.wait_for(loop.sock_sendall(conn.sock, head + body), self.timeout)
                length, keep = await self._status(conn)
                return conn, length, keep
            except OSError as exc:
                conn.close()
                if not kept:
                    raise RawError(f"no answer: {type(exc).__name__}: {exc}") from exc

    async def read(self, digests: Sequence[str]) -> AsyncIterator[tuple[str, bytearray]]:
        """(hash, bytes) of each chunk the service sends back, in order."""
        conn, length, keep = await self._ask(digests)
        done = False
        try:
            while length > 0:
                frame = await conn.exactly(HEADER, self.timeout)
                digest = frame[:HASH_BYTES].hex()
                size = int.from_bytes(frame[HASH_BYTES:], "big")
                if size > MAX_CHUNK or HEADER + size > length:
                    raise RawError("the service broke the batch's framing")
                data = await conn.exactly(size, self.timeout)
                length -= HEADER + size
                yield digest, data
            done = keep and not conn.extra
        finally:
            if done:
                self._idle.append(conn)
            else:
                with contextlib.suppress(OSError):
                    conn.close()

    async def _status(self, conn: _Conn) -> tuple[int, bool]:
        lines = (await conn.head(self.timeout)).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RawError("the service sent no Content-Length")
        length = int(headers["content-length"])
        if status != 200:
            text = (await conn.exactly(length, self.timeout)).decode(errors="replace")
            raise RawError(f"{status} {text[:300]}")
        return length, headers.get("connection", "").lower() != "close"
