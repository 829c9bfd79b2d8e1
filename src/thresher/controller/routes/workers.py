"""People's routes for workers (list, show, enable, disable) and tokens (admin)."""

from __future__ import annotations

from fastapi import APIRouter

from thresher.controller.auth import role_named
from thresher.controller.convert import worker_out
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.schemas import api

router = APIRouter(prefix="/api/v1", tags=["workers"])


@router.get("/workers", response_model=api.WorkerList)
async def list_workers(farm: FarmDep, caller: CallerDep) -> api.WorkerList:
    return api.WorkerList(workers=[worker_out(w) for w in await farm.call(farm.scheduling.workers)])


@router.get("/workers/{name}", response_model=api.WorkerOut)
async def show_worker(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    return worker_out(await farm.call(farm.scheduling.worker, name))


@router.post("/workers/{name}/enable", response_model=api.WorkerOut)
async def enable(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    return worker_out(await farm.call(farm.scheduling.set_worker_enabled, caller, name, True))


@router.post("/workers/{name}/disable", response_model=api.WorkerOut)
async def disable(name: str, farm: FarmDep, caller: CallerDep) -> api.WorkerOut:
    return worker_out(await farm.call(farm.scheduling.set_worker_enabled, caller, name, False))


@router.post("/admin/tokens", status_code=201, response_model=api.TokenOut)
async def create_token(body: api.TokenIn, farm: FarmDep, caller: CallerDep) -> api.TokenOut:
    """A token for anyone, of any role but worker (admins); shown this once."""
    token_id, token = await farm.call(
        farm.access.create_token,
        caller,
        body.name,
        body.role,
        label=body.label,
        expires_in_s=body.expires_in_s,
    )
    return api.TokenOut(id=token_id, name=body.name, role=role_named(body.role), token=token)
