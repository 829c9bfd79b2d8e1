"""Serving chunk batches with `os.sendfile`: the hot path of a pull, beside the ASGI stack.

Through uvicorn, every byte of a chunk is read into Python (a `pread` of the file), handed to
the ASGI server and written to the socket, copied on the way through the event loop's write
buffer: half a pull's CPU at the source. Here a connection whose first request is ``POST
/files/v1/chunks/read`` (what `raw.RawReader` sends) is taken off the event loop and served on
a thread of its own: the request is read, checked as the route checks it (the service's token,
or a scoped token and the chunks it may read), and each chunk goes from its file to the socket
in the kernel (`socket.sendfile`), after its frame's head (`frames`). The answer is byte for
byte the route's: the batch's length first, a chunk that is not here left out, one that turns
out short (its source file changed) padded with zeros, which the reader's check refuses.

Anything else goes to uvicorn as it came: every other route, and any request this path does not
serve itself (no ``Content-Length``, a body over MAX_BODY, a token it does not accept, a body
that is not a plain list of hashes, TLS): the route answers those, with its errors. A kept
connection whose next request is not a chunk read is handed back to the event loop too. At most
MAX_RAW connections are served on threads at once; more go through uvicorn. An idle connection
is closed after IDLE_S seconds, as uvicorn closes its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import re
import socket
import struct
import threading
from typing import Any

from thresher.files.frames import HEADER
from thresher.files.scope import check as scope_of

REQUEST = b"POST /files/v1/chunks/read "
#: Connections served on threads at once; more go through uvicorn.
MAX_RAW = 16
#: The largest request body served here (about 15,000 hashes); larger ones go to the route.
MAX_BODY = 1024 * 1024
MAX_HEAD = 16 * 1024
IDLE_S = 5.0
IO_S = 120.0
MAX_HASHES = 100_000
_HASH = re.compile(r"^[0-9a-f]{64}$")
_MORE = getattr(socket, "MSG_MORE", 0)
_TIMEVAL = struct.pack("ll", int(IO_S), 0)


_adopting: set[asyncio.Task[None]] = set()


class _HandBack(Exception):
    """A request this path does not serve: the connection goes to uvicorn with it."""


def protocol_for(service: Any, fallback: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A uvicorn protocol class (`uvicorn.Config(http=...)`) for `service` (a
    `service.FileService`): chunk reads served here, everything else by `fallback`."""
    attrs = {"service": service, "fallback": fallback, "slots": threading.BoundedSemaphore(MAX_RAW)}
    return type("ChunkReadsFor", (ChunkReads,), attrs)


class ChunkReads(asyncio.Protocol):
    """A connection's first bytes: a chunk read goes to a thread (`_serve_connection`), anything
    else to uvicorn's protocol (`fallback`), which takes the transport over."""

    service: Any
    fallback: type[asyncio.Protocol]
    slots: threading.BoundedSemaphore

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: Any = None,
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        preload: bytes = b"",
    ) -> None:
        self._make = (config, server_state, app_state, _loop)
        self._buffer = bytearray(preload)
        self._raw = not preload  # a connection handed back stays with uvicorn
        self._transport: Any = None  # uvloop's transports are not asyncio.Transport's kind
        self._decided = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if self._buffer:
            self._decide()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._decided:
            self._decide()

    def eof_received(self) -> bool | None:
        if not self._decided and self._transport is not None:
            self._transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def _decide(self) -> None:
        head = bytes(self._buffer[: len(REQUEST)])
        if len(head) < len(REQUEST) and REQUEST.startswith(head):
            return  # not enough to tell yet
        transport = self._transport
        self._decided = True
        raw = (
            self._raw
            and head == REQUEST
            and transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("socket") is not None
        )
        if raw and self.slots.acquire(blocking=False):
            try:
                sock = _take(transport)
            except OSError:
                self.slots.release()
            else:
                loop = asyncio.get_running_loop()
                args = (sock, bytes(self._buffer), loop)
                threading.Thread(target=self._serve, args=args, daemon=True).start()
                return
        inner = self.fallback(*self._make)  # type: ignore[call-arg]
        transport.set_protocol(inner)
        inner.connection_made(transport)
        inner.data_received(bytes(self._buffer))
        self._buffer.clear()

    def _serve(self, sock: socket.socket, buffer: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """(On its own thread.) Serve the connection's chunk reads, then close it or hand it
        back to the event loop with what it read of its next request."""
        try:
            left = _serve_connection(self.service, sock, buffer)
        except Exception:
            left = None
        finally:
            self.slots.release()
        if left is None:
            with contextlib.suppress(OSError):
                sock.close()
            return
        kind, make = type(self), self._make

        async def adopt() -> None:
            try:
                await loop.connect_accepted_socket(lambda: kind(*make, preload=left), sock)
            except (OSError, RuntimeError):
                sock.close()

        def start() -> None:
            task = loop.create_task(adopt())
            _adopting.add(task)  # a task only weakly referenced by the loop may be collected
            task.add_done_callback(_adopting.discard)

        try:
            loop.call_soon_threadsafe(start)
        except RuntimeError:  # the loop has ended
            sock.close()


def _take(transport: Any) -> socket.socket:
    """The connection's socket, off the event loop: a copy of its descriptor, then the
    transport dropped (which closes its own descriptor only: the connection stays open)."""
    copy = os.dup(transport.get_extra_info("socket").fileno())
    transport.pause_reading()
    transport.abort()
    return socket.socket(fileno=copy)


def _serve_connection(service: Any, sock: socket.socket, buffer: bytes) -> bytes | None:
    """Serve chunk reads on the connection until it closes or idles (None), or its next request
    is one for uvicorn: then the bytes of it read so far."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending = bytearray(buffer)
    first = True
    while True:
        end = _head_end(sock, pending, IO_S if first else IDLE_S)
        first = False
        if end is None:
            return None
        if end < 0 or not pending.startswith(REQUEST):
            return bytes(pending)
        try:
            length, close, token = _head(bytes(pending[:end]))
        except _HandBack:
            return bytes(pending)
        sock.settimeout(IO_S)
        while len(pending) < end + 4 + length:
            more = sock.recv(max(65536, end + 4 + length - len(pending)))
            if not more:
                return None
            pending += more
        try:
            hashes = _hashes(bytes(pending[end + 4 : end + 4 + length]))
            _authorise(service, token, hashes)
        except _HandBack:
            return bytes(pending)
        del pending[: end + 4 + length]
        _answer(service, sock, hashes, close)
        if close:
            return None


def _head_end(sock: socket.socket, pending: bytearray, idle: float) -> int | None:
    """Where the next request's head ends in `pending` (read until it is there); -1: it is not
    a chunk read (or too long), for uvicorn; None: the connection closed or idled."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        if not REQUEST.startswith(bytes(pending[: len(REQUEST)])) or len(pending) > MAX_HEAD:
            return -1
        sock.settimeout(IO_S if pending else idle)
        try:
            more = sock.recv(65536)
        except TimeoutError:
            return None
        if not more:
            return None
        pending += more
    return end


def _head(head: bytes) -> tuple[int, bool, str]:
    """The body's length, whether to close after the answer, the bearer token."""
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].endswith(" HTTP/1.1"):
        raise _HandBack
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _HandBack
        key = name.strip().lower()
        if key in headers:
            raise _HandBack  # repeated: the route decides
        headers[key] = value.strip()
    if "transfer-encoding" in headers or "expect" in headers:
        raise _HandBack
    try:
        length = int(headers["content-length"])
    except (KeyError, ValueError):
        raise _HandBack from None
    if not 0 < length <= MAX_BODY:
        raise _HandBack
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise _HandBack
    return length, headers.get("connection", "").lower() == "close", token.strip()


