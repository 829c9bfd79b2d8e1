"""A bound on request bodies: a body over the limit is answered 413 before any route reads it.

A request that declares its length (`Content-Length`) over the limit is refused without reading
a byte of it. A body sent without a length (chunked) is read up to the limit and then refused,
or handed on whole. Workers' polls and reports carry the output their tasks printed while the
controller was away, so they have a limit of their own.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Paths whose bodies are workers' reports (the larger limit).
AGENT_PREFIX = "/api/v1/agent/"


class BodyLimit:
    """ASGI middleware: `max_bytes` for every body, `max_agent_bytes` under AGENT_PREFIX."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_agent_bytes: int) -> None:
        self.app, self.max_bytes, self.max_agent_bytes = app, max_bytes, max_agent_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = self.max_agent_bytes if path.startswith(AGENT_PREFIX) else self.max_bytes
        declared = _content_length(scope)
        if declared is not None:
            if declared > limit:
                await too_large(send, limit)
                return
            await self.app(scope, receive, send)  # the server delivers no more than declared
            return
        body = await read_at_most(receive, limit)
        if body is None:
            await too_large(send, limit)
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_at_most(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is over `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: hand on an empty body
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the connection's own messages (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def too_large(send: Send, limit: int) -> None:
    payload = json.dumps(
        {
            "error": "too_large",
            "message": f"the request body is over {limit} bytes",
            "field": "body",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
