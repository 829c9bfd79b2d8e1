"""Jobs: CreateJob, GetJob, ListJobs, SearchJobs and UpdateJob."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from thresher.controller.routes.deadline import search, storage
from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    DeadlineError,
    SignedCaller,
    compact,
    iso,
    job_id_in,
    job_id_out,
    json_body,
    not_found,
    page_of,
    translated,
    validation,
)
from thresher.controller.routes.deadline.outputs import output_dirs
from thresher.controller.routes.deps import FarmDep
from thresher.controller.routes.templates import template_error_body
from thresher.controller.submitters import JobChange
from thresher.core.errors import InvalidInput, NotFound, ThresherDomainError
from thresher.core.model import Counts, JobRecord
from thresher.core.states import JobStatus
from thresher.schemas import openjd as schema
from thresher.store.submitters import JobExtras

router = APIRouter(prefix=API + "/farms/{farmId}", tags=["deadline"], responses=AWS_ERRORS)
#: SearchJobs reads at most this many of the newest jobs.
SEARCH_SCAN = 10_000

_PARAMETER_KINDS = ("string", "path", "int", "float", "bool", "rangeExpr")
_RUN_STATUS = {
    JobStatus.WAITING: "PENDING",
    JobStatus.QUEUED: "READY",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.PAUSED: "SUSPENDED",
    JobStatus.SUCCEEDED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "CANCELED",
}
#: UpdateJob's targetTaskRunStatus as a Thresher run state.
_TARGET_STATE = {
    "CANCELED": "canceled",
    "SUSPENDED": "paused",
    "READY": "retry",
    "PENDING": "retry",
}


def template_parameters(parameters: Any) -> dict[str, Any]:
    """CreateJob's typed values (`{"Frames": {"string": "1-10"}}`) as plain values."""
    if not isinstance(parameters, dict):
        raise validation("parameters must be an object", "parameters")
    plain: dict[str, Any] = {}
    for name, typed in parameters.items():
        if not isinstance(typed, dict) or len(typed) != 1:
            raise validation(f"parameter {name} must have exactly one typed value", name)
        kind, value = next(iter(typed.items()))
        if kind not in _PARAMETER_KINDS and not kind.endswith("List"):
            raise validation(f"parameter {name} has an unknown type {kind!r}", name)
        plain[name] = value
    return plain


def run_status_counts(counts: Counts, status: JobStatus) -> dict[str, int]:
    """Task counts by Deadline run status: tasks not yet run are SUSPENDED in a paused job,
    PENDING in one that waits on others, READY otherwise."""
    unrun = counts.waiting + counts.queued
    return {
        "PENDING": unrun if status is JobStatus.WAITING else 0,
        "READY": unrun if status not in (JobStatus.WAITING, JobStatus.PAUSED) else 0,
        "SUSPENDED": unrun if status is JobStatus.PAUSED else 0,
        "RUNNING": counts.running,
        "SUCCEEDED": counts.succeeded + counts.skipped,
        "FAILED": counts.failed,
        "CANCELED": counts.canceled,
    }


def run_status(status: JobStatus, counts: Counts, cap: int | None) -> str:
    """A job canceled because its failed tasks reached its cap counts as FAILED."""
    if status is JobStatus.CANCELED and cap and counts.failed >= cap:
        return "FAILED"
    return _RUN_STATUS.get(status, "READY")


def job_out(job: JobRecord, *, started: float | None, extras: JobExtras) -> dict[str, Any]:
    retries = max((b.spec.retries for b in job.blocks), default=0)
    return compact(
        {
            "jobId": job_id_out(job.id),
            "name": job.spec.name,
            "lifecycleStatus": "CREATE_COMPLETE",
            "lifecycleStatusMessage": "Thresher created the job",
            "priority": job.spec.priority,
            "createdAt": iso(job.created_at),
            "createdBy": job.spec.owner,
            "updatedAt": iso(extras.updated_at),
            "updatedBy": extras.updated_by,
            "startedAt": iso(started),
            "endedAt": iso(job.finished_at),
            "taskRunStatus": run_status(job.status, job.counts, extras.max_failed_tasks),
            "taskRunStatusCounts": run_status_counts(job.counts, job.status),
            "taskFailureRetryCount": 0,
            "maxRetriesPerTask": retries,
            "maxFailedTasksCount": extras.max_failed_tasks,
            "maxWorkerCount": job.spec.max_running if job.spec.max_running else -1,
            "description": extras.description,
            "attachments": _attachments(job),
            "storageProfileId": storage_profile_of(job),
        }
    )


def storage_profile_of(job: JobRecord) -> str | None:
    """The storage profile the job was submitted with (CreateJob's, kept with the job)."""
    refs = job.spec.payload.get("asset_references")
    found = refs.get("storageProfileId") if isinstance(refs, dict) else None
    return found if isinstance(found, str) else None


