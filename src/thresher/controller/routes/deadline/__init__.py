"""AWS Deadline Cloud compatible routes, so the unmodified `deadline` CLI (0.60) submits to
Thresher and follows, changes and reads its jobs.

Point the client at `<controller>/deadline` (`AWS_ENDPOINT_URL_DEADLINE`, with
`AWS_DISABLE_HOST_PREFIX_INJECTION=true`), and `deadline job logs` at `<controller>/deadline-logs`
(`AWS_ENDPOINT_URL_LOGS`), and give it a Thresher access key as its AWS key pair
(`POST /api/v1/admin/access-keys`, or `thresher access-key create NAME`). Every request must be
signed (SigV4) with that key; the key acts as the Thresher token it was issued with.

What exists (rest-json, API version 2023-10-12), by module: `farm` (ListFarms, GetFarm,
ListQueues, GetQueue, ListFleets, GetFleet, ListQueueFleetAssociations, and the queue
environments: List, Get, Create, Delete), `jobs` (CreateJob, GetJob, ListJobs, SearchJobs,
UpdateJob), `steps` (ListSteps, GetStep, ListTasks, GetTask, UpdateTask), `sessions`
(ListSessions, GetSession, ListSessionActions, GetSessionAction, and CloudWatch Logs'
GetLogEvents), `statistics` (Start and GetSessionsStatisticsAggregation), `storage`
(ListStorageProfiles, GetStorageProfile and their ForQueue forms), `s3` and `s3_uploads`
(the job attachments endpoint under /deadline-s3, used with AssumeQueueRoleForUser's queue
credentials, in `farm`). Any other operation
of the service model is refused (a 501 `UnknownOperationException`) naming it. See
docs/deadline.md.

Errors are AWS-style: the `x-amzn-ErrorType` header and a JSON body with `message` (a refused
template is a ValidationException listing every issue, with its location, in `fieldList`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from thresher.controller.routes.deadline import (
    farm,
    jobs,
    s3,
    s3_uploads,
    sessions,
    statistics,
    steps,
    storage,
)
from thresher.controller.routes.deadline.common import (
    DeadlineError,
    SignedCaller,
    job_id_in,
    job_id_out,
)
from thresher.controller.routes.deadline.jobs import job_out, template_parameters
from thresher.controller.routes.deadline.operations import operation_of

__all__ = [
    "DeadlineError",
    "admin_router",
    "install",
    "job_id_in",
    "job_id_out",
    "job_out",
    "router",
    "template_parameters",
]

router = APIRouter()
for module in (farm, jobs, steps, sessions, statistics, storage):
    router.include_router(module.router)
router.include_router(sessions.logs_router)
router.include_router(s3_uploads.router)  # before s3's catch-all
router.include_router(s3.router)
admin_router = farm.admin_router

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@router.api_route("/deadline/{path:path}", methods=_METHODS, include_in_schema=False)
async def unimplemented(path: str, request: Request, caller: SignedCaller) -> Any:
    """Any other request under /deadline: refused, naming the operation it asks for."""
    below = "/" + path
    name = operation_of(request.method, below)
    if name is None:
        raise DeadlineError(
            404,
            "UnknownOperationException",
            f"no Deadline Cloud operation is {request.method} {below}",
        )
    raise DeadlineError(
        501,
        "UnknownOperationException",
        f"Thresher does not implement the Deadline Cloud operation {name} "
        f"({request.method} /deadline{below}); see docs/deadline.md",
        operation=name,
    )


def install(app: FastAPI) -> None:
    """Answer this router's errors the AWS way."""

    async def deadline_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DeadlineError)
        return exc.response()

    app.add_exception_handler(DeadlineError, deadline_error)
    s3.install(app)
