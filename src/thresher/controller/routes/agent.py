"""Workers' routes: register with an enrolment token, poll, report output and finishes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from thresher.controller import polling
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.controller.routes.lean import LeanRoute
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


async def poll(body: api.PollIn, request: Request, farm: FarmDep, caller: CallerDep) -> api.PollOut:
    """Heartbeat, reports and claims in one call; held open (up to `wait_s`) when there is
    nothing to hand out."""
    worker_id = farm.worker_of(caller)
    return await polling.poll(farm, worker_id, body, disconnected=request.is_disconnected)


async def report(
    body: api.ReportIn, request: Request, farm: FarmDep, caller: CallerDep
) -> api.PollOut:
    """Output and finishes sent while a poll is held open; no claim, no reconciliation."""
    worker_id = farm.worker_of(caller)
    with farm.transaction():
        farm.heartbeat(worker_id, farm.clock.now())
        stale = farm.report(worker_id, body.output, body.finished)
        stop = farm.store.attempts_to_stop(worker_id)
    return api.PollOut(
        assignments=[],
        stop=stop,
        stale=stale,
        heartbeat_s=farm.settings.heartbeat_s,
        lease_s=farm.settings.lease_s,
        enabled=farm.dispatch_index.worker_enabled(worker_id),
    )


# The two calls every worker makes all the time: served by the lean route (see `lean`).
for _path, _endpoint in (("/poll", poll), ("/report", report)):
    router.add_api_route(
        _path,
        _endpoint,
        methods=["POST"],
        response_model=api.PollOut,
        route_class_override=LeanRoute,
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
