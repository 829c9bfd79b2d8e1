"""The connection protocol the controller serves HTTP with: uvicorn's httptools protocol, the
workers' polls and reports and people's submits (`hot_routes.PATHS`) handed straight to
`HotRoutes` and answered in one write.

uvicorn spends, per request, about as much of the event loop's CPU as the hot routes' own code:
it splits the URL, builds the scope, goes through its proxy-headers middleware and the app's
`__call__`, checks every response header against two regular expressions and writes the status
line and headers, then the body, in two writes (two system calls, two TCP segments, two reads
for the worker). `HotProtocol` changes only this, for a request whose method is POST and whose
target is exactly one of the hot paths (no query, no escapes) while the app serves them
(`ThresherApp.hot_routes`, the farm started):

- the scope is built as uvicorn builds it (the same keys), without splitting the URL;
- the request runs `HotRoutes` itself (the proxy-headers middleware rewrites the client's
  address and scheme, which these routes never read);
- the answer (`HotCycle.send`) is written once: the status line and headers are held until
  the body comes, then written with it. Headers are the app's own (no need to check them
  again); a response without a Content-Length is left to uvicorn's own writing.

Everything else is uvicorn's, unchanged: the parser, keep-alive and its timeout, pipelined
requests (queued in order behind the one being answered), `Expect: 100-continue`, the request
body's flow control, a client going away (`connection_lost` marks the request disconnected),
TLS (it is below the protocol), the graceful shutdown, and every other request. With
`ThresherApp.hot_protocol` off, the hot routes' requests go through uvicorn's own path (to
`ThresherApp.__call__`), which the tests compare with this one.

It leans on uvicorn's protocol classes (`uvicorn.protocols.http.httptools_impl`), which are
not a public API: `protocol_for` hands back uvicorn's default ("auto") when they do not have
the shape this module was written against."""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from thresher.controller.hot_routes import PATHS

if TYPE_CHECKING:
    from thresher.controller.app import ThresherApp

#: The hot requests' targets, as they come on the request line.
_TARGETS: dict[bytes, str] = {path.encode("ascii"): path for path in PATHS}
#: What this module calls of uvicorn's cycle.
_CYCLE_ARGS = {
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
}


def supported() -> bool:
    """Whether the installed uvicorn has the protocol classes this module builds on."""
    params = set(inspect.signature(RequestResponseCycle.__init__).parameters)
    needed = ("on_headers_complete", "_start_asgi_task", "on_response_complete")
    return params >= _CYCLE_ARGS and all(hasattr(HttpToolsProtocol, n) for n in needed)


def protocol_for(app: Any) -> Any:
    """The `http` setting of `uvicorn.Config` serving `app`: `HotProtocol` for a Thresher app
    where uvicorn allows it, else uvicorn's default."""
    from thresher.controller.app import ThresherApp

    if isinstance(app, ThresherApp) and supported():
        return HotProtocol
    return "auto"


class HotCycle(RequestResponseCycle):
    """One hot request's cycle: uvicorn's, but the answer written in one write."""

    head: bytes | None = None  # the status line and headers, until the body comes
    lean = True  # False: this answer is written by uvicorn's own `send`

    async def send(self, message: Any) -> None:
        if not self.lean:
            await super().send(message)
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected 'http.response.start', got {message['type']!r}")
            if self.access_log or not self._start(message):
                self.lean = False  # uvicorn's `send` writes this answer, as it would
                await super().send(message)
        elif self.response_complete or message["type"] != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message {message['type']!r}")
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def _start(self, message: Any) -> bool:
        """Hold the status line and headers for the body; False for an answer without a
        length (a stream, or chunked), left to uvicorn's `send`."""
        headers = message.get("headers", ())
        lines = [STATUS_LINE[message["status"]]]
        length: int | None = None
        close = False
        for name, value in (*self.default_headers, *headers):
            name = name.lower()
            if name == b"content-length" and length is None:
                length = int(value)
            elif name == b"transfer-encoding":
                length = None
                break
            elif name == b"connection":
                close = close or b"close" in [t.strip() for t in value.lower().split(b",")]
            lines += (name, b": ", value, b"\r\n")
        else:
            if length is not None:
                self.response_started = True
                self.waiting_for_100_continue = False
                self.expected_content_length = length
                self.chunked_encoding = False
                if close or not self.keep_alive:
                    self.keep_alive = False
                    if not close:
                        lines.append(b"connection: close\r\n")
                lines.append(b"\r\n")
                self.head = b"".join(lines)
                return True
        return False

    def _body(self, body: bytes, more: bool) -> None:
        if len(body) > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        self.expected_content_length -= len(body)
        head, self.head = self.head, None
        if head is not None:
            body = head + body if body else head
        if body:
            self.transport.write(body)
        if not more:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


class HotProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the hot routes' requests run by `HotCycle`
    (see the module's docstring)."""

    def on_headers_complete(self) -> None:
        path = _TARGETS.get(self.url)
        hot = self._hot() if path is not None else None
        parser = self.parser
        if (
            hot is None
            or path is None
            or parser.get_method() != b"POST"
            or parser.should_upgrade()
            or self.limit_concurrency is not None
        ):
            super().on_headers_complete()
            return
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = "POST"
        if http_version != "1.1":
            scope["http_version"] = http_version
        scope["path"] = self.root_path + path if self.root_path else path
        scope["raw_path"] = self.root_path.encode("ascii") + self.url
        scope["query_string"] = b""
        existing = self.cycle
        self.cycle = HotCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,  # off (`server_config`); on: uvicorn's `send`
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=http_version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, hot)
        else:  # pipelined: after the one being answered, as uvicorn queues them
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, hot))

    def _hot(self) -> Any:
        """The app's hot routes, when they serve now (else None)."""
        app: ThresherApp = self.config.app  # type: ignore[assignment]
        hot = app.hot
        if hot is None or not (app.hot_routes and app.hot_protocol):
            return None
        if getattr(app.state, "farm", None) is None:
            return None
        return hot
