"""The submitters' routes beyond submitting: `GET /api/v1/find?q=job where status=running`
(evaluated here, paged), `PATCH /api/v1/jobs/{id}` (priority, name, filters, caps, retries, run
state on the fly) and `POST /api/v1/jobs/task-file` (a job whose tasks are a list's entries)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from thresher.controller.convert import engine_out, job_out, task_out, worker_out
from thresher.controller.find import MAX_LIMIT, Found
from thresher.controller.routes.deps import CallerDep, FarmDep, JobIdPath
from thresher.controller.submitters import JobChange
from thresher.core.errors import InvalidInput
from thresher.schemas import api
from thresher.schemas.submitters import FindOut, JobPatch, TaskFileJobIn

router = APIRouter(prefix="/api/v1", tags=["find"])

_OUT: dict[str, Any] = {
    "job": job_out,
    "task": task_out,
    "worker": worker_out,
    "engine": engine_out,
}


def found_out(found: Found, limit: int) -> FindOut:
    end = found.offset + len(found.items)
    return FindOut(
        entity=found.entity,
        offset=found.offset,
        limit=limit,
        matched=found.matched,
        partial=found.partial,
        next_offset=end if end < found.matched else None,
        items=[_OUT[found.entity](item).model_dump(mode="json") for item in found.items],
    )


@router.get("/find", response_model=FindOut)
async def find(
    farm: FarmDep,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=2000, description="ENTITY [where FIELD OP VALUE ...]")],
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
) -> FindOut:
    """Jobs, tasks, workers or engines matching a query (grammar in docs/api.md)."""
    found = await farm.call(farm.finder.find, caller, q, offset=offset, limit=limit)
    return found_out(found, limit)


@router.patch("/jobs/{job_id}", response_model=api.JobOut)
async def update_job(
    job_id: JobIdPath, body: JobPatch, farm: FarmDep, caller: CallerDep
) -> api.JobOut:
    """Change a job on the fly: what the body names, in one transaction."""
    if body.priority_frames is not None and body.range is None:
        raise InvalidInput("priority_frames change with the range: give both", field="range")
    change = JobChange(
        priority=body.priority,
        name=body.name,
        filters=body.filters,
        max_running=body.max_running,
        max_running_per_host=body.max_running_per_host,
        retries=body.retries,
        max_failed_tasks=body.max_failed_tasks,
        description=body.description,
        state=body.state,
        range=body.range,
        priority_frames=body.priority_frames,
        block=body.block,
    )
    return job_out(await farm.call(farm.submitters.update_job, caller, job_id, change))


@router.post("/jobs/task-file", status_code=201, response_model=api.JobOut)
async def submit_task_file(body: TaskFileJobIn, farm: FarmDep, caller: CallerDep) -> api.JobOut:
    """A job whose task `i` runs `command + tasks[i]` (argv lists; no shell, no placeholders)."""
    return job_out(await farm.call(farm.submitters.submit_task_file, caller, body))
