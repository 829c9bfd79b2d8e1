"""HTTP/1.1 as the client's lean transports read it, without I/O: the answer's head taken a
line at a time, and whether a URL may take a lean transport at all. The worker's asyncio
transport (`_wire`) and `Session`'s blocking one (`_blocking`) share it."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["MAX_HEAD", "AnswerHead", "WireError", "WireResponse", "lean_target"]

#: The longest head line either transport reads.
MAX_HEAD = 64 * 1024


class WireError(Exception):
    """The server's answer was not HTTP/1.1 as this client reads it."""


@dataclass(frozen=True)
class WireResponse:
    status: int
    reason: str
    content: bytes


def lean_target(url: str) -> tuple[str, int] | None:
    """(host, port) when `url` may take the lean path: plain http, no proxy for the host."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return None
    host = parts.hostname
    proxies = urllib.request.getproxies()
    if ("http" in proxies or "all" in proxies) and not urllib.request.proxy_bypass(host):
        return None
    return host, parts.port or 80


class AnswerHead:
    """What the head of an answer says, taken a line at a time (no I/O here): the status, how
    the body is framed, and whether the connection may carry another request. A connection
    keeps one and reuses it for each of its answers."""

    __slots__ = ("chunked", "code", "keep", "length", "reason")

    def __init__(self) -> None:
        self.code = 0
        self.reason = ""
        self.length: int | None = None
        self.chunked = False
        self.keep = False

    def start(self, status_line: bytes) -> None:
        """Begin an answer with its status line; WireError when it is not HTTP/1.x."""
        version, _, rest = status_line.decode("latin-1").rstrip("\r\n").partition(" ")
        code, _, self.reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise WireError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
        self.code = int(code)
        self.length = None
        self.chunked = False
        self.keep = version == "HTTP/1.1"

    @property
    def bodiless(self) -> bool:
        """The answer has no body whatever its head says (204 No Content, 304 Not Modified)."""
        return self.code in (204, 304)

    def take(self, line: bytes) -> None:
        """Take one header line (whole, with its line end)."""
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "content-length":
            self.length = int(value)
        elif name == "transfer-encoding":
            self.chunked = "chunked" in value.lower()
        elif name == "connection":
            self.keep = "close" not in value.lower() and (
                self.keep or "keep-alive" in value.lower()
            )
