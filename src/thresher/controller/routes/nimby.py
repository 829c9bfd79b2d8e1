"""People's routes that steer a worker: what its lanes run, NIMBY pause/stop/resume, sickness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from thresher.controller.convert import worker_out
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.core.lanes import Nimby
from thresher.schemas import api

router = APIRouter(prefix="/api/v1/workers/{name}", tags=["workers"])

Lane = Annotated[int, Path(ge=0, le=255)]


@router.put("/lanes/{lane}", response_model=api.WorkerOut)
async def set_lane(
    name: str, lane: Lane, body: api.LaneIn, farm: FarmDep, caller: CallerDep
) -> api.WorkerOut:
    """Set the engines (or job kinds) a lane runs; null: anything. Counts at the next poll."""
    return worker_out(
        await farm.call(farm.scheduling.set_lane, caller, name, lane, body.engines, reset=False)
    )


@router.delete("/lanes/{lane}", response_model=api.WorkerOut)
async def reset_lane(name: str, lane: Lane, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """Forget the controller's setting: the lane runs what the worker declared."""
    return worker_out(
        await farm.call(farm.scheduling.set_lane, caller, name, lane, None, reset=True)
    )


@router.put("/pools", response_model=api.WorkerOut)
async def set_pools(
    name: str, body: api.PoolsIn, farm: FarmDep, caller: CallerDep
) -> api.WorkerOut:
    """Set the worker's pools (admins); they hold across its restarts until reset."""
    return worker_out(await farm.call(farm.scheduling.set_pools, caller, name, body.pools))


@router.delete("/pools", response_model=api.WorkerOut)
async def reset_pools(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """Forget the controller's choice: the worker is in the pools it declared."""
    return worker_out(await farm.call(farm.scheduling.set_pools, caller, name, None))


@router.post("/pause", response_model=api.WorkerOut)
async def pause(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """NIMBY: the worker finishes what it runs and takes nothing new."""
    return worker_out(await farm.call(farm.scheduling.set_nimby, caller, name, Nimby.PAUSED))


@router.post("/stop", response_model=api.WorkerOut)
async def stop(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """NIMBY: the worker also stops what it runs; those tasks go back to the queue."""
    return worker_out(await farm.call(farm.scheduling.set_nimby, caller, name, Nimby.STOPPED))


@router.post("/resume", response_model=api.WorkerOut)
async def resume(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """End a NIMBY pause or stop set from the controller."""
    return worker_out(await farm.call(farm.scheduling.set_nimby, caller, name, None))


@router.delete("/sick", response_model=api.WorkerOut)
async def clear_sick(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    """A sick worker takes work again; only failures from now on count towards sickness."""
    return worker_out(await farm.call(farm.scheduling.clear_sick, caller, name))
