"""Workers' routes: register with an enrolment token, poll, report output and finishes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from thresher.controller import polling
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.core.errors import StaleAttempt
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])


@router.post("/register", response_model=api.RegisterOut)
async def register(body: api.RegisterIn, farm: FarmDep, caller: CallerDep) -> api.RegisterOut:
    worker_id, token = farm.register(caller, body)
    return api.RegisterOut(
        worker_id=worker_id,
        token=token,
        heartbeat_s=farm.settings.heartbeat_s,
        lease_s=farm.settings.lease_s,
    )


@router.post("/poll", response_model=api.PollOut)
async def poll(body: api.PollIn, request: Request, farm: FarmDep, caller: CallerDep) -> api.PollOut:
    worker_id = farm.worker_of(caller)
    return await polling.poll(farm, worker_id, body, disconnected=request.is_disconnected)


@router.post("/report", response_model=api.PollOut)
async def report(body: api.ReportIn, farm: FarmDep, caller: CallerDep) -> api.PollOut:
    """Output and finishes sent while a poll is held open; no claim, no reconciliation."""
    worker_id = farm.worker_of(caller)
    farm.store.touch_worker(worker_id, farm.clock.now())
    stale = farm.report(worker_id, body.output, body.finished)
    return api.PollOut(
        assignments=[],
        stop=farm.store.attempts_to_stop(worker_id),
        stale=stale,
        heartbeat_s=farm.settings.heartbeat_s,
        lease_s=farm.settings.lease_s,
        enabled=farm.store.get_worker(worker_id).enabled,
    )


@router.post("/attempts/{attempt_id}/output", status_code=204)
async def output(attempt_id: int, body: api.OutputBatch, farm: FarmDep, caller: CallerDep) -> None:
    """One attempt's output; a stale fencing token is answered 409 and the worker kills it."""
    farm.worker_of(caller)
    if body.attempt_id != attempt_id:
        raise StaleAttempt("attempt id in the path and the body differ", field="attempt_id")
    farm.record_output(body)


@router.post("/attempts/{attempt_id}/finish", status_code=204)
async def finish(attempt_id: int, body: api.FinishIn, farm: FarmDep, caller: CallerDep) -> None:
    """One attempt's end; a stale fencing token is answered 409."""
    farm.worker_of(caller)
    if body.attempt_id != attempt_id:
        raise StaleAttempt("attempt id in the path and the body differ", field="attempt_id")
    if farm.finish(body):
        farm.notifier.notify(soft=True)
