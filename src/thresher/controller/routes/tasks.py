"""People's routes for tasks: pages (waiting ones synthesised), show, retry, skip, log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from thresher.controller.convert import attempt_out, task_out, task_why_out
from thresher.controller.routes.deps import (
    MAX_ID,
    MAX_INDEX,
    BlockPath,
    CallerDep,
    FarmDep,
    JobIdPath,
    TaskIndexPath,
    json_answer,
)
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/jobs/{job_id}", tags=["tasks"])

#: The most text one log page may carry (a reader pages on with `after`).
MAX_LOG_PAGE_BYTES = 16 << 20


@router.get("/tasks", response_model=api.TaskPage)
async def list_tasks(
    job_id: JobIdPath,
    farm: FarmDep,
    caller: CallerDep,
    block: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    offset: Annotated[int, Query(ge=0, le=MAX_INDEX)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    total, page = await farm.call(
        farm.jobs.tasks, caller, job_id, block=block, offset=offset, limit=limit
    )
    return await json_answer(
        lambda: api.TaskPage(
            job_id=job_id,
            block=block,
            total=total,
            offset=offset,
            limit=limit,
            tasks=[task_out(t) for t in page],
        )
    )


@router.get("/attempts", response_model=api.AttemptList)
async def list_attempts(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> Response:
    """Every attempt of the job, oldest first: the job's history."""
    found = await farm.call(farm.jobs.attempts, caller, job_id)
    return await json_answer(lambda: api.AttemptList(attempts=[attempt_out(a) for a in found]))


@router.get("/blocks/{block}/tasks/{index}", response_model=api.TaskDetail)
async def show_task(
    job_id: JobIdPath, block: BlockPath, index: TaskIndexPath, farm: FarmDep, caller: CallerDep
) -> api.TaskDetail:
    task, attempts = await farm.call(farm.jobs.task, caller, job_id, block, index)
    eta_s = await farm.call(farm.monitor.task_eta, task, attempts)
    return api.TaskDetail(
        **task_out(task).model_dump(),
        attempts_detail=[attempt_out(a) for a in attempts],
        eta_s=eta_s,
    )


@router.get("/blocks/{block}/tasks/{index}/why", response_model=api.TaskWhyOut)
async def task_why(
    job_id: JobIdPath, block: BlockPath, index: TaskIndexPath, farm: FarmDep, caller: CallerDep
) -> api.TaskWhyOut:
    """Why the task waits (or where it is): its own reasons first, then its block's."""
    return task_why_out(await farm.call(farm.waiting.task_why, caller, job_id, block, index))


@router.post("/blocks/{block}/tasks/{index}/retry", status_code=204)
async def retry_task(
    job_id: JobIdPath, block: BlockPath, index: TaskIndexPath, farm: FarmDep, caller: CallerDep
) -> None:
    await farm.call(farm.jobs.retry_task, caller, job_id, block, index)


@router.post("/blocks/{block}/tasks/{index}/skip", status_code=204)
async def skip_task(
    job_id: JobIdPath, block: BlockPath, index: TaskIndexPath, farm: FarmDep, caller: CallerDep
) -> None:
    await farm.call(farm.jobs.skip_task, caller, job_id, block, index)


@router.get("/blocks/{block}/tasks/{index}/log", response_model=api.LogOut)
async def task_log(
    job_id: JobIdPath,
    block: BlockPath,
    index: TaskIndexPath,
    farm: FarmDep,
    caller: CallerDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="only lines after this line id")] = 0,
    limit: Annotated[int, Query(ge=1, le=100_000, description="lines at most")] = 10_000,
    max_bytes: Annotated[
        int, Query(ge=1, le=MAX_LOG_PAGE_BYTES, description="text bytes at most (one line always)")
    ] = 1 << 20,
) -> Response:
    """A page of the task's output (every attempt), oldest first. Page on with `after` set to
    `next_after` while `more` is true."""
    lines, more = await farm.call(
        farm.jobs.log, caller, job_id, block, index, after=after, limit=limit, max_bytes=max_bytes
    )
    return await json_answer(
        lambda: api.LogOut(
            lines=[api.LogLine(id=i, attempt_id=a, stream=s, text=t) for i, a, s, t in lines],
            next_after=lines[-1][0] if lines else after,
            more=more,
        )
    )
