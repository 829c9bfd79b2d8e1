"""Workers' routes: register with an enrolment token, poll, report output and finishes."""

from __future__ import annotations

from fastapi import APIRouter, Request

from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.controller.routes.lean import LeanRoute
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])


@router.post("/register", response_model=api.RegisterOut)
async def register(body: api.RegisterIn, farm: FarmDep, caller: CallerDep) -> api.RegisterOut:
    return await farm.call(farm.agents.register, caller, body)


async def poll(body: api.PollIn, request: Request, farm: FarmDep, caller: CallerDep) -> api.PollOut:
    """Heartbeat, reports and claims in one call; held open (up to `wait_s`) when there is
    nothing to hand out."""
    return await farm.agents.poll(caller, body, disconnected=request.is_disconnected)


async def report(
    body: api.ReportIn, request: Request, farm: FarmDep, caller: CallerDep
) -> api.PollOut:
    """Output and finishes sent while a poll is held open; no claim, no reconciliation."""
    return await farm.call(farm.agents.report, caller, body)


@router.post("/goodbye", status_code=204)
async def goodbye(farm: FarmDep, caller: CallerDep) -> None:
    """The worker is stopping on purpose: it goes offline at once and what it still ran goes
    back to the queue."""
    await farm.call(farm.agents.goodbye, caller)


# The two calls every worker makes all the time: served by the lean route (see `lean`).
for _path, _endpoint in (("/poll", poll), ("/report", report)):
    router.add_api_route(
        _path,
        _endpoint,
        methods=["POST"],
        response_model=api.PollOut,
        route_class_override=LeanRoute,
    )
