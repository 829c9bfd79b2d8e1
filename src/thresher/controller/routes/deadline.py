"""AWS Deadline Cloud compatible routes, so an unmodified `deadline bundle submit` submits to
Thresher and `deadline job get` follows the job.

Point the client at `<controller>/deadline` (`AWS_ENDPOINT_URL_DEADLINE`, with
`AWS_DISABLE_HOST_PREFIX_INJECTION=true`) and give it a Thresher access key as its AWS key pair
(`POST /api/v1/admin/access-keys`, or `thresher access-key create NAME`). Every request must be
signed (SigV4) with that key; the key acts as the Thresher token it was issued with.

What exists (rest-json, API version 2023-10-12): GetQueue, ListQueueEnvironments (none),
GetQueueEnvironment (404), CreateJob and GetJob. A farm and a queue id may be anything: every
queue is the farm's one queue. CreateJob takes the template with its typed parameters
(`{"Frames": {"string": "1-10"}}`), `priority`, `maxRetriesPerTask`, `nameOverride` and
`targetTaskRunStatus` (SUSPENDED submits paused); job attachments and storage profiles are not
used (files stay where they are). Errors are AWS-style: the `x-amzn-ErrorType` header and a JSON
body with `message` (a refused template is a ValidationException listing every issue, with its
location, in `fieldList`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from thresher.controller import policy
from thresher.controller.auth import Caller
from thresher.controller.compile.openjd import KIND as OPENJD_KIND
from thresher.controller.farm import Farm
from thresher.controller.routes.deps import CallerDep, FarmDep, get_farm
from thresher.controller.routes.templates import template_error_body
from thresher.controller.sigv4 import SignatureError, SignedRequest, parse_authorization
from thresher.core.errors import Forbidden, InvalidInput, NotFound, ThresherDomainError
from thresher.core.model import JobRecord
from thresher.schemas import openjd as schema
from thresher.schemas.base import Name, Strict

API = "/deadline/2023-10-12"


class AwsErrorOut(BaseModel):
    """The body of an AWS-style error; its code is in the `x-amzn-ErrorType` header."""

    message: str


#: Errors here are AWS-style, not Thresher's `ErrorOut`.
AWS_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": AwsErrorOut, "description": "AWS-style error (x-amzn-ErrorType)"}
    for status in (400, 401, 403, 404, 409, 413, 422, 503)
}
router = APIRouter(
    prefix=API + "/farms/{farmId}/queues/{queueId}", tags=["deadline"], responses=AWS_ERRORS
)
admin_router = APIRouter(prefix="/api/v1/admin", tags=["workers"])


class DeadlineError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JSONResponse:
        body = {"message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status, headers={"x-amzn-ErrorType": self.code})


def install(app: FastAPI) -> None:
    """Answer this router's errors the AWS way."""

    async def deadline_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DeadlineError)
        return exc.response()

    app.add_exception_handler(DeadlineError, deadline_error)


# -- access keys -----------------------------------------------------------------------------


class AccessKeyIn(Strict):
    name: Name
    role: str = Field("artist", pattern="^(user|admin|wrangler|artist|viewer)$")


class AccessKeyOut(BaseModel):
    name: str
    role: str
    access_key_id: str
    secret_access_key: str = Field(description="shown once")


@admin_router.post("/access-keys", status_code=201, response_model=AccessKeyOut)
async def create_access_key(body: AccessKeyIn, farm: FarmDep, caller: CallerDep) -> AccessKeyOut:
    """Admins: issue an AWS-style key pair acting as a new token of `role`."""
    key_id, secret = await farm.call(farm.access.create_access_key, caller, body.name, body.role)
    return AccessKeyOut(
        name=body.name, role=body.role, access_key_id=key_id, secret_access_key=secret
    )


# -- authentication --------------------------------------------------------------------------


