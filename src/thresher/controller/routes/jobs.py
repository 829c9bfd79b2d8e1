"""People's routes for jobs: submit, list, show, pause, resume, cancel, retry, priority, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response

from thresher.controller.convert import job_out, why_out
from thresher.controller.job_ends import MAX_WAIT_S, wait_for_end
from thresher.controller.jobs import Acted
from thresher.controller.routes.deps import (
    MAX_INDEX,
    CallerDep,
    FarmDep,
    JobIdPath,
    json_answer,
)
from thresher.core.model import JobRecord
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=api.JobOut)
async def submit(body: api.JobIn, farm: FarmDep, caller: CallerDep) -> Response:
    job = await farm.call(farm.jobs.submit, caller, body)
    return await json_answer(lambda: job_out(job), status_code=201, small=_small(job))


#: A job of at most this many blocks is answered without the hand-off to a thread.
SMALL_JOB_BLOCKS = 8


def _small(job: JobRecord) -> bool:
    return len(job.blocks) <= SMALL_JOB_BLOCKS


#: The most JSON one page of jobs may carry.
MAX_PAGE_BYTES = 64 << 20


@router.get("", response_model=api.JobList)
async def list_jobs(
    farm: FarmDep,
    caller: CallerDep,
    status: Annotated[list[str] | None, Query(description="repeat to allow several")] = None,
    owner: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    max_bytes: Annotated[
        int, Query(ge=1, le=MAX_PAGE_BYTES, description="response bytes at most (one job always)")
    ] = 4 << 20,
) -> Response:
    """Newest first, a page at a time: at most `limit` jobs and about `max_bytes` of JSON.
    Page on with `offset` set to `next_offset` while `more` is true."""
    jobs = await farm.call(
        farm.jobs.list_jobs,
        caller,
        owner=owner,
        statuses=status or (),
        limit=limit + 1,  # one more: are there more?
        offset=offset,
    )
    body = await asyncio.to_thread(_page_json, jobs, limit, offset, max_bytes)
    return Response(body, media_type="application/json")


def _page_json(jobs: list[JobRecord], limit: int, offset: int, max_bytes: int) -> str:
    """The page's JSON: jobs while they fit `max_bytes` (one at least), and where to go on."""
    pieces: list[str] = []
    size = 0
    for job in jobs[:limit]:
        piece = job_out(job).model_dump_json()
        size += len(piece) + 1
        if pieces and size > max_bytes:
            break
        pieces.append(piece)
    more = len(jobs) > len(pieces)
    tail = f'"next_offset":{offset + len(pieces)},"more":{"true" if more else "false"}'
    body = f'{{"jobs":[{",".join(pieces)}],{tail}}}'
    return body


@router.get("/{job_id}", response_model=api.JobOut)
async def show(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> Response:
    job = await farm.call(farm.jobs.get, caller, job_id)
    return await json_answer(lambda: job_out(job), small=_small(job))


@router.get("/{job_id}/wait", response_model=api.JobOut)
async def wait(
    job_id: JobIdPath,
    farm: FarmDep,
    caller: CallerDep,
    timeout_s: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait at most")
    ] = 30.0,
) -> Response:
    """The job as `GET /jobs/{id}` shows it, answered as soon as it is final (succeeded,
    failed, canceled), else when `timeout_s` has passed (the job as it is then). Woken by the
    commit that ends the job, on this controller or another on the same PostgreSQL."""
    job = await wait_for_end(farm, caller, job_id, timeout_s)
    return await json_answer(lambda: job_out(job), small=_small(job))


@router.get("/{job_id}/why", response_model=api.WhyOut)
async def why(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.WhyOut:
    """Why the job waits: what holds it as a whole (paused, waiting on other jobs...), else
    for each block with tasks left, the reasons the online workers do not run them (filters
    not met, NIMBY, sick, busy, limits full, caps reached...), most common first."""
    return why_out(await farm.call(farm.waiting.why, caller, job_id))


def _acted(acted: Acted) -> api.ActionOut:
    return api.ActionOut(id=acted.job.id, status=acted.job.status.value, affected=acted.affected)


@router.post("/{job_id}/pause", response_model=api.ActionOut)
async def pause(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _acted(await farm.call(farm.jobs.pause, caller, job_id))


@router.post("/{job_id}/resume", response_model=api.ActionOut)
async def resume(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _acted(await farm.call(farm.jobs.resume, caller, job_id))


@router.post("/{job_id}/cancel", response_model=api.ActionOut)
async def cancel(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _acted(await farm.call(farm.jobs.cancel, caller, job_id))


@router.post("/{job_id}/retry", response_model=api.ActionOut)
async def retry(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.ActionOut:
    return _acted(await farm.call(farm.jobs.retry, caller, job_id))


@router.put("/{job_id}/priority", response_model=api.ActionOut)
async def priority(
    job_id: JobIdPath, body: api.PriorityIn, farm: FarmDep, caller: CallerDep
) -> api.ActionOut:
    return _acted(await farm.call(farm.jobs.set_priority, caller, job_id, body.priority))


@router.delete("/{job_id}", status_code=204)
async def delete(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.jobs.delete, caller, job_id)
