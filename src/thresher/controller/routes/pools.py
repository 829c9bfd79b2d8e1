"""People's routes for pools and error hosts: who serves a pool, which hosts a job avoids."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from thresher.controller.routes.deps import (
    MAX_INDEX,
    CallerDep,
    FarmDep,
    JobIdPath,
)
from thresher.schemas import api

router = APIRouter(prefix="/api/v1", tags=["pools", "errors"])


@router.get("/pools", response_model=api.PoolList)
async def list_pools(farm: FarmDep, caller: CallerDep) -> api.PoolList:
    """Every pool a worker is in or an unfinished job names, with its workers and jobs."""
    return api.PoolList(pools=await farm.call(farm.scheduling.pools, caller))


@router.get("/jobs/{job_id}/error-hosts", response_model=api.ErrorHostList)
async def error_hosts(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> api.ErrorHostList:
    """The hosts the job's blocks had errors from, and which of them they avoid now."""
    found = await farm.call(farm.scheduling.error_hosts, caller, job_id)
    return api.ErrorHostList(
        job_id=job_id,
        hosts=[
            api.ErrorHostOut(
                block=h.block_index,
                worker=h.worker,
                errors=h.errors,
                avoided=h.avoided_until is not None,
                avoided_until=h.avoided_until,
                last_error_at=h.last_error_at,
            )
            for h in found
        ],
    )


@router.delete("/jobs/{job_id}/error-hosts", response_model=api.ResetOut)
async def reset_error_hosts(
    job_id: JobIdPath,
    farm: FarmDep,
    caller: CallerDep,
    block: Annotated[int | None, Query(ge=0, le=MAX_INDEX, description="only this block")] = None,
    worker: Annotated[str | None, Query(description="only this worker")] = None,
) -> api.ResetOut:
    """Forgive hosts now (the job's owner or an admin)."""
    n = await farm.call(
        farm.scheduling.reset_error_hosts, caller, job_id, block=block, worker=worker
    )
    return api.ResetOut(forgotten=n)
