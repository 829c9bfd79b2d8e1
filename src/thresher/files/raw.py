"""Reading chunk batches over plain HTTP/1.1 on sockets: the hot path of a download.

httpx reads a response 64 KiB at a time through several layers, and asyncio's StreamReader
copies every byte twice more; a batch of 1 MiB chunks then costs more CPU in the client than
hashing and writing them. Here a batch (its request sent, its answer's head read, then each
chunk, its length said by the service in advance: ``Content-Length``) is read on a thread, in
one hand-off per batch: each chunk straight into its own buffer with one blocking receive
(``MSG_WAITALL``), where the event loop took a turn (a wakeup, a callback, a task step) for
every piece the socket had. Connections are kept open and reused. Used for ``http://``
services; anything else goes through httpx.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from thresher.files.chunking import HASH_BYTES, MAX_CHUNK
from thresher.files.frames import HEADER

MAX_HEAD = 64 * 1024
SMALL = 64 * 1024
#: Batches read at once from one service (more wait for a thread).
MAX_READS = 16
_WAITALL = getattr(socket, "MSG_WAITALL", 0)


class RawError(Exception):
    """The service answered an error or broke the framing."""


class _Conn:
    """One connection (blocking, its timeouts the kernel's), with the bytes read past what was
    asked for. Used by one thread at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.extra = b""

    def exactly(self, n: int) -> bytearray:
        """The next `n` bytes, received straight into their own buffer."""
        while n < SMALL and len(self.extra) < n:  # frame heads, small files: read ahead
            try:
                more = self.sock.recv(4 * SMALL)
            except BlockingIOError:
                raise TimeoutError("the service sent nothing for too long") from None
            if not more:
                raise RawError("the connection ended in the middle of a batch")
            self.extra += more
        out = bytearray(n)
        view = memoryview(out)
        got = min(len(self.extra), n)
        view[:got] = self.extra[:got]
        self.extra = self.extra[got:]
        while got < n:
            try:
                read = self.sock.recv_into(view[got:], n - got, _WAITALL)
            except BlockingIOError:  # SO_RCVTIMEO ran out
                raise TimeoutError("the service sent nothing for too long") from None
            if not read:
                raise RawError("the connection ended in the middle of a batch")
            got += read
        return out

    def head(self) -> bytes:
        data = self.extra
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HEAD:
                raise RawError("the answer's head is too long")
            try:
                more = self.sock.recv(SMALL)
            except BlockingIOError:
                raise TimeoutError("the service sent nothing for too long") from None
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
        self._idle: list[_Conn] = []  # touched on the event loop only
        # Batches are read on threads of their own (one per batch in flight, made as needed),
        # not the loop's default pool, which the writes into part files use.
        self._pool = ThreadPoolExecutor(MAX_READS, thread_name_prefix="chunk-read")

    async def aclose(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
        self._pool.shutdown(wait=False)

    def _connect(self) -> _Conn:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(None)  # blocking, with the kernel's timeouts (one call per chunk)
            limit = struct.pack("ll", int(self.timeout), int(self.timeout % 1 * 1e6))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        except BaseException:
            sock.close()
            raise
        return _Conn(sock)

    def _ask(self, conn: _Conn | None, digests: Sequence[str]) -> tuple[_Conn, int, bool]:
        """Send the request and read the answer's head: on a kept connection (`conn`) the
        service may have closed since (its keep-alive is short), once more on a new one."""
        body = json.dumps({"hashes": list(digests)}).encode()
        request = (
            f"POST {self.base}/files/v1/chunks/read HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        while True:
            kept = conn is not None
            if conn is None:
                try:
                    conn = self._connect()
                except OSError as exc:
                    raise RawError(f"no answer: {type(exc).__name__}: {exc}") from exc
            try:
                conn.sock.sendall(request)
                length, keep = self._status(conn)
                return conn, length, keep
            except RawError:
                conn.close()
                raise
            except OSError as exc:
                conn.close()
                conn = None
                if not kept:
                    raise RawError(f"no answer: {type(exc).__name__}: {exc}") from exc

    def _batch(
        self, conn: _Conn | None, digests: Sequence[str]
    ) -> tuple[list[tuple[str, bytearray]], _Conn | None, BaseException | None]:
        """(On a thread.) A batch whole: its chunks, the connection to keep (None: closed) and
        what broke it off (the chunks before the break are kept)."""
        got: list[tuple[str, bytearray]] = []
        try:
            conn, length, keep = self._ask(conn, digests)
        except (OSError, RawError) as exc:
            return got, None, exc
        try:
            while length > 0:
                frame = conn.exactly(HEADER)
                digest = frame[:HASH_BYTES].hex()
                size = int.from_bytes(frame[HASH_BYTES:], "big")
                if size > MAX_CHUNK or HEADER + size > length:
                    raise RawError("the service broke the batch's framing")
                got.append((digest, conn.exactly(size)))
                length -= HEADER + size
        except (OSError, RawError) as exc:
            conn.close()
            return got, None, exc
        if keep and not conn.extra:
            return got, conn, None
        conn.close()
        return got, None, None

    async def read(self, digests: Sequence[str]) -> AsyncIterator[tuple[str, bytearray]]:
        """(hash, bytes) of each chunk the service sends back, in order."""
        conn = self._idle.pop() if self._idle else None
        try:
            loop = asyncio.get_running_loop()
            got, conn, error = await loop.run_in_executor(
                self._pool, self._batch, conn, list(digests)
            )
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if conn is not None:
            self._idle.append(conn)
        for digest, data in got:
            yield digest, data
        if error is not None:
            raise error

    def _status(self, conn: _Conn) -> tuple[int, bool]:
        lines = conn.head().decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" not in headers:
            raise RawError("the service sent no Content-Length")
        length = int(headers["content-length"])
        if status != 200:
            text = conn.exactly(length).decode(errors="replace")
            raise RawError(f"{status} {text[:300]}")
        return length, headers.get("connection", "").lower() != "close"