def _hashes(body: bytes) -> list[str]:
    """The body's hashes, if it is exactly what the route accepts."""
    try:
        value = json.loads(body)
    except ValueError:
        raise _HandBack from None
    if not isinstance(value, dict) or set(value) != {"hashes"}:
        raise _HandBack
    hashes = value["hashes"]
    if not isinstance(hashes, list) or len(hashes) > MAX_HASHES:
        raise _HandBack
    if not all(isinstance(h, str) and _HASH.match(h) for h in hashes):
        raise _HandBack
    return hashes


def _authorise(service: Any, token: str, hashes: list[str]) -> None:
    """As the route: the service's token reads any chunk, a scoped one only those of its
    manifests and of its names' checkins in progress (else the route answers the error)."""
    if hmac.compare_digest(token, service.token):
        return
    scope = scope_of(service.token, token)
    if scope is None:
        raise _HandBack
    running = [c for c in service.checkins.running() if scope.may_name(c.name)]
    allowed = service.store.manifest_chunks(scope.names)
    for checkin in running:
        allowed |= checkin.hashes()
    if not allowed.issuperset(hashes):
        raise _HandBack


def _answer(service: Any, sock: socket.socket, hashes: list[str], close: bool) -> None:
    """The batch: its length, then each chunk here as a frame's head and its bytes from where
    they lie (in the kernel), in order. The socket blocks (its send timeout the kernel's), so a
    chunk costs two calls, each letting go of the GIL once: its head (held back for the bytes
    that follow, `MSG_MORE`) and one `sendfile`. An error cuts the connection: the reader asks
    again."""
    found = service.store.locate(hashes)
    length = sum(HEADER + size for _, _, _, size in found)
    head = (
        "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\n"
        f"content-length: {length}\r\n" + ("connection: close\r\n" if close else "") + "\r\n"
    ).encode("latin-1")
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _TIMEVAL)
    sock.sendall(head, _MORE)
    opened: tuple[str, int] | None = None
    try:
        for digest, path, offset, size in found:
            sock.sendall(bytes.fromhex(digest) + size.to_bytes(8, "big"), _MORE)
            if opened is None or opened[0] != path:
                if opened is not None:
                    os.close(opened[1])
                    opened = None
                with contextlib.suppress(OSError):
                    opened = (path, os.open(path, os.O_RDONLY))
            sent = _send_range(sock, opened[1], offset, size) if opened is not None else 0
            if sent < size:  # gone or shorter than it was: zeros, which the reader refuses
                sock.sendall(bytes(size - sent))
    finally:
        if opened is not None:
            os.close(opened[1])


def _send_range(sock: socket.socket, fd: int, offset: int, size: int) -> int:
    """Send `size` bytes of file `fd` from `offset`: the bytes sent, fewer where the file ends
    first. A send that timed out raises (TimeoutError)."""
    sent = 0
    while sent < size:
        try:
            n = os.sendfile(sock.fileno(), fd, offset + sent, size - sent)
        except BlockingIOError:  # SO_SNDTIMEO ran out with nothing sent
            raise TimeoutError("the reader took nothing for too long") from None
        if n == 0:
            break
        sent += n
    return sent
