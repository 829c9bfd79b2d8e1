"""The web monitor's routes: task runs and range actions, resource history, statistics,
stuck tasks, estimates, and the event stream (server-sent events)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from thresher.controller.errors import Unauthorized
from thresher.controller.events import stream
from thresher.controller.routes.deps import (
    MAX_ID,
    BlockPath,
    CallerDep,
    FarmDep,
    JobIdPath,
    get_caller,
    get_farm,
)
from thresher.schemas import monitor as schema
from thresher.store.stats import QueueWait, StatRow

router = APIRouter(prefix="/api/v1", tags=["monitor"])
Seconds = Annotated[float, Query(ge=0, le=1e11)]


@router.get("/jobs/{job_id}/blocks/{block}/runs", response_model=schema.BlockRunsOut)
async def runs(
    job_id: JobIdPath, block: BlockPath, farm: FarmDep, caller: CallerDep
) -> schema.BlockRunsOut:
    """The block's task states as runs of one state in index order: what the task grid and
    the frame strip draw, a few runs even for 100,000 tasks."""
    total, found, frames = await farm.call(farm.monitor.runs, caller, job_id, block)
    return schema.BlockRunsOut(
        job_id=job_id,
        block=block,
        task_count=total,
        runs=[
            schema.RunOut(
                status=r.status,
                first=r.first,
                last=r.last,
                first_frames=frames.get(r.first, []),
                last_frames=frames.get(r.last, []),
            )
            for r in found
        ],
    )


@router.post("/jobs/{job_id}/blocks/{block}/range", response_model=schema.RangeOut)
async def act_on_range(
    job_id: JobIdPath, block: BlockPath, body: schema.RangeIn, farm: FarmDep, caller: CallerDep
) -> schema.RangeOut:
    """Retry, skip or cancel tasks `first`..`last` of a block (at most 10,000), in one
    transaction; tasks the action does not apply to are counted as `unchanged`."""
    affected, unchanged = await farm.call(
        farm.monitor.act_on_range,
        caller,
        job_id,
        block,
        first=body.first,
        last=body.last,
        action=body.action,
    )
    return schema.RangeOut(affected=affected, unchanged=unchanged)


@router.get("/jobs/{job_id}/eta", response_model=schema.EtaOut)
async def eta(job_id: JobIdPath, farm: FarmDep, caller: CallerDep) -> schema.EtaOut:
    """Seconds until the job is done, from its blocks' measured run times (else similar
    blocks', else the farm's usual for the engine) and what its running tasks have run."""
    job, blocks = await farm.call(farm.monitor.estimate, caller, job_id)
    return schema.EtaOut(
        job_id=job_id, eta_s=job.eta_s, work_s=job.work_s, blocks=[b.eta_s for b in blocks]
    )


@router.get("/workers/{name}/samples", response_model=schema.SampleHistory)
async def samples(
    name: str,
    farm: FarmDep,
    caller: CallerDep,
    since: Seconds = 0.0,
    until: Seconds = 1e11,
) -> schema.SampleHistory:
    """A worker's resource samples between `since` and `until` (epoch seconds), oldest
    first: raw for the last hour, then minute and ten-minute averages."""
    points = await farm.call(farm.monitor.history, caller, name, since=since, until=until)
    return schema.SampleHistory(
        worker=name,
        points=[schema.SamplePoint(at=a, step_s=s, values=v) for a, s, v in points],
    )


@router.get("/samples/latest", response_model=schema.LatestSamples)
async def latest(farm: FarmDep, caller: CallerDep) -> schema.LatestSamples:
    return schema.LatestSamples(samples=await farm.call(farm.monitor.latest, caller))


@router.get("/lanes", response_model=schema.LaneRunList)
async def lanes(farm: FarmDep, caller: CallerDep) -> schema.LaneRunList:
    """What every lane of the farm runs now (the farm page's lanes)."""
    rows = await farm.call(farm.monitor.lanes, caller)
    return schema.LaneRunList(lanes=[schema.LaneRunOut(**r) for r in rows])


def _rows(rows: list[StatRow]) -> list[schema.StatRowOut]:
    return [schema.StatRowOut(**r.as_dict()) for r in rows]


def _waits(rows: list[QueueWait]) -> list[schema.QueueWaitOut]:
    return [schema.QueueWaitOut(**w.as_dict()) for w in rows]


@router.get("/stats", response_model=schema.StatsOut)
async def stats(
    farm: FarmDep, caller: CallerDep, since: Seconds = 0.0, until: Seconds | None = None
) -> schema.StatsOut:
    """Frames and render hours by engine, user, site, host and day; failure rates; queue
    waits by user: from the attempts that ended in [since, until)."""
    found = await farm.call(farm.monitor.stats, caller, since=since, until=until)
    return schema.StatsOut(
        since=found.since,
        until=found.until,
        by_engine=_rows(found.by["engine"]),
        by_user=_rows(found.by["user"]),
        by_site=_rows(found.by["site"]),
        by_host=_rows(found.by["host"]),
        by_day=_rows(found.by["day"]),
        queue_wait_by_user=_waits(found.queue_waits),
    )


@router.get("/stuck", response_model=schema.StuckList)
async def stuck(
    farm: FarmDep,
    caller: CallerDep,
    factor: Annotated[float, Query(ge=1.0, le=1000.0)] = 3.0,
    silent_s: Annotated[float, Query(ge=1.0, le=1e7)] = 300.0,
) -> schema.StuckList:
    """Running tasks past `factor` times their block's mean run time, or silent (no output
    nor progress) for `silent_s`."""
    rows = await farm.call(farm.monitor.stuck, caller, factor=factor, silent_s=silent_s)
    return schema.StuckList(
        tasks=[
            schema.StuckOut(
                attempt_id=r["id"],
                job_id=r["job_id"],
                job_name=r["job_name"],
                block=r["block"],
                index=r["index"],
                worker=r["worker"],
                running_s=r["running_s"],
                mean_s=r["mean_s"],
                silent_s=r["silent_s"],
                why=r["why"],
            )
            for r in rows
        ]
    )


@router.post("/agent/sample", status_code=204, tags=["agent"])
async def idle_sample(body: schema.SampleIn, farm: FarmDep, caller: CallerDep) -> None:
    """Workers: a resource sample sent on its own while the worker's poll is held (an idle
    worker; a busy one's polls carry theirs)."""
    await farm.call(farm.idle_samples.record, caller, body.sample)


@router.post("/events/ticket", response_model=schema.TicketOut)
async def ticket(farm: FarmDep, caller: CallerDep) -> schema.TicketOut:
    """A one-use ticket (60 s) to open the event stream from a browser's EventSource, which
    cannot send the Authorization header."""
    return schema.TicketOut(ticket=farm.events.tickets.issue(caller), expires_in_s=60.0)


@router.get("/events/stream", response_class=StreamingResponse, include_in_schema=False)
async def events(
    request: Request,
    ticket: Annotated[str | None, Query(max_length=100)] = None,
    job: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
) -> StreamingResponse:
    """Server-sent events: `job`, `worker` (with its newest sample), and for `job` its
    `task` moves and `log` lines (the newest line id per attempt). Authorised by the bearer
    token or by a `ticket` from POST /events/ticket."""
    farm = await get_farm(request)
    if ticket is not None:
        caller = farm.events.tickets.redeem(ticket)
        if caller is None:
            raise Unauthorized("the ticket is not known, was used, or expired")
    else:
        caller = await get_caller(request)
    client = await farm.events.open(job, caller)
    return StreamingResponse(
        stream(farm.events, client),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
