"""Request ids, structured logs and request metrics.

Every request carries an id: the caller's `X-Request-Id` (the CLI and the Python client send
one per command or session) when it is a sane token, else a new one. It is answered in the
response's `X-Request-Id`, set in a context variable while the request is served (the farm
thread runs each use case in a copy of the caller's context, so a use case's log lines carry
it too) and added to every log record as `request_id`. `configure_logging(json=True)` writes
one JSON object a line (time, level, logger, message, request_id, exception)."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thresher.controller.metrics import FarmMetrics

REQUEST_ID: ContextVar[str | None] = ContextVar("thresher-request-id", default=None)
# Ids made here: this process's random prefix and a counter (a uuid4 per request read
# os.urandom each time: 3 % of an idle farm's controller CPU).
_PREFIX = uuid.uuid4().hex[:8]
_NEXT = itertools.count(1)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
POLL_PATH = "/api/v1/agent/poll"
access_log = logging.getLogger("thresher.access")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(*, json_lines: bool, level: int = logging.WARNING) -> None:
    """The controller's logging: text (with the request id when there is one) or JSON lines."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if json_lines:
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(name)s [%(request_id)s]: %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def request_id_of(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = bytes(value).decode("latin-1")
            if _SANE_ID.match(given):
                return given
            break
    return f"{_PREFIX}{next(_NEXT):08x}"


class Observe:
    """ASGI middleware: the request id, the request's latency by route template, the polls
    in flight, and an access log line at INFO."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope)
        token = REQUEST_ID.set(rid)
        header = (b"x-request-id", rid.encode())
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        metrics = _metrics_of(scope)
        poll = scope["path"] == POLL_PATH
        if poll and metrics is not None:
            metrics.polls_held.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, answer)
        finally:
            elapsed = time.perf_counter() - started
            if metrics is not None:
                _observe(metrics, scope, status, elapsed, poll=poll)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed * 1e3
                )
            REQUEST_ID.reset(token)


def _metrics_of(scope: Scope) -> FarmMetrics | None:
    app = scope.get("app")
    farm = getattr(getattr(app, "state", None), "farm", None)
    metrics = getattr(farm, "metrics", None)
    return metrics if isinstance(metrics, FarmMetrics) else None


def _observe(
    metrics: FarmMetrics, scope: Scope, status: int, elapsed: float, *, poll: bool
) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None) or "unmatched"
    metrics.requests.labels(template, scope["method"], str(status)).observe(elapsed)
    if poll:
        metrics.polls.observe(elapsed)
        metrics.polls_held.dec()
