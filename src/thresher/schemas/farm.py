"""The HTTP contract of the farm's settings: workers, tokens, limits, users, lanes, pools."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from thresher.schemas.base import MAX_INT32, Strict

# -- workers -------------------------------------------------------------------------------------


class WorkerOut(BaseModel):
    id: int
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: list[str]
    attributes: dict[str, str]
    lanes: int
    enabled: bool
    status: str
    last_seen: float
    running: int
    gpus: int = 0
    capacity: int = 1000
    capacity_used: int = 0
    lanes_detail: list[LaneOut] = Field(default_factory=list)
    nimby: str | None = Field(default=None, description="paused or stopped from the controller")
    local_nimby: str | None = Field(
        default=None, description="paused or stopped on the worker's machine"
    )
    sick_since: float | None = Field(default=None, description="when it was marked sick, if it is")
    pools_declared: list[str] | None = Field(
        default=None,
        description="the pools the worker declared, while an admin's choice (`pools`) holds",
    )


class LaneOut(BaseModel):
    index: int
    engines: list[str] | None = Field(description="what it runs; null: anything")
    overridden: bool = Field(
        default=False, description="set from the controller, not by the worker"
    )
    gpus: list[int] = Field(default_factory=list, description="GPU device ids the lane owns")


class WorkerList(BaseModel):
    workers: list[WorkerOut]


# -- tokens --------------------------------------------------------------------------------------


class TokenIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    # "user" is the old name of "artist" (docs/security.md)
    role: Literal["admin", "wrangler", "artist", "viewer", "enrol", "user"] = "artist"
    label: str | None = Field(default=None, max_length=200)
    expires_in_s: float | None = Field(
        default=None, gt=0, le=10 * 365 * 86400, description="seconds it works; none: no expiry"
    )


class TokenOut(BaseModel):
    id: int
    name: str
    role: str
    token: str = Field(description="shown once; only its hash is stored")


# -- scheduling: limits, users, lanes, NIMBY, error hosts, pools ---------------------


class LimitIn(Strict):
    max_total: int | None = Field(
        default=None, ge=0, le=MAX_INT32, description="units farm-wide; null: no maximum"
    )
    max_per_host: int | None = Field(
        default=None, ge=0, le=MAX_INT32, description="units on one host"
    )
    max_hosts: int | None = Field(
        default=None, ge=0, le=MAX_INT32, description="hosts holding units at once"
    )


class LimitOut(BaseModel):
    name: str
    max_total: int | None
    max_per_host: int | None
    max_hosts: int | None
    in_use: int
    hosts: dict[str, int] = Field(description="hostname -> units held")


class LimitList(BaseModel):
    limits: list[LimitOut]


class UserIn(Strict):
    priority: int = Field(default=0, ge=0, le=100, description="orders jobs of equal job priority")
    max_running: int | None = Field(
        default=None, ge=1, le=MAX_INT32, description="running tasks of the user at most"
    )


class UserOut(BaseModel):
    name: str
    priority: int
    max_running: int | None
    running: int


class UserList(BaseModel):
    users: list[UserOut]


class LaneIn(Strict):
    engines: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        max_length=100, description="engines or job kinds; null: anything"
    )


PoolName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class PoolsIn(Strict):
    pools: list[PoolName] = Field(
        max_length=100, description="the worker's pools from now on (replacing what it declared)"
    )


class ErrorHostOut(BaseModel):
    block: int
    worker: str
    errors: int = Field(description="errors that still count (forgiven ones do not)")
    avoided: bool
    avoided_until: float | None
    last_error_at: float


class ErrorHostList(BaseModel):
    job_id: int
    hosts: list[ErrorHostOut]


class ResetOut(BaseModel):
    forgotten: int


class PoolOut(BaseModel):
    name: str
    workers: list[str]
    jobs: dict[str, list[int]] = Field(description="mode (+ ~ @) -> active jobs naming it so")


class PoolList(BaseModel):
    pools: list[PoolOut]
