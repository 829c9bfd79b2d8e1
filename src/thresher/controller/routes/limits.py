"""People's routes for limits (licenses) and per-user settings (priority, max running)."""

from __future__ import annotations

from fastapi import APIRouter

from thresher.controller.convert import limit_out, user_out
from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.schemas import api

router = APIRouter(prefix="/api/v1", tags=["limits", "users"])


@router.get("/limits", response_model=api.LimitList)
async def list_limits(farm: FarmDep, caller: CallerDep) -> api.LimitList:
    """Every limit with its maximums and who holds units now."""
    return api.LimitList(limits=[limit_out(x) for x in await farm.call(farm.scheduling.limits)])


@router.get("/limits/{name}", response_model=api.LimitOut)
async def show_limit(name: str, farm: FarmDep, caller: CallerDep) -> api.LimitOut:
    return limit_out(await farm.call(farm.scheduling.limit, name))


@router.put("/limits/{name}", response_model=api.LimitOut)
async def set_limit(name: str, body: api.LimitIn, farm: FarmDep, caller: CallerDep) -> api.LimitOut:
    """Create a limit or change its maximums (admins)."""
    return limit_out(await farm.call(farm.scheduling.set_limit, caller, name, body))


@router.delete("/limits/{name}", status_code=204)
async def delete_limit(name: str, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.scheduling.delete_limit, caller, name)


@router.get("/users", response_model=api.UserList)
async def list_users(farm: FarmDep, caller: CallerDep) -> api.UserList:
    """Users with settings, running tasks or unfinished jobs."""
    return api.UserList(users=[user_out(u) for u in await farm.call(farm.scheduling.users)])


@router.put("/users/{name}", response_model=api.UserOut)
async def set_user(name: str, body: api.UserIn, farm: FarmDep, caller: CallerDep) -> api.UserOut:
    """Set a user's priority and maximum of running tasks (admins)."""
    return user_out(await farm.call(farm.scheduling.set_user, caller, name, body))
