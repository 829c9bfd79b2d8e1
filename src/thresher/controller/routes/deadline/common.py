"""What the Deadline Cloud routes share: AWS-style errors, the SigV4 caller, ids, times,
pages and run statuses."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from thresher.controller import policy
from thresher.controller.auth import Caller
from thresher.controller.farm import Farm
from thresher.controller.routes.deps import get_farm
from thresher.controller.sigv4 import SignatureError, SignedRequest, parse_authorization
from thresher.core.errors import Forbidden, InvalidInput, NotFound, ThresherDomainError

API = "/deadline/2023-10-12"
#: The ids ListFarms, ListQueues and ListFleets name; any farm or queue id asked for is this
#: Thresher farm and its one queue, and the farm's workers are its one fleet.
FARM_ID = "farm-" + "0" * 31 + "1"
QUEUE_ID = "queue-" + "0" * 31 + "1"
FLEET_ID = "fleet-" + "0" * 31 + "1"
MAX_RESULTS = 100
_MAX_ID = 2**63 - 1  # ids are 64-bit columns: a larger one names nothing
_MAX_INDEX = 2**31 - 1


class AwsErrorOut(BaseModel):
    """The body of an AWS-style error; its code is in the `x-amzn-ErrorType` header."""

    message: str


#: Errors here are AWS-style, not Thresher's `ErrorOut`.
AWS_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": AwsErrorOut, "description": "AWS-style error (x-amzn-ErrorType)"}
    for status in (400, 401, 403, 404, 409, 413, 422, 501, 503)
}


class DeadlineError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JSONResponse:
        body = {"message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status, headers={"x-amzn-ErrorType": self.code})


def validation(message: str, field: str, **extra: Any) -> DeadlineError:
    return DeadlineError(
        400,
        "ValidationException",
        message,
        reason="FIELD_VALIDATION_FAILED",
        fieldList=[{"name": field, "message": message}],
        **extra,
    )


def not_found(kind: str, resource: str, message: str | None = None) -> DeadlineError:
    return DeadlineError(
        404,
        "ResourceNotFoundException",
        message or f"{kind} {resource} does not exist",
        resourceId=resource,
        resourceType=kind,
    )


def translated(exc: ThresherDomainError) -> NoReturn:
    """A Thresher refusal, said the AWS way."""
    if isinstance(exc, NotFound):
        raise DeadlineError(404, "ResourceNotFoundException", exc.message) from None
    if isinstance(exc, Forbidden):
        raise DeadlineError(403, "AccessDeniedException", exc.message) from None
    if isinstance(exc, InvalidInput):
        raise validation(exc.message, exc.field or "body") from None
    raise DeadlineError(409, "ConflictException", exc.message, reason="CONFLICT_EXCEPTION")


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise DeadlineError(
            400, "ValidationException", "the body is not JSON", reason="CANNOT_PARSE"
        ) from None
    if not isinstance(body, dict):
        raise validation("the body must be an object", "body")
    return body


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


def compact(out: dict[str, Any]) -> dict[str, Any]:
    """`out` without its None values (AWS leaves absent fields out)."""
    return {k: v for k, v in out.items() if v is not None}


# -- authentication --------------------------------------------------------------------------


async def signed_request(request: Request) -> SignedRequest:
    """What SigV4 signs of `request`: its method, path and query as sent, headers, body."""
    return SignedRequest(
        method=request.method,
        raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
        raw_query=request.scope.get("query_string", b"").decode("latin-1"),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=await request.body(),
    )


async def signed_caller(request: Request, farm: Annotated[Farm, Depends(get_farm)]) -> Caller:
    """The caller whose access key signed the request (SigV4), or an AWS-style 403."""
    try:
        auth = parse_authorization(request.headers.get("authorization"))
        signed = await signed_request(request)
        caller: Caller = await farm.call(farm.access.signed_caller, signed, auth)
    except SignatureError as exc:
        raise DeadlineError(403, exc.code, exc.message) from None
    request.state.caller = caller  # for the audit trail
    route = request.scope.get("route")
    try:
        policy.check(caller, request.method, getattr(route, "path", request.url.path))
    except Forbidden as exc:
        raise DeadlineError(403, "AccessDeniedException", exc.message) from None
    return caller


SignedCaller = Annotated[Caller, Depends(signed_caller)]


# -- ids ---------------------------------------------------------------------------------------


def job_id_out(job_id: int) -> str:
    return f"job-{job_id:032x}"


def _bounded(value: int, kind: str, text: str, limit: int = _MAX_ID) -> int:
    if value > limit:
        raise not_found(kind, text)
    return value


def job_id_in(text: str) -> int:
    if re.fullmatch(r"job-[0-9a-f]{32}", text):
        return _bounded(int(text[4:], 16), "job", text)
    raise not_found("job", text)


def step_id_out(job_id: int, block: int) -> str:
    return f"step-{job_id:024x}{block:08x}"


def step_id_in(job_id: int, text: str) -> int:
    """The block index a step id names within job `job_id`."""
    if re.fullmatch(r"step-[0-9a-f]{32}", text) and int(text[5:29], 16) == job_id:
        return _bounded(int(text[29:], 16), "step", text, _MAX_INDEX)
    raise not_found("step", text)


def task_id_out(job_id: int, block: int, index: int) -> str:
    return f"task-{job_id:024x}{block:08x}-{index}"


def task_id_in(job_id: int, block: int, text: str) -> int:
    match = re.fullmatch(r"task-([0-9a-f]{24})([0-9a-f]{8})-(0|[1-9][0-9]{0,9})", text)
    if match and (int(match[1], 16), int(match[2], 16)) == (job_id, block):
        return _bounded(int(match[3]), "task", text, _MAX_INDEX)
    raise not_found("task", text)


def session_id_out(attempt_id: int) -> str:
    return f"session-{attempt_id:032x}"


def session_id_in(text: str) -> int:
    if re.fullmatch(r"session-[0-9a-f]{32}", text):
        return _bounded(int(text[8:], 16), "session", text)
    raise not_found("session", text)


def action_id_out(attempt_id: int) -> str:
    return f"sessionaction-{attempt_id:032x}-0"


def action_id_in(text: str) -> int:
    if re.fullmatch(r"sessionaction-[0-9a-f]{32}-0", text):
        return _bounded(int(text[14:46], 16), "session-action", text)
    raise not_found("session-action", text)


def worker_id_out(worker_id: int) -> str:
    return f"worker-{worker_id:032x}"


# -- pages -------------------------------------------------------------------------------------


def page_of(next_token: str | None, max_results: int | None) -> tuple[int, int]:
    """(offset, limit) from a list call's `nextToken` (an offset Thresher gave) and
    `maxResults` (at most 100)."""
    offset = 0
    if next_token:
        if not next_token.isdigit() or len(next_token) > 12:
            raise validation(f"nextToken {next_token!r} was not given by this farm", "nextToken")
        offset = int(next_token)
    limit = MAX_RESULTS if max_results is None else max_results
    if not 1 <= limit <= MAX_RESULTS:
        raise validation(f"maxResults must be 1 to {MAX_RESULTS}", "maxResults")
    return offset, limit


def next_token(offset: int, limit: int, got: int, total: int | None = None) -> str | None:
    end = offset + got
    more = got >= limit if total is None else end < total
    return str(end) if more else None
