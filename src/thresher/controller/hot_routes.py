"""The workers' two hottest calls (POST /api/v1/agent/poll and /report), and people's submit
(POST /api/v1/jobs), served straight from ASGI, ahead of the FastAPI app.

Every worker polls every few seconds; on a farm of thousands the HTTP layers around a poll
(four middlewares, Starlette's error and exception middlewares, the router, the route's
request wrapper) cost the controller about as much CPU as the poll's own work. A submit is on
the path from a pipeline's call to its first task's start, where those layers took 1.4 ms of
the loop (`bench/latency.py`, SQLite). `HotRoutes` answers these calls itself, doing what
those layers do for them, in the same order and with the same answers:

- the request id and the request metrics, as `observe.Observe`;
- the submit's audit row, as `audit.AuditTrail` (written with the change, its status and the
  job's id noted as the answer leaves; a refusal's row written before it leaves);
- the body bound, as `body_limit.BodyLimit` (a declared length over the workers' limit, or
  the people's for a submit: 413 without reading; a chunked body read up to it);
- the caller, as `routes.deps` finds it (401 without a bearer token or with an unknown one,
  403 for a role the policy refuses), kept unconfirmed until the use case's hand-off confirms
  it; an answer leaving before that confirms it first, as `confirm.ConfirmCaller`;
- the body validated straight from its bytes (a bad one: 422 {error, message, field}), its
  text checks skipped where its bytes show they cannot refuse it (`schemas.base.JsonBody`);
- every error answered by the app's own exception handlers (`errors.install`): the same
  status, body and headers (a 503's Retry-After) as on every other route; an unhandled one is
  answered 500 and raised to the server, as Starlette's `ServerErrorMiddleware` does.

The routes stay declared in FastAPI (`routes/agent.py`, `LeanRoute`; `routes/jobs.py`): they
make the OpenAPI document, and serve these calls when `ThresherApp.hot_routes` is off (the
tests compare both). The audit trail never records the workers' two (`audit.UNAUDITED`).
FastAPI's native OpenTelemetry instrumentation is not run for these calls (it looks for a
configured provider on every request, about a sixth of the event loop's CPU on a farm of idle
workers; Thresher sets none)."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message, Receive, Scope, Send

from thresher.controller import audit, confirm, policy
from thresher.controller.body_limit import read_at_most, too_large
from thresher.controller.convert import job_out
from thresher.controller.errors import Unauthorized
from thresher.controller.farm import UNCONFIRMED, Farm, Unconfirmed
from thresher.controller.observe import POLL_PATH, REQUEST_ID, access_log, request_id_of
from thresher.controller.routes.deps import NOT_KNOWN, bearer_of, json_answer
from thresher.controller.routes.jobs import SMALL_JOB_BLOCKS
from thresher.controller.routes.lean import body_errors
from thresher.controller.unit import AUDIT_NOTE, AuditNote
from thresher.schemas import api
from thresher.schemas.base import JsonBody

if TYPE_CHECKING:
    from prometheus_client.metrics import Histogram

    from thresher.controller.auth import Caller

REPORT_PATH = "/api/v1/agent/report"
JOBS_PATH = "/api/v1/jobs"
#: The paths served here (POST only), and their bodies' models.
PATHS: dict[str, type[BaseModel]] = {
    POLL_PATH: api.PollIn,
    REPORT_PATH: api.ReportIn,
    JOBS_PATH: api.JobIn,
}
#: The paths of people's calls among them: audited, and bounded by the people's limit.
PEOPLES = frozenset({JOBS_PATH})
#: Who may call them (the policy's entries, looked up once).
_ALLOWED = {path: policy.ROUTES.get(f"POST {path}", frozenset()) for path in PATHS}
#: Their bodies' validators (`JsonBody`: a worker's body rarely needs its text checks).
_BODIES: dict[str, JsonBody[BaseModel]] = {path: JsonBody(model) for path, model in PATHS.items()}
_JSON = (b"content-type", b"application/json")
_MISSING = "Field required"


class HotRoutes:
    """Serves the workers' polls and reports and people's submits of `app` (see the module's
    docstring)."""

    def __init__(self, app: FastAPI, max_bytes: int, max_people_bytes: int) -> None:
        """`max_bytes`: the workers' bodies' bound; `max_people_bytes`: a submit's."""
        self.app = app
        self.max_bytes = max_bytes
        self.max_people_bytes = max_people_bytes
        # The request histograms' children by (path, status), for the metrics they belong to.
        self._children: dict[tuple[str, int], Histogram] = {}
        self._children_of: object = None

    def serves(self, scope: Scope) -> bool:
        return (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in PATHS
            and getattr(self.app.state, "farm", None) is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        farm: Farm = self.app.state.farm
        scope["app"] = self.app
        path: str = scope["path"]
        rid = request_id_of(scope)
        rid_token = REQUEST_ID.set(rid)
        metrics = farm.metrics
        poll = path == POLL_PATH
        if poll:
            metrics.polls_held.inc()
        started = time.perf_counter()
        answer = _Answer(farm, send, (b"x-request-id", rid.encode()))
        note = note_token = None
        if path in PEOPLES:  # audited as `audit.AuditTrail` does
            scope["route"] = _Route(path)  # the audit trail names a call by its route
            note = audit.note_for(scope)
            answer.audit = (scope, note)
            note_token = AUDIT_NOTE.set(note)
        try:
            await self._serve(farm, scope, receive, answer, path)
        except Exception as exc:
            await self._failed(scope, receive, send, answer, exc)
        finally:
            if note is not None and note_token is not None:
                note.serving = False
                AUDIT_NOTE.reset(note_token)
            elapsed = time.perf_counter() - started
            self._histogram(metrics, path, answer.status).observe(elapsed)
            if poll:
                metrics.polls.observe(elapsed)
                metrics.polls_held.dec()
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("POST %s %d %.1f ms", path, answer.status, elapsed * 1e3)
            REQUEST_ID.reset(rid_token)

    async def _serve(
        self, farm: Farm, scope: Scope, receive: Receive, answer: _Answer, path: str
    ) -> None:
        authorization = b""
        length: int | None = None
        chunked = True
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-length":
                chunked = False
                try:
                    length = int(value)
                except ValueError:
                    chunked = True  # as BodyLimit: an unreadable length is read up to the bound
        body: bytes | None = None
        limit = self.max_people_bytes if path in PEOPLES else self.max_bytes
        if chunked:
            body = await read_at_most(receive, limit)
            if body is None:
                await too_large(answer.send_raw, limit)
                return
        elif length is not None and length > limit:
            await too_large(answer.send_raw, limit)
            return
        caller = await _authorize(farm, scope, authorization.decode("latin-1"), path)
        if body is None:
            body = await _read_body(receive)
        if not body and path in PEOPLES:  # as FastAPI answers a required body left out
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": _MISSING}])
        try:
            parsed = _BODIES[path].parse(body)
        except ValidationError as exc:
            raise RequestValidationError(body_errors(exc)) from None
        await _handle(farm, path, caller, parsed, receive, answer)

    async def _failed(
        self, scope: Scope, receive: Receive, send: Send, answer: _Answer, exc: Exception
    ) -> None:
        """An error answered as the app's handlers answer it; an unhandled one as Starlette's
        last resort (500, then raised to the server)."""
        handler = _handler_of(self.app, exc)
        if handler is not None and not answer.started:
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await answer.respond(response.status_code, list(response.raw_headers), response.body)
            exc.__traceback__ = None
            return
        last = self.app.exception_handlers.get(Exception) or self.app.exception_handlers.get(500)
        if last is not None and not answer.started:
            response = last(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await send(  # not through the answer: outside the request id and the confirmation
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": list(response.raw_headers),
                }
            )
            await send({"type": "http.response.body", "body": response.body})
        raise exc

    def _histogram(self, metrics: Any, path: str, status: int) -> Histogram:
        if self._children_of is not metrics:
            self._children, self._children_of = {}, metrics
        child = self._children.get((path, status))
        if child is None:
            child = metrics.requests.labels(path, "POST", str(status))
            self._children[(path, status)] = child
        return child


async def _handle(
    farm: Farm, path: str, caller: Caller, parsed: BaseModel, receive: Receive, answer: _Answer
) -> None:
    """The call's use case, and its answer."""
    out: api.PollOut
    if path == POLL_PATH:
        assert isinstance(parsed, api.PollIn)
        out = await farm.agents.poll(caller, parsed, disconnected=_disconnected(receive))
    elif path == REPORT_PATH:
        assert isinstance(parsed, api.ReportIn)
        out = await farm.call(farm.agents.report, caller, parsed)
    else:  # as routes/jobs.py's submit
        assert isinstance(parsed, api.JobIn)
        job = await farm.call(farm.jobs.submit, caller, parsed)
        small = len(job.blocks) <= SMALL_JOB_BLOCKS
        made = await json_answer(lambda: job_out(job), status_code=201, small=small)
        await answer.json(201, bytes(made.body))
        return
    await answer.json(200, out.model_dump_json().encode())


class _Route:
    """The route of a hot call as the audit trail reads it (its path template)."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


class _Answer:
    """The response of one request: the request id added, the caller confirmed first when no
    use case did (`confirm.ConfirmCaller`), the status kept for the metrics; for an audited
    call, its audit row noted before the answer leaves (`audit.AuditTrail`)."""

    __slots__ = ("audit", "farm", "raw", "rid", "started", "status")

    def __init__(self, farm: Farm, send: Send, rid: tuple[bytes, bytes]) -> None:
        self.farm, self.raw, self.rid = farm, send, rid
        self.started = False
        self.status = 500
        self.audit: tuple[Scope, AuditNote] | None = None

    async def send_raw(self, message: Message, body: bytes = b"") -> None:
        """A message answered before the caller is known (413): only the request id added.
        `body`: the answer's body, for the audit row, with its start."""
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
            message["headers"] = [*message.get("headers", ()), self.rid]
            if self.audit is not None:
                scope, note = self.audit
                note.serving = False
                await audit.record_answer(scope, note, self.status, body)
        await self.raw(message)

    async def json(self, status: int, body: bytes) -> None:
        await self.respond(status, [(b"content-length", b"%d" % len(body)), _JSON], body)

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        pending = UNCONFIRMED.get()
        if pending is not None:
            UNCONFIRMED.set(None)
            refused = await confirm.refusal(self.farm, pending)
            if refused is not None:
                for message in refused:
                    await self.send_raw(message)
                return
        start = {"type": "http.response.start", "status": status, "headers": headers}
        await self.send_raw(start, body)
        await self.raw({"type": "http.response.body", "body": body})


async def _authorize(farm: Farm, scope: Scope, header: str, path: str) -> Caller:
    """The caller of the request's bearer token, as `routes.deps.authorize` finds it."""
    token = bearer_of(header)
    caller = farm.access.known(token)
    UNCONFIRMED.set(None if caller is None else Unconfirmed(caller, "POST", path))
    if caller is None:
        caller = await farm.call(farm.access.caller, token)
    if caller is None:
        raise Unauthorized(NOT_KNOWN)
    scope.setdefault("state", {})["caller"] = caller
    if caller.role not in _ALLOWED[path]:  # the policy's refusal, its message (403)
        policy.check(caller, "POST", path)
    return caller


async def _read_body(receive: Receive) -> bytes:
    """The whole body (its declared length bounds it); ClientDisconnect as Starlette's."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def _disconnected(receive: Receive) -> Callable[[], Awaitable[bool]]:
    """Whether the client went away, without waiting (as Starlette's `is_disconnected`)."""
    gone = False

    async def disconnected() -> bool:
        nonlocal gone
        if not gone:
            message: Message = {}
            with anyio.CancelScope() as scope:
                scope.cancel()
                message = await receive()
            gone = message.get("type") == "http.disconnect"
        return gone

    return disconnected


def _handler_of(app: FastAPI, exc: Exception) -> Any:
    """The app's handler of `exc` as Starlette's exception middleware finds it (not the 500
    one, which is the last resort's)."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
