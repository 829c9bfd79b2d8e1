"""People's routes for jobs: submit, list, show, pause, resume, cancel, retry, priority, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from thresher.controller.routes.convert import job_out
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.core.errors import InvalidInput
from thresher.core.states import JobStatus
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=api.JobOut)
async def submit(body: api.JobIn, farm: FarmDep, caller: CallerDep) -> api.JobOut:
    job_id = farm.submit(caller, body)
    return job_out(farm.store.get_job(job_id))


@router.get("", response_model=api.JobList)
async def list_jobs(
    farm: FarmDep,
    caller: CallerDep,
    status: Annotated[list[str] | None, Query(description="repeat to allow several")] = None,
    owner: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> api.JobList:
    wanted = []
    for s in status or []:
        try:
            wanted.append(JobStatus(s))
        except ValueError:
            known = ", ".join(x.value for x in JobStatus)
            raise InvalidInput(f"unknown status {s!r}; one of {known}", field="status") from None
    jobs = farm.store.list_jobs(owner=owner, statuses=wanted, limit=limit, offset=offset)
    return api.JobList(jobs=[job_out(j) for j in jobs])


@router.get("/{job_id}", response_model=api.JobOut)
async def show(job_id: int, farm: FarmDep, caller: CallerDep) -> api.JobOut:
    return job_out(farm.job(caller, job_id))


def _action(farm: FarmDep, job_id: int, affected: int) -> api.ActionOut:
    return api.ActionOut(
        id=job_id, status=farm.store.get_job(job_id).status.value, affected=affected
    )


@router.post("/{job_id}/pause", response_model=api.ActionOut)
async def pause(job_id: int, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _action(farm, job_id, farm.pause(caller, job_id))


@router.post("/{job_id}/resume", response_model=api.ActionOut)
async def resume(job_id: int, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _action(farm, job_id, farm.resume(caller, job_id))


@router.post("/{job_id}/cancel", response_model=api.ActionOut)
async def cancel(job_id: int, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _action(farm, job_id, farm.cancel(caller, job_id))


@router.post("/{job_id}/retry", response_model=api.ActionOut)
async def retry(job_id: int, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _action(farm, job_id, farm.retry(caller, job_id))


@router.put("/{job_id}/priority", response_model=api.ActionOut)
async def priority(
    job_id: int, body: api.PriorityIn, farm: FarmDep, caller: CallerDep
) -> api.ActionOut:
    farm.set_priority(caller, job_id, body.priority)
    return _action(farm, job_id, 0)


@router.delete("/{job_id}", status_code=204)
async def delete(job_id: int, farm: FarmDep, caller: CallerDep) -> None:
    farm.delete(caller, job_id)
