"""People's routes for limits (licenses) and per-user settings (priority, max running)."""

from __future__ import annotations

from fastapi import APIRouter

from thresher.controller.routes.deps import CallerDep, FarmDep
from thresher.schemas import api
from thresher.store.limits import LimitRecord
from thresher.store.scheduling import UserRecord

router = APIRouter(prefix="/api/v1", tags=["limits", "users"])


def limit_out(limit: LimitRecord) -> api.LimitOut:
    return api.LimitOut(
        name=limit.name,
        max_total=limit.max_total,
        max_per_host=limit.max_per_host,
        max_hosts=limit.max_hosts,
        in_use=limit.in_use,
        hosts=dict(limit.in_use_by_host),
    )


def user_out(user: UserRecord) -> api.UserOut:
    return api.UserOut(
        name=user.name, priority=user.priority, max_running=user.max_running, running=user.running
    )


@router.get("/limits", response_model=api.LimitList)
async def list_limits(farm: FarmDep, caller: CallerDep) -> api.LimitList:
    """Every limit with its maximums and who holds units now."""
    return api.LimitList(limits=[limit_out(x) for x in farm.store.list_limits()])


@router.get("/limits/{name}", response_model=api.LimitOut)
async def show_limit(name: str, farm: FarmDep, caller: CallerDep) -> api.LimitOut:
    return limit_out(farm.store.get_limit(name))


@router.put("/limits/{name}", response_model=api.LimitOut)
async def set_limit(name: str, body: api.LimitIn, farm: FarmDep, caller: CallerDep) -> api.LimitOut:
    """Create a limit or change its maximums (admins)."""
    return limit_out(farm.scheduling.set_limit(caller, name, body))


@router.delete("/limits/{name}", status_code=204)
async def delete_limit(name: str, farm: FarmDep, caller: CallerDep) -> None:
    farm.scheduling.delete_limit(caller, name)


@router.get("/users", response_model=api.UserList)
async def list_users(farm: FarmDep, caller: CallerDep) -> api.UserList:
    """Users with settings, running tasks or unfinished jobs."""
    return api.UserList(users=[user_out(u) for u in farm.store.list_users()])


@router.put("/users/{name}", response_model=api.UserOut)
async def set_user(name: str, body: api.UserIn, farm: FarmDep, caller: CallerDep) -> api.UserOut:
    """Set a user's priority and maximum of running tasks (admins)."""
    return user_out(farm.scheduling.set_user(caller, name, body))
