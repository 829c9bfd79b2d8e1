"""Steps and tasks: ListSteps, GetStep, ListTasks, GetTask and UpdateTask. A step is a block of
the job; a task is one of its tasks (waiting ones synthesised, as Thresher's own pages do)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    SignedCaller,
    action_id_out,
    compact,
    iso,
    json_body,
    next_token,
    not_found,
    page_of,
    step_id_in,
    step_id_out,
    task_id_in,
    task_id_out,
    translated,
    validation,
)
from thresher.controller.routes.deadline.jobs import one_job, run_status_counts
from thresher.controller.routes.deps import FarmDep
from thresher.core.errors import NotFound, ThresherDomainError
from thresher.core.model import BlockRecord, JobRecord, TaskRecord, derive_job_status
from thresher.core.states import JobStatus, TaskStatus
from thresher.store.submitters import TaskRuns

router = APIRouter(
    prefix=API + "/farms/{farmId}/queues/{queueId}/jobs/{jobId}",
    tags=["deadline"],
    responses=AWS_ERRORS,
)

_TASK_STATUS = {
    TaskStatus.RUNNING: "RUNNING",
    TaskStatus.SUCCEEDED: "SUCCEEDED",
    TaskStatus.SKIPPED: "SUCCEEDED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.CANCELED: "CANCELED",
}
_STEP_STATUS = {
    JobStatus.WAITING: "PENDING",
    JobStatus.QUEUED: "READY",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.PAUSED: "SUSPENDED",
    JobStatus.SUCCEEDED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELED: "CANCELED",
}


def _block(job: JobRecord, step_ref: str) -> BlockRecord:
    index = step_id_in(job.id, step_ref)
    if index >= len(job.blocks):
        raise not_found("step", step_ref)
    return job.blocks[index]


def _block_status(job: JobRecord, block: BlockRecord) -> JobStatus:
    return derive_job_status(
        counts=block.counts,
        paused=job.spec.paused,
        canceled=job.canceled,
        deps_pending=job.status is JobStatus.WAITING,
    )


def step_out(job: JobRecord, block: BlockRecord) -> dict[str, Any]:
    status = _block_status(job, block)
    after = len(block.spec.after) + len(block.spec.after_frames)
    return compact(
        {
            "stepId": step_id_out(job.id, block.index),
            "name": block.spec.name,
            "lifecycleStatus": "CREATE_COMPLETE",
            "taskRunStatus": _STEP_STATUS[status],
            "taskRunStatusCounts": run_status_counts(block.counts, status),
            "taskFailureRetryCount": 0,
            "createdAt": iso(job.created_at),
            "createdBy": job.spec.owner,
            "dependencyCounts": {
                "consumersResolved": 0,
                "consumersUnresolved": 0,
                "dependenciesResolved": after if status is not JobStatus.WAITING else 0,
                "dependenciesUnresolved": after if status is JobStatus.WAITING else 0,
            },
            "description": block.spec.description or None,
        }
    )


def task_status(job: JobRecord, task: TaskRecord) -> str:
    if task.status in _TASK_STATUS:
        return _TASK_STATUS[task.status]
    if job.status is JobStatus.PAUSED:
        return "SUSPENDED"
    return "PENDING" if job.status is JobStatus.WAITING else "READY"


def task_out(job: JobRecord, task: TaskRecord, runs: TaskRuns | None) -> dict[str, Any]:
    ended = runs.ended_at if runs and task.status is not TaskStatus.RUNNING else None
    return compact(
        {
            "taskId": task_id_out(job.id, task.block_index, task.index),
            "createdAt": iso(job.created_at),
            "createdBy": job.spec.owner,
            "runStatus": task_status(job, task),
            "failureRetryCount": task.failures,
            "startedAt": iso(runs.started_at) if runs else None,
            "endedAt": iso(ended),
            "updatedAt": iso(task.updated_at),
            "latestSessionActionId": action_id_out(runs.latest_attempt) if runs else None,
        }
    )


@router.get("/steps")
async def list_steps(
    farmId: str,
    queueId: str,
    jobId: str,
    farm: FarmDep,
    caller: SignedCaller,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    job = await one_job(farm, caller, jobId)
    offset, limit = page_of(nextToken, maxResults)
    blocks = job.blocks[offset : offset + limit]
    return compact(
        {
            "steps": [step_out(job, b) for b in blocks],
            "nextToken": next_token(offset, limit, len(blocks), len(job.blocks)),
        }
    )


@router.get("/steps/{stepId}")
async def get_step(
    farmId: str, queueId: str, jobId: str, stepId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    job = await one_job(farm, caller, jobId)
    return step_out(job, _block(job, stepId))


@router.get("/steps/{stepId}/tasks")
async def list_tasks(
    farmId: str,
    queueId: str,
    jobId: str,
    stepId: str,
    farm: FarmDep,
    caller: SignedCaller,
    nextToken: str | None = None,
    maxResults: int | None = None,
) -> Any:
    job = await one_job(farm, caller, jobId)
    block = _block(job, stepId)
    offset, limit = page_of(nextToken, maxResults)
    total, tasks = await farm.call(
        farm.jobs.tasks, caller, job.id, block=block.index, offset=offset, limit=limit
    )
    runs = await farm.call(
        farm.submitters.task_runs, caller, job.id, block.index, [t.index for t in tasks]
    )
    return compact(
        {
            "tasks": [task_out(job, t, runs.get(t.index)) for t in tasks],
            "nextToken": next_token(offset, limit, len(tasks), total),
        }
    )


async def _task(farm: Any, caller: Any, job: JobRecord, step_ref: str, task_ref: str) -> TaskRecord:
    block = _block(job, step_ref)
    index = task_id_in(job.id, block.index, task_ref)
    try:
        task: TaskRecord = (await farm.call(farm.jobs.task, caller, job.id, block.index, index))[0]
    except NotFound:
        raise not_found("task", task_ref) from None
    return task


@router.get("/steps/{stepId}/tasks/{taskId}")
async def get_task(
    farmId: str,
    queueId: str,
    jobId: str,
    stepId: str,
    taskId: str,
    farm: FarmDep,
    caller: SignedCaller,
) -> Any:
    job = await one_job(farm, caller, jobId)
    task = await _task(farm, caller, job, stepId, taskId)
    runs = await farm.call(
        farm.submitters.task_runs, caller, job.id, task.block_index, [task.index]
    )
    return task_out(job, task, runs.get(task.index))


#: UpdateTask's targetRunStatus: run the task again, or count it as done.
_TASK_ACTIONS = {"PENDING": "retry_task", "READY": "retry_task", "SUCCEEDED": "skip_task"}


@router.patch("/steps/{stepId}/tasks/{taskId}")
async def update_task(
    farmId: str,
    queueId: str,
    jobId: str,
    stepId: str,
    taskId: str,
    request: Request,
    farm: FarmDep,
    caller: SignedCaller,
) -> Any:
    target = (await json_body(request)).get("targetRunStatus")
    if target not in _TASK_ACTIONS:
        raise validation(
            f"Thresher cannot set a task to {target}; it takes {', '.join(_TASK_ACTIONS)}",
            "targetRunStatus",
        )
    job = await one_job(farm, caller, jobId)
    task = await _task(farm, caller, job, stepId, taskId)
    action = getattr(farm.jobs, _TASK_ACTIONS[target])
    try:
        await farm.call(action, caller, job.id, task.block_index, task.index)
    except ThresherDomainError as exc:
        translated(exc)
    return {}
