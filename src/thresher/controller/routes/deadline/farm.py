"""The farm as Deadline Cloud sees it: one farm (any farm id names it), one queue (any queue
id), one fleet (the farm's workers) and the queue environments, plus the admin routes that
issue access keys and keep the queue environments."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from thresher.controller.routes.deadline import s3, storage
from thresher.controller.routes.deadline.common import (
    API,
    AWS_ERRORS,
    FARM_ID,
    FLEET_ID,
    QUEUE_ID,
    SignedCaller,
    compact,
    iso,
    json_body,
    not_found,
    translated,
    validation,
)
from thresher.controller.routes.deps import CallerDep, FarmDep, JobIdPath
from thresher.controller.sigv4 import parse_authorization
from thresher.core.errors import ThresherDomainError
from thresher.core.states import WorkerStatus
from thresher.schemas.base import Name, Strict
from thresher.store.submitters import QueueEnvironment

#: A queue environment's id in Thresher's own routes (a 64-bit row id, as a job's).
EnvIdPath = JobIdPath
router = APIRouter(prefix=API + "/farms", tags=["deadline"], responses=AWS_ERRORS)
admin_router = APIRouter(prefix="/api/v1/admin", tags=["workers"])
_CREATED = {"createdAt": iso(0), "createdBy": "thresher"}


def _farm(farm_id: str) -> dict[str, Any]:
    return {
        "farmId": farm_id,
        "displayName": "Thresher",
        "description": "a Thresher farm: every farm id names it",
        "costScaleFactor": 1.0,
        **_CREATED,
    }


def _queue(farm_id: str, queue_id: str) -> dict[str, Any]:
    return {
        "farmId": farm_id,
        "queueId": queue_id,
        "displayName": "Thresher",
        "description": "every queue id names this Thresher farm's one queue",
        "status": "SCHEDULING",
        "defaultBudgetAction": "NONE",
        **_CREATED,
    }


@router.get("")
async def list_farms(caller: SignedCaller) -> Any:
    return {"farms": [{k: v for k, v in _farm(FARM_ID).items() if k != "costScaleFactor"}]}


@router.get("/{farmId}")
async def get_farm(farmId: str, caller: SignedCaller) -> Any:
    return _farm(farmId)


@router.get("/{farmId}/queues")
async def list_queues(farmId: str, caller: SignedCaller) -> Any:
    queue = {k: v for k, v in _queue(farmId, QUEUE_ID).items() if k != "description"}
    return {"queues": [queue]}


@router.get("/{farmId}/queues/{queueId}")
async def get_queue(farmId: str, queueId: str, farm: FarmDep, caller: SignedCaller) -> Any:
    profiles = [p["storageProfileId"] for p in await storage.all_profiles(farm)]
    return {
        **_queue(farmId, queueId),
        "jobAttachmentSettings": s3.SETTINGS,
        "allowedStorageProfileIds": profiles,
    }


@router.get("/{farmId}/queues/{queueId}/user-roles")
async def assume_queue_role_for_user(
    farmId: str, queueId: str, request: Request, farm: FarmDep, caller: SignedCaller
) -> Any:
    """AssumeQueueRoleForUser: credentials reading the job attachments of the caller's jobs
    (and those their groups share) on the attachments endpoint only (routes/deadline/s3.py)."""
    auth = parse_authorization(request.headers.get("authorization"))
    credentials = await farm.call(farm.access.queue_credentials, auth)
    return {"credentials": credentials}


async def _fleet(farm: Any, farm_id: str) -> dict[str, Any]:
    workers = await farm.call(farm.scheduling.workers)
    online = [w for w in workers if w.status is not WorkerStatus.OFFLINE]
    cores = [w.cores for w in workers] or [1]
    ram = [w.ram_bytes // 2**20 for w in workers] or [1]
    return {
        "fleetId": FLEET_ID,
        "farmId": farm_id,
        "displayName": "Thresher workers",
        "status": "ACTIVE",
        "autoScalingStatus": "STEADY",
        "workerCount": len(online),
        "targetWorkerCount": len(online),
        "minWorkerCount": 0,
        "maxWorkerCount": len(workers),
        "configuration": {
            "customerManaged": {
                "mode": "NO_SCALING",
                "workerCapabilities": {
                    "vCpuCount": {"min": min(cores), "max": max(cores)},
                    "memoryMiB": {"min": min(ram), "max": max(ram)},
                    "osFamily": "LINUX",
                    "cpuArchitectureType": "x86_64",
                },
            }
        },
        **_CREATED,
    }


@router.get("/{farmId}/fleets")
async def list_fleets(farmId: str, farm: FarmDep, caller: SignedCaller) -> Any:
    return {"fleets": [await _fleet(farm, farmId)]}


@router.get("/{farmId}/fleets/{fleetId}")
async def get_fleet(farmId: str, fleetId: str, farm: FarmDep, caller: SignedCaller) -> Any:
    if fleetId != FLEET_ID:
        raise not_found(
            "fleet", fleetId, f"fleet {fleetId} does not exist: the farm's is {FLEET_ID}"
        )
    fleet = await _fleet(farm, farmId)
    return dict(fleet, roleArn="arn:aws:iam::000000000000:role/thresher")


@router.get("/{farmId}/queue-fleet-associations")
async def list_queue_fleet_associations(farmId: str, caller: SignedCaller) -> Any:
    association = {"queueId": QUEUE_ID, "fleetId": FLEET_ID, "status": "ACTIVE", **_CREATED}
    return {"queueFleetAssociations": [association]}


# -- queue environments ------------------------------------------------------------------------


def _env_id(env_id: int) -> str:
    return f"queueenv-{env_id:032x}"


def _env_id_in(text: str) -> int:
    if re.fullmatch(r"queueenv-[0-9a-f]{32}", text) and int(text[9:], 16) < 2**63:
        return int(text[9:], 16)
    raise not_found("queue-environment", text)


def environment_out(env: QueueEnvironment, *, full: bool) -> dict[str, Any]:
    out = {"queueEnvironmentId": _env_id(env.id), "name": env.name, "priority": env.priority}
    if full:
        out |= {
            "templateType": env.template_type,
            "template": env.template,
            "createdAt": iso(env.created_at),
            "createdBy": env.created_by,
            "updatedAt": iso(env.updated_at),
        }
    return compact(out)


@router.get("/{farmId}/queues/{queueId}/environments")
async def list_queue_environments(
    farmId: str, queueId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    found = await farm.call(farm.submitters.environments, caller)
    return {"environments": [environment_out(e, full=False) for e in found]}


@router.get("/{farmId}/queues/{queueId}/environments/{environmentId}")
async def get_queue_environment(
    farmId: str, queueId: str, environmentId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    try:
        env = await farm.call(farm.submitters.environment, caller, _env_id_in(environmentId))
    except ThresherDomainError:
        raise not_found("queue-environment", environmentId) from None
    return environment_out(env, full=True)


@router.post("/{farmId}/queues/{queueId}/environments")
async def create_queue_environment(
    farmId: str, queueId: str, request: Request, farm: FarmDep, caller: SignedCaller
) -> Any:
    body = await json_body(request)
    template, priority = body.get("template"), body.get("priority", 50)
    if not isinstance(template, str) or not template.strip():
        raise validation("a queue environment needs its template (text)", "template")
    if not isinstance(priority, int) or not 0 <= priority <= 10_000:
        raise validation("priority must be 0 to 10000", "priority")
    name = str(body.get("name") or _template_name(template))
    try:
        env = await farm.call(
            farm.submitters.add_environment, caller, name=name, priority=priority, template=template
        )
    except ThresherDomainError as exc:
        translated(exc)
    return {"queueEnvironmentId": _env_id(env.id)}


def _template_name(template: str) -> str:
    for line in template.splitlines():
        key, _, value = line.strip().partition(":")
        if key.strip("\"' ") == "name" and value.strip():
            return value.strip().strip("\"', ")
    return "environment"


@router.delete("/{farmId}/queues/{queueId}/environments/{environmentId}")
async def delete_queue_environment(
    farmId: str, queueId: str, environmentId: str, farm: FarmDep, caller: SignedCaller
) -> Any:
    try:
        await farm.call(farm.submitters.delete_environment, caller, _env_id_in(environmentId))
    except ThresherDomainError as exc:
        translated(exc)
    return {}


# -- Thresher's own admin routes -----------------------------------------------------------------


class AccessKeyIn(Strict):
    name: Name
    role: str = Field("artist", pattern="^(user|admin|wrangler|artist|viewer)$")


class AccessKeyOut(BaseModel):
    name: str
    role: str
    access_key_id: str
    secret_access_key: str = Field(description="shown once")


@admin_router.post("/access-keys", status_code=201, response_model=AccessKeyOut)
async def create_access_key(body: AccessKeyIn, farm: FarmDep, caller: CallerDep) -> AccessKeyOut:
    """Admins: issue an AWS-style key pair acting as a new token of `role`."""
    key_id, secret = await farm.call(farm.access.create_access_key, caller, body.name, body.role)
    return AccessKeyOut(
        name=body.name, role=body.role, access_key_id=key_id, secret_access_key=secret
    )


class QueueEnvironmentIn(Strict):
    name: Name
    priority: int = Field(50, ge=0, le=10_000, description="lower is entered first")
    template: str = Field(min_length=1, max_length=1_000_000, description="environment-2023-09")


class QueueEnvironmentOut(BaseModel):
    id: int
    name: str
    priority: int
    template: str
    created_by: str


def _env_out(env: QueueEnvironment) -> QueueEnvironmentOut:
    return QueueEnvironmentOut(
        id=env.id,
        name=env.name,
        priority=env.priority,
        template=env.template,
        created_by=env.created_by,
    )


@admin_router.get("/queue-environments", response_model=list[QueueEnvironmentOut])
async def admin_list_environments(farm: FarmDep, caller: CallerDep) -> list[QueueEnvironmentOut]:
    """The OpenJD environments every job submitted through Deadline Cloud's API enters."""
    return [_env_out(e) for e in await farm.call(farm.submitters.environments, caller)]


@admin_router.post("/queue-environments", status_code=201, response_model=QueueEnvironmentOut)
async def admin_add_environment(
    body: QueueEnvironmentIn, farm: FarmDep, caller: CallerDep
) -> QueueEnvironmentOut:
    """Admins: add a queue environment (validated as an OpenJD environment template)."""
    env = await farm.call(
        farm.submitters.add_environment,
        caller,
        name=body.name,
        priority=body.priority,
        template=body.template,
    )
    return _env_out(env)


@admin_router.delete("/queue-environments/{env_id}", status_code=204)
async def admin_delete_environment(env_id: EnvIdPath, farm: FarmDep, caller: CallerDep) -> None:
    await farm.call(farm.submitters.delete_environment, caller, env_id)
