"""A lean blocking HTTP/1.1 client: what `Session` sends its calls through for a plain
`http://` controller reached without a proxy (`_wire.lean_target`).

Through httpx a call cost the client about 2 ms before and after the controller's own work on
the benchmark's machine (its request and response models, auth flow, redirects and connection
pool, each layer in Python); a submit and the wait for its job are two calls on the path from a
script to its job's end. This writes the request's head and body on a kept-alive socket and reads
the answer with the same head parser as the worker's asyncio transport (`_http1.AnswerHead`):
a Content-Length or chunked body, or one read to the end of the connection.

Thread-safe: each call takes an idle connection (or opens one) and puts it back after. Each
socket operation has the call's time limit, as httpx's per-operation timeouts do. A call on a
reused connection that the server had closed while it was idle, before any byte of an answer
came back, is sent once more on a new connection (as httpx does). Errors: `Unsent` when no
connection could be made (the request surely never reached the server), else `OSError`,
`TimeoutError` or `WireError`.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from thresher.client._http1 import MAX_HEAD, AnswerHead, WireError, WireResponse

__all__ = ["BlockingWire", "Unsent", "query_string"]

_MAX_IDLE = 4
#: What a path keeps as it is (RFC 3986's sub-delimiters, ":", "@", "/" and escapes already
#: made); anything else, a space or a "?" in a name, is percent-encoded, as httpx does.
_PATH_SAFE = "/:@!$&'()*+,;=%~"


class Unsent(OSError):
    """No connection to the server could be made: the request was never sent."""


def query_string(params: Mapping[str, Any] | None) -> str:
    """`params` as httpx encodes them: a list repeats its key, booleans are `true`/`false`,
    None is empty."""
    if not params:
        return ""
    pairs: list[str] = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else (value,):
            pairs.append(f"{quote(str(key), safe='')}={quote(_text(item), safe='')}")
    return "?" + "&".join(pairs)


def _text(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


class _Connection:
    __slots__ = ("answer", "file", "sock", "used")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rb")
        self.used = False  # it carried a request before (so the server may have closed it)
        self.answer = AnswerHead()

    def close(self) -> None:
        for part in (self.file, self.sock):
            with contextlib.suppress(OSError):
                part.close()


class _Stale(Exception):
    """A reused connection was closed by the server before it answered anything."""


class BlockingWire:
    """Calls to the server at `url` (plain http) with `headers` sent on every request."""

    def __init__(self, url: str, target: tuple[str, int], headers: Mapping[str, str]) -> None:
        self._host, self._port = target
        self._base_path = urlsplit(url).path.rstrip("/")
        authority = self._host if self._port == 80 else f"{self._host}:{self._port}"
        if ":" in self._host:  # an IPv6 literal
            authority = f"[{self._host}]" if self._port == 80 else f"[{self._host}]:{self._port}"
        lines = [f"Host: {authority}", "Accept: application/json"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._headers = ("\r\n".join(lines) + "\r\n").encode("latin-1")
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float,
    ) -> WireResponse:
        """Send one request and read its whole answer, each socket operation within
        `timeout` seconds."""
        target = quote(f"{self._base_path}{path}", safe=_PATH_SAFE) + query_string(params)
        head = f"{method} {target} HTTP/1.1\r\n".encode()
        head += self._headers
        if json_body is not None:
            body = json.dumps(
                json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            message = head + body
        else:
            message = head + (b"Content-Length: 0\r\n\r\n" if method in _BODIED else b"\r\n")
        while True:
            connection = self._take(timeout)
            try:
                response, keep = self._exchange(connection, message, timeout)
            except _Stale:
                connection.close()
                continue  # the server dropped it while it was idle: a new one
            except BaseException:
                connection.close()  # broken or timed out midway: never reused
                raise
            if keep:
                self._put_back(connection)
            else:
                connection.close()
            return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def _take(self, timeout: float) -> _Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            sock = socket.create_connection((self._host, self._port), timeout=timeout)
        except OSError as exc:
            raise Unsent(f"{exc.__class__.__name__}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock)

    def _put_back(self, connection: _Connection) -> None:
        connection.used = True
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(connection)
                return
        connection.close()

    def _exchange(
        self, connection: _Connection, message: bytes, timeout: float
    ) -> tuple[WireResponse, bool]:
        connection.sock.settimeout(timeout)
        reader, answer = connection.file, connection.answer
        try:
            connection.sock.sendall(message)
            status_line = reader.readline(MAX_HEAD)
        except ConnectionError as exc:
            raise _unanswered(connection, exc) from None
        if not status_line:
            closed = WireError("the server closed the connection without an answer")
            raise _unanswered(connection, closed)
        answer.start(status_line)
        while True:
            line = reader.readline(MAX_HEAD)
            if line in (b"\r\n", b"\n"):  # the blank line that ends the head
                break
            if not line.endswith(b"\n"):  # closed within the head, or a line over the bound
                raise WireError("the answer's head was cut short or too long")
            answer.take(line)
        if answer.bodiless:
            content = b""
        elif answer.chunked:
            content = _read_chunked(reader)
        elif answer.length is not None:
            content = _read_exactly(reader, answer.length)
        else:  # read to the end: the connection cannot carry another answer
            content = reader.read()
            answer.keep = False
        return WireResponse(answer.code, answer.reason, content), answer.keep


#: Methods whose requests carry a body even when it is empty (a length of 0 is sent).
_BODIED = frozenset({"POST", "PUT", "PATCH"})


def _unanswered(connection: _Connection, error: Exception) -> Exception:
    return _Stale() if connection.used else error


def _read_exactly(reader: Any, size: int) -> bytes:
    data: bytes = reader.read(size)
    if len(data) != size:
        raise WireError(f"the answer's body ended after {len(data)} of {size} bytes")
    return data


def _read_chunked(reader: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = reader.readline(MAX_HEAD)
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise WireError(f"bad chunk size: {size_line[:40]!r}") from None
        if size == 0:
            while reader.readline(MAX_HEAD) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(_read_exactly(reader, size))
        _read_exactly(reader, 2)