def _attachments(job: JobRecord) -> dict[str, Any] | None:
    """The job's output directories as job attachment roots (what download-output reads)."""
    dirs = output_dirs(job)
    if not dirs:
        return None
    manifests = [
        {
            "rootPath": d,
            "rootPathFormat": "windows" if re.match(r"^([A-Za-z]:|\\\\)", d) else "posix",
            "outputRelativeDirectories": ["."],
        }
        for d in dirs
    ]
    return {"manifests": manifests, "fileSystem": "COPIED"}


async def jobs_out(farm: Any, jobs: list[JobRecord]) -> list[dict[str, Any]]:
    ids = [j.id for j in jobs]
    starts = await farm.call(farm.submitters.job_starts, ids)
    extras = await farm.call(farm.submitters.job_extras, ids)
    return [
        job_out(j, started=starts.get(j.id), extras=extras.get(j.id, JobExtras())) for j in jobs
    ]


async def one_job(farm: Any, caller: Any, job_ref: str) -> JobRecord:
    try:
        job: JobRecord = await farm.call(farm.jobs.get, caller, job_id_in(job_ref))
    except NotFound:
        raise not_found("job", job_ref) from None
    return job


# -- CreateJob ---------------------------------------------------------------------------------


def _submission(body: dict[str, Any], storage_profile: str | None) -> schema.TemplateJobIn:
    if not isinstance(body.get("template"), str):
        raise validation("a job needs its template (text)", "template")
    try:
        return schema.TemplateJobIn(
            template=body["template"],
            parameters=template_parameters(body.get("parameters") or {}),
            name=body.get("nameOverride"),
            priority=body.get("priority", 50),
            retries=body.get("maxRetriesPerTask", 3),
            paused=body.get("targetTaskRunStatus") == "SUSPENDED",
            asset_references=_asset_references(body.get("attachments"), storage_profile),
        )
    except ValueError as exc:  # pydantic's refusal: a priority or a retry count out of range
        raise validation(f"the job is malformed: {exc}", "body") from None


#: Job attachment roots a CreateJob may carry, and output directories per root.
_MAX_ROOTS = 64
_MAX_PATH = 4096


def _asset_references(attachments: Any, storage_profile: str | None) -> dict[str, Any] | None:
    """CreateJob's `attachments`: the output directories it names, kept with the job (the
    files themselves are read where they are; routes/deadline/outputs.py), and its storage
    profile."""
    if attachments is None:
        return None if storage_profile is None else {"storageProfileId": storage_profile}
    manifests = attachments.get("manifests") if isinstance(attachments, dict) else None
    if not isinstance(manifests, list) or len(manifests) > _MAX_ROOTS:
        raise validation(f"attachments.manifests: a list of at most {_MAX_ROOTS}", "attachments")
    outputs: list[str] = []
    for manifest in manifests:
        root = manifest.get("rootPath") if isinstance(manifest, dict) else None
        relative = manifest.get("outputRelativeDirectories") or [] if root else []
        if not isinstance(root, str) or not isinstance(relative, list):
            raise validation("attachments.manifests: each needs its rootPath", "attachments")
        for rel in relative[:_MAX_ROOTS]:
            if isinstance(rel, str) and len(root) + len(rel) < _MAX_PATH:
                outputs.append(root if rel in ("", ".") else f"{root.rstrip('/')}/{rel}")
    refs: dict[str, Any] = {"assetReferences": {"outputs": {"directories": outputs}}}
    if storage_profile is not None:
        refs["storageProfileId"] = storage_profile
    return refs


def _template_refusal(exc: InvalidInput) -> DeadlineError:
    issues = template_error_body(exc)
    if issues is None:
        return validation(exc.message, exc.field or "body")
    return DeadlineError(
        400,
        "ValidationException",
        exc.message,
        reason="FIELD_VALIDATION_FAILED",
        fieldList=[
            {"name": issue.location or "template", "message": issue.message}
            for issue in issues.errors
        ],
    )


