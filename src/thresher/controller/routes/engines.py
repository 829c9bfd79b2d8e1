"""Engine registry routes: people list, show, and (admins) publish, enable, disable and roll
back engines; workers fetch the source of the revision a task names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from thresher.controller.convert import engine_detail_out, engine_out
from thresher.controller.engine_check import check_engine_source
from thresher.controller.routes.deps import MAX_INDEX, CallerDep, FarmDep
from thresher.schemas import engines as schema

router = APIRouter(prefix="/api/v1/engines", tags=["engines"])
agent_router = APIRouter(prefix="/api/v1/agent/engines", tags=["agent"])

EngineName = Annotated[str, Path(min_length=1, max_length=64, description="engine name")]


async def _detail(farm: FarmDep, caller: CallerDep, name: str) -> schema.EngineDetail:
    def detail() -> schema.EngineDetail:
        record, revisions = farm.engines.show(caller, name)
        return engine_detail_out(record, revisions, farm.engines.current_source(record))

    return await farm.call(detail)


@router.get("", response_model=schema.EngineList)
async def list_engines(
    farm: FarmDep,
    caller: CallerDep,
    where: Annotated[
        str | None, Query(description="conditions: type=compute and enabled=true")
    ] = None,
) -> schema.EngineList:
    return schema.EngineList(
        engines=[
            engine_out(r) for r in await farm.call(farm.engines.list_engines, caller, where=where)
        ]
    )


@router.get("/{name}", response_model=schema.EngineDetail)
async def show(name: EngineName, farm: FarmDep, caller: CallerDep) -> schema.EngineDetail:
    return await _detail(farm, caller, name)


@router.get("/{name}/revisions/{revision}", response_model=schema.EngineSourceOut)
async def revision_source(
    name: EngineName,
    revision: Annotated[int, Path(ge=0, le=MAX_INDEX)],
    farm: FarmDep,
    caller: CallerDep,
) -> schema.EngineSourceOut:
    record, source = await farm.call(farm.engines.source, caller, name, revision)
    return schema.EngineSourceOut(
        name=name, revision=revision, source_hash=record.source_hash, source=source
    )


@router.post("/{name}/revisions", status_code=201, response_model=schema.EngineDetail)
async def publish(
    name: EngineName, body: schema.EnginePublishIn, farm: FarmDep, caller: CallerDep
) -> schema.EngineDetail:
    """Admins: publish ``source`` as the next revision of ``name`` and make it current. The
    script is checked in a separate process with a time limit, never in the controller."""
    caller.require("admin")  # before anything runs
    described = await check_engine_source(
        name, body.source, timeout_s=farm.settings.engine_check_timeout_s
    )
    await farm.call(farm.engines.publish_checked, caller, name, described)
    return await _detail(farm, caller, name)


@router.post("/{name}/enable", response_model=schema.EngineDetail)
async def enable(name: EngineName, farm: FarmDep, caller: CallerDep) -> schema.EngineDetail:
    await farm.call(farm.engines.set_enabled, caller, name, True)
    return await _detail(farm, caller, name)


@router.post("/{name}/disable", response_model=schema.EngineDetail)
async def disable(name: EngineName, farm: FarmDep, caller: CallerDep) -> schema.EngineDetail:
    """Admins: new jobs naming the engine are refused; queued tasks still run."""
    await farm.call(farm.engines.set_enabled, caller, name, False)
    return await _detail(farm, caller, name)


@router.post("/{name}/rollback", response_model=schema.EngineDetail)
async def rollback(
    name: EngineName, body: schema.EngineRollbackIn, farm: FarmDep, caller: CallerDep
) -> schema.EngineDetail:
    """Admins: make an existing revision current again (0: the built-in one)."""
    await farm.call(farm.engines.rollback, caller, name, body.revision)
    return await _detail(farm, caller, name)


@agent_router.get("/{name}/{revision}", response_model=schema.EngineSourceOut)
async def agent_source(
    name: EngineName,
    revision: Annotated[int, Path(ge=0, le=MAX_INDEX)],
    farm: FarmDep,
    caller: CallerDep,
) -> schema.EngineSourceOut:
    """Workers: the source of the revision an assignment names (cached by its hash)."""
    source, digest = await farm.call(farm.engines.agent_source, caller, name, revision)
    return schema.EngineSourceOut(name=name, revision=revision, source_hash=digest, source=source)
