"""The audit trail: one row per state-changing call (POST, PUT, PATCH, DELETE), written to
the database (so every controller on one PostgreSQL adds to the same trail): who (the token's
name and role, `-` when no token was accepted), what (the route), to which object (the path
with its values, and the id a creation answered with) and how it ended (the HTTP status,
refusals included).

A call that changes state writes its row in the transaction of its first change
(`UnitOfWork.change`, through the `AUDIT_NOTE` set here), so a change is never committed
without its row; the status (0 until then) and the id a creation answered with are noted as
the answer leaves (`Access.answered`) and written on the farm thread `SETTLE_AFTER_S` later,
with every answer given meanwhile, in one transaction; a read of the trail writes those noted
first (`Access.audit`), so a read made after the answer arrived sees them, and the controller's
shutdown writes the rest. The answer never waits for the write, and the calls that follow it
(the job's wait, its worker's report) do not queue behind it. A controller dying between the
two leaves the row with status 0: the change was made, its answer may not have reached the
caller. A call that changed nothing
(a refusal, an error) gets its row before its answer leaves. The workers' polls and reports
are not recorded (their work is: attempts and their outcomes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from thresher.controller.unit import AUDIT_NOTE, AuditNote

log = logging.getLogger("thresher.controller.audit")

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Worker traffic, many times a second on a busy farm: not audited.
UNAUDITED = frozenset({"/api/v1/agent/poll", "/api/v1/agent/report"})
#: Path values never written to the trail (a token in renderacre's old URL).
SECRET_PARAMS = frozenset({"token"})
_MAX_BUFFER = 64 * 1024
#: How long after an answer its row's status waits to be written (with every answer given
#: meanwhile): the calls that follow a change (a job's wait, its worker's report) run first.
SETTLE_AFTER_S = 0.05


def object_of(scope: Scope, body: bytes) -> tuple[str, str]:
    """(action, object) of a finished request: the route template, the path with its values
    (secrets masked) and the id the answer named."""
    route = scope.get("route")
    template = getattr(route, "path", None) or "(no route)"
    params = {
        k: ("***" if k in SECRET_PARAMS else str(v))
        for k, v in (scope.get("path_params") or {}).items()
    }
    try:
        obj = template.format(**params) if params else template
    except (KeyError, IndexError, ValueError):
        obj = template
    created = _answered_id(body)
    if created is not None:
        obj = f"{obj} -> {created}"
    return f"{scope['method']} {template}", obj


def _who(scope: Scope) -> tuple[str, str]:
    """The caller's (name, role) once the call's token was accepted; ("-", "-") before."""
    caller = (scope.get("state") or {}).get("caller")
    return (caller.name, caller.role) if caller is not None else ("-", "-")


def _answered_id(body: bytes) -> Any:
    if not body or len(body) > _MAX_BUFFER or not body.startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    for key in ("id", "job_id", "jobId", "worker_id", "accessKeyId"):
        if isinstance(data, dict) and isinstance(data.get(key), int | str):
            return data[key]
    return None


class AuditTrail:
    """ASGI middleware writing the audit row of each state-changing call before its answer
    goes out (the answer is held until then)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGING or scope["path"] in UNAUDITED:
            await self.app(scope, receive, send)
            return
        held: list[Message] = []
        size = 0
        recorded = False
        note = note_for(scope)
        note_token = AUDIT_NOTE.set(note)

        async def record_then(messages: list[Message]) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                note.serving = False
                body = b"".join(m.get("body", b"") for m in messages[1:])
                await record_answer(scope, note, messages[0]["status"], body)
            for m in messages:
                await send(m)

        async def holding_send(message: Message) -> None:
            nonlocal size
            if recorded:
                await send(message)
                return
            held.append(message)
            size += len(message.get("body", b""))
            if message["type"] == "http.response.body" and (
                not message.get("more_body") or size > _MAX_BUFFER
            ):
                await record_then(held[:])
                held.clear()

        try:
            await self.app(scope, receive, holding_send)
        finally:
            note.serving = False
            AUDIT_NOTE.reset(note_token)


def _settle_later(farm: Any) -> None:
    """On the loop, `SETTLE_AFTER_S` after an answer: the farm thread writes the answers."""
    with contextlib.suppress(RuntimeError):  # the farm thread closed: it settled them then
        farm.thread.post(farm.settle_audit)


def note_for(scope: Scope) -> AuditNote:
    """The audit note of a state-changing call being served (set it as `AUDIT_NOTE`)."""
    return AuditNote(describe=lambda: _who(scope) + object_of(scope, b""))


async def record_answer(scope: Scope, note: AuditNote, status: int, body: bytes) -> None:
    """As the answer of an audited call leaves: its status (and what it created) noted for
    the row its change wrote, or its own row written now when it changed nothing."""
    app = scope.get("app")
    farm = getattr(getattr(app, "state", None), "farm", None)
    if farm is None:
        return
    caller = (scope.get("state") or {}).get("caller")
    action, obj = object_of(scope, body if status == 201 else b"")  # what it created
    try:
        # straight to the farm thread: the request's caller is not confirmed again here
        if note.row_id is not None:
            # The row was committed with the change: the answer goes now, its status is
            # written a moment later with the others given meanwhile (`_settle_later`), off
            # the path of the calls that follow it (the job's wait, its worker's report).
            if farm.access.answered(note.row_id, obj=obj, status=status):
                loop = asyncio.get_running_loop()
                loop.call_later(SETTLE_AFTER_S, _settle_later, farm)
        else:
            await farm.thread.run(farm.access.record, caller, action=action, obj=obj, status=status)
    except Exception:  # the answer still goes out; the failure is logged, not the body
        log.exception("audit row for %s %s not written", action, obj)