def _optional_int(body: dict[str, Any], name: str, low: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise validation(f"{name} must be an integer of at least {low}", name)
    return value


@router.post("/queues/{queueId}/jobs", status_code=201)
async def create_job(
    farmId: str, queueId: str, request: Request, farm: FarmDep, caller: SignedCaller
) -> Any:
    body = await json_body(request)
    profile = body.get("storageProfileId")
    if profile is not None:
        if not isinstance(profile, str):
            raise validation("storageProfileId must be a storage profile's id", "storageProfileId")
        try:
            await storage.one_profile(farm, profile)
        except DeadlineError:
            raise validation(
                f"storageProfileId: no storage profile {profile[:100]} is allowed in this queue",
                "storageProfileId",
            ) from None
    submission = _submission(body, profile)
    max_failed = _optional_int(body, "maxFailedTasksCount", 0)
    max_workers = _optional_int(body, "maxWorkerCount", -1)
    description = body.get("descriptionOverride")
    try:
        job = await farm.call(
            farm.submitters.submit_deadline,
            caller,
            submission,
            max_failed_tasks=max_failed,
            description=description if isinstance(description, str) else None,
        )
        if max_workers is not None and max_workers >= 0:
            change = JobChange(max_running=max_workers or None)
            await farm.call(farm.submitters.update_job, caller, job.id, change)
    except InvalidInput as exc:
        raise _template_refusal(exc) from None
    except ThresherDomainError as exc:
        raise DeadlineError(403, "AccessDeniedException", exc.message) from None
    return JSONResponse({"jobId": job_id_out(job.id)}, status_code=201)


# -- GetJob, ListJobs, SearchJobs ----------------------------------------------------------------


@router.get("/queues/{queueId}/jobs/{jobId}")
async def get_job(
    farmId: str, queueId: str, jobId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    job = await one_job(farm, caller, jobId)
    return (await jobs_out(farm, [job]))[0]


@router.get("/queues/{queueId}/jobs")
async def list_jobs(
    farmId: str,
    queueId: str,
    farm: FarmDep,
    caller: SignedCaller,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    offset, limit = page_of(nextToken, maxResults)
    jobs = await farm.call(farm.jobs.list_jobs, caller, limit=limit + 1, offset=offset)
    out = await jobs_out(farm, jobs[:limit])
    return compact({"jobs": out, "nextToken": str(offset + limit) if len(jobs) > limit else None})


@router.post("/search/jobs")
async def search_jobs(farmId: str, request: Request, farm: FarmDep, caller: SignedCaller) -> Any:
    body = await json_body(request)
    offset = _optional_int(body, "itemOffset", 0) or 0
    size = _optional_int(body, "pageSize", 1) or 100
    if size > 100:
        raise validation("pageSize must be 1 to 100", "pageSize")
    every = await jobs_out(farm, await farm.call(farm.jobs.list_jobs, caller, limit=SEARCH_SCAN))
    jobs: list[search.Job] = list(every)
    if body.get("filterExpressions") is not None:
        jobs = [j for j in jobs if search.matches(body["filterExpressions"], j)]
    jobs = search.sort(jobs, body.get("sortExpressions") or [])
    page = jobs[offset : offset + size]
    found = [dict(j, queueId=queueId_of(body)) for j in page]
    more = offset + size < len(jobs)
    return compact(
        {
            "jobs": found,
            "totalResults": len(jobs),
            "nextItemOffset": offset + size if more else None,
        }
    )


def queueId_of(body: dict[str, Any]) -> str | None:
    queues = body.get("queueIds")
    return queues[0] if isinstance(queues, list) and queues and isinstance(queues[0], str) else None


# -- UpdateJob ---------------------------------------------------------------------------------


def job_change(body: dict[str, Any]) -> JobChange:
    target = body.get("targetTaskRunStatus")
    if target is not None and target not in _TARGET_STATE:
        raise validation(
            f"Thresher cannot set a job's tasks to {target}; it takes {', '.join(_TARGET_STATE)}",
            "targetTaskRunStatus",
        )
    if body.get("lifecycleStatus") is not None:
        raise validation("Thresher does not archive jobs (delete them instead)", "lifecycleStatus")
    workers = _optional_int(body, "maxWorkerCount", -1)
    priority = _optional_int(body, "priority", 0)
    if priority is not None and priority > 100:
        raise validation("priority must be 0 to 100", "priority")
    name = body.get("name")
    description = body.get("description")
    return JobChange(
        priority=priority,
        name=name if isinstance(name, str) and name else None,
        max_running=None if workers is None else max(workers, 0),
        retries=_optional_int(body, "maxRetriesPerTask", 0),
        max_failed_tasks=_optional_int(body, "maxFailedTasksCount", 0),
        description=description if isinstance(description, str) else None,
        state=_TARGET_STATE.get(target) if isinstance(target, str) else None,
    )


@router.patch("/queues/{queueId}/jobs/{jobId}")
async def update_job(
    farmId: str, queueId: str, jobId: str, request: Request, farm: FarmDep, caller: SignedCaller
) -> Any:
    change = job_change(await json_body(request))
    job = await one_job(farm, caller, jobId)
    try:
        await farm.call(farm.submitters.update_job, caller, job.id, change)
    except ThresherDomainError as exc:
        translated(exc)
    return {}