async def signed_caller(request: Request, farm: Annotated[Farm, Depends(get_farm)]) -> Caller:
    """The caller whose access key signed the request (SigV4), or an AWS-style 403."""
    try:
        auth = parse_authorization(request.headers.get("authorization"))
        signed = SignedRequest(
            method=request.method,
            raw_path=request.scope.get("raw_path", b"").decode("latin-1") or request.url.path,
            raw_query=request.scope.get("query_string", b"").decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        caller = await farm.call(farm.access.signed_caller, signed, auth)
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


# -- queues ------------------------------------------------------------------------------------


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


@router.get("")
async def get_queue(farmId: str, queueId: str, farm: FarmDep, caller: SignedCaller) -> Any:
    return {
        "farmId": farmId,
        "queueId": queueId,
        "displayName": "Thresher",
        "description": "every queue id names this Thresher farm's one queue",
        "status": "SCHEDULING",
        "defaultBudgetAction": "NONE",
        "createdAt": _iso(0),
        "createdBy": "thresher",
    }


@router.get("/environments")
async def list_queue_environments(farmId: str, queueId: str, caller: SignedCaller) -> Any:
    return {"environments": []}


@router.get("/environments/{environmentId}")
async def get_queue_environment(
    farmId: str, queueId: str, environmentId: str, caller: SignedCaller
) -> Any:
    raise DeadlineError(
        404,
        "ResourceNotFoundException",
        f"queue environment {environmentId} does not exist",
        resourceId=environmentId,
        resourceType="queue-environment",
    )


# -- jobs --------------------------------------------------------------------------------------


def job_id_out(job_id: int) -> str:
    return f"job-{job_id:032x}"


def job_id_in(text: str) -> int:
    try:
        if text.startswith("job-"):
            return int(text[4:], 16)
    except ValueError:
        pass
    raise DeadlineError(
        404,
        "ResourceNotFoundException",
        f"job {text} does not exist",
        resourceId=text,
        resourceType="job",
    )


_PARAMETER_KINDS = ("string", "path", "int", "float", "bool", "rangeExpr")


def template_parameters(parameters: Any) -> dict[str, Any]:
    """CreateJob's typed values (`{"Frames": {"string": "1-10"}}`) as plain values."""
    if not isinstance(parameters, dict):
        raise _validation("parameters must be an object", "parameters")
    plain: dict[str, Any] = {}
    for name, typed in parameters.items():
        if not isinstance(typed, dict) or len(typed) != 1:
            raise _validation(f"parameter {name} must have exactly one typed value", name)
        kind, value = next(iter(typed.items()))
        if kind not in _PARAMETER_KINDS and not kind.endswith("List"):
            raise _validation(f"parameter {name} has an unknown type {kind!r}", name)
        plain[name] = value
    return plain


def _validation(message: str, field: str, **extra: Any) -> DeadlineError:
    return DeadlineError(
        400,
        "ValidationException",
        message,
        reason="FIELD_VALIDATION_FAILED",
        fieldList=[{"name": field, "message": message}],
        **extra,
    )


@router.post("/jobs", status_code=201)
async def create_job(
    farmId: str, queueId: str, request: Request, farm: FarmDep, caller: SignedCaller
) -> Any:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise DeadlineError(
            400, "ValidationException", "the body is not JSON", reason="CANNOT_PARSE"
        ) from None
    if not isinstance(body, dict) or not isinstance(body.get("template"), str):
        raise _validation("a job needs its template (text)", "template")
    priority = body.get("priority", 50)
    retries = body.get("maxRetriesPerTask", 3)
    try:
        submission = schema.TemplateJobIn(
            template=body["template"],
            parameters=template_parameters(body.get("parameters") or {}),
            name=body.get("nameOverride"),
            priority=priority,
            retries=retries,
            paused=body.get("targetTaskRunStatus") == "SUSPENDED",
        )
    except ValueError as exc:  # pydantic's refusal: a priority or a retry count out of range
        raise _validation(f"the job is malformed: {exc}", "body") from None
    try:
        job_id = (await farm.call(farm.jobs.submit_template, caller, submission)).id
    except InvalidInput as exc:
        issues = template_error_body(exc)
        if issues is None:
            raise _validation(exc.message, exc.field or "body") from None
        raise DeadlineError(
            400,
            "ValidationException",
            exc.message,
            reason="FIELD_VALIDATION_FAILED",
            fieldList=[
                {"name": issue.location or "template", "message": issue.message}
                for issue in issues.errors
            ],
        ) from None
    except ThresherDomainError as exc:
        raise DeadlineError(403, "AccessDeniedException", exc.message) from None
    return JSONResponse({"jobId": job_id_out(job_id)}, status_code=201)


_RUN_STATUS = {
    "waiting": "PENDING",
    "queued": "READY",
    "running": "RUNNING",
    "paused": "SUSPENDED",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "canceled": "CANCELED",
}


def job_out(job: JobRecord) -> dict[str, Any]:
    counts = job.counts
    out = {
        "jobId": job_id_out(job.id),
        "name": job.spec.name,
        "lifecycleStatus": "CREATE_COMPLETE",
        "lifecycleStatusMessage": "Thresher created the job",
        "priority": job.spec.priority,
        "createdAt": _iso(job.created_at),
        "createdBy": job.spec.owner,
        "endedAt": _iso(job.finished_at),
        "taskRunStatus": _RUN_STATUS.get(job.status.value, "READY"),
        "taskRunStatusCounts": {
            "PENDING": 0,
            "READY": counts.waiting + counts.queued,
            "RUNNING": counts.running,
            "SUCCEEDED": counts.succeeded + counts.skipped,
            "FAILED": counts.failed,
            "CANCELED": counts.canceled,
        },
        "maxRetriesPerTask": max((b.spec.retries for b in job.blocks), default=0),
    }
    return {k: v for k, v in out.items() if v is not None}


@router.get("/jobs/{jobId}")
async def get_job(
    farmId: str, queueId: str, jobId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    try:
        job = await farm.call(farm.jobs.get, caller, job_id_in(jobId))
    except NotFound:
        raise DeadlineError(
            404,
            "ResourceNotFoundException",
            f"job {jobId} does not exist",
            resourceId=jobId,
            resourceType="job",
        ) from None
    if job.spec.kind != OPENJD_KIND:
        raise DeadlineError(
            404,
            "ResourceNotFoundException",
            f"job {jobId} is not an OpenJD job",
            resourceId=jobId,
            resourceType="job",
        )
    return job_out(job)
