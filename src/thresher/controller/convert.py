"""The one place that knows both the HTTP contract (`schemas`) and the domain records: request
bodies to domain values, records to response bodies.

Specs convert field by field by name (`BlockSpec` to `BlockOut`, `JobSpec` to `JobOut`), so a
new field of a spec shows in its response once the response model names it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

from thresher.controller.waiting import JobWait, TaskWait
from thresher.core.eta import job_estimates
from thresher.core.model import (
    Assignment,
    AttemptRecord,
    BlockRecord,
    Counts,
    JobRecord,
    TaskRecord,
    WorkerRecord,
)
from thresher.core.states import AttemptStatus
from thresher.schemas import api
from thresher.schemas import engines as engine_schema
from thresher.store.engines import EngineRecord, EngineRevisionRecord
from thresher.store.limits import LimitRecord
from thresher.store.records import FinishReport, WorkerRegistration
from thresher.store.scheduling import UserRecord

M = TypeVar("M", bound=BaseModel)
_new = object.__new__
_set = object.__setattr__


def built(model: type[M], values: dict[str, Any]) -> M:
    """`model.model_construct(**values)` for `values` that name every field of `model`, each of
    its field's type already (nothing is validated): what `model_construct` sets, without its
    walk over the fields in Python (7 against 46 us for an assignment, once per task handed
    out; `test_convert` keeps the two equal)."""
    out = _new(model)
    _set(out, "__dict__", values)
    _set(out, "__pydantic_fields_set__", set(values))
    _set(out, "__pydantic_extra__", None)
    _set(out, "__pydantic_private__", None)
    return out


def plain(value: Any) -> Any:
    """A domain value as JSON-shaped data: tuples as lists, mappings as dicts."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def fields_of(spec: Any, *, leave_out: tuple[str, ...] = ()) -> dict[str, Any]:
    """A spec's fields by name, JSON-shaped."""
    return {
        f.name: plain(getattr(spec, f.name))
        for f in dataclasses.fields(spec)
        if f.name not in leave_out
    }


# -- requests to domain values -------------------------------------------------------------------


def finish_report(fin: api.FinishIn) -> FinishReport:
    return FinishReport(
        attempt_id=fin.attempt_id,
        token=fin.token,
        status=AttemptStatus(fin.status),
        exit_code=fin.exit_code,
        peak_rss_bytes=fin.peak_rss_bytes,
        duration_s=fin.duration_s,
        message=fin.message,
        before_start=fin.before_start,
        cpu_s=fin.cpu_s,
    )


def registration(body: api.RegisterIn) -> WorkerRegistration:
    return WorkerRegistration(
        name=body.name,
        hostname=body.hostname,
        os=body.os,
        cores=body.cores,
        ram_bytes=body.ram_bytes,
        site=body.site,
        pools=tuple(body.pools),
        attributes=body.attributes,
        lanes=body.lanes,
        gpus=body.gpus,
        capacity=body.capacity,
        lane_engines={k: tuple(v) for k, v in body.lane_engines.items()},
        lane_gpus={k: tuple(v) for k, v in body.lane_gpus.items()},
    )


# -- records to responses ------------------------------------------------------------------------


def counts_out(c: Counts) -> api.Counts:
    return api.Counts(**c.as_dict())


def block_out(b: BlockRecord, eta_s: float | None = None) -> api.BlockOut:
    return api.BlockOut(
        index=b.index,
        counts=counts_out(b.counts),
        mean_runtime_s=b.mean_runtime_s,
        eta_s=eta_s,
        **fields_of(b.spec),
    )


def job_out(j: JobRecord) -> api.JobOut:
    """The job as shown, with estimates from its blocks' run times (see `core.eta`)."""
    estimate, blocks = job_estimates(j)
    return api.JobOut(
        id=j.id,
        status=j.status.value,
        status_reason=j.status_reason,
        created_at=j.created_at,
        finished_at=j.finished_at,
        counts=counts_out(j.counts),
        blocks=[block_out(b, e.eta_s) for b, e in zip(j.blocks, blocks, strict=True)],
        eta_s=estimate.eta_s,
        **fields_of(j.spec, leave_out=("blocks",)),
    )


def task_out(t: TaskRecord) -> api.TaskOut:
    return api.TaskOut(
        job_id=t.job_id,
        block=t.block_index,
        index=t.index,
        frames=list(t.frames),
        status=t.status.value,
        failures=t.failures,
        attempts=t.attempts,
        worker=t.last_worker,
        progress=t.progress,
        updated_at=t.updated_at,
    )


def attempt_out(a: AttemptRecord) -> api.AttemptOut:
    return api.AttemptOut(
        id=a.id,
        block=a.block_index,
        index=a.task_index,
        worker=a.worker,
        status=a.status.value,
        cancel_reason=a.cancel_reason,
        created_at=a.created_at,
        ended_at=a.ended_at,
        exit_code=a.exit_code,
        peak_rss_bytes=a.peak_rss_bytes,
        duration_s=a.duration_s,
        message=a.message,
        progress=a.progress,
        engine_revision=a.engine_revision,
        outputs=list(a.outputs),
        status_message=a.status_message,
        cpu_s=a.cpu_s,
    )


def assignment_out(a: Assignment) -> api.AssignmentOut:
    # Built from the store's own record, of the model's types already: not validated again
    # (a validation of its payload and environment costs more than half of what this costs,
    # once per task handed out).
    return built(
        api.AssignmentOut,
        {
            "attempt_id": a.attempt_id,
            "token": a.token,
            "job_id": a.job_id,
            "block": a.block_index,
            "index": a.task_index,
            "frames": list(a.frames),
            "kind": a.kind,
            "payload": dict(a.payload),
            "env": dict(a.env),
            "cwd": a.cwd,
            "max_runtime_s": a.max_runtime_s,
            "engine": a.engine,
            "engine_revision": a.engine_revision,
            "engine_hash": a.engine_hash,
            "lane": a.lane,
        },
    )


def worker_out(w: WorkerRecord) -> api.WorkerOut:
    return api.WorkerOut(
        id=w.id,
        name=w.name,
        hostname=w.hostname,
        os=w.os,
        cores=w.cores,
        ram_bytes=w.ram_bytes,
        site=w.site,
        pools=list(w.pools),
        attributes=dict(w.attributes),
        lanes=w.lanes,
        enabled=w.enabled,
        status=w.status.value,
        last_seen=w.last_seen,
        running=w.running,
        gpus=w.gpus,
        capacity=w.capacity,
        capacity_used=w.capacity_used,
        lanes_detail=[
            api.LaneOut(
                index=lane,
                engines=None if engines is None else list(engines),
                overridden=lane in w.lane_overrides,
                gpus=list(w.lane_gpus.get(lane, ())),
            )
            for lane, engines in sorted(w.lane_engines.items())
        ],
        nimby=w.nimby,
        local_nimby=w.local_nimby,
        sick_since=w.sick_since,
        pools_declared=None if w.pools_declared is None else list(w.pools_declared),
    )


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


def engine_out(record: EngineRecord) -> engine_schema.EngineOut:
    current = record.current
    settings = current.settings if current else {}
    colour = settings.get("colour")
    return engine_schema.EngineOut(
        description=str(settings.get("description") or ""),
        vendor=str(settings.get("vendor") or ""),
        colour=colour if isinstance(colour, str) and len(colour) <= 40 else None,
        name=record.name,
        revision=current.revision if current else None,
        builtin=bool(current and current.builtin),
        has_builtin=record.has_builtin,
        latest_revision=record.latest_revision,
        enabled=record.enabled,
        type=str(current.settings.get("type")) if current else None,
        source_hash=current.source_hash if current else None,
        settings=dict(current.settings) if current else {},
        parameters=dict(current.parameters) if current else {},
        published_by=current.published_by if current else None,
        published_at=current.published_at if current else None,
        updated_at=record.updated_at,
    )


def engine_detail_out(
    record: EngineRecord, revisions: list[EngineRevisionRecord], source: str | None
) -> engine_schema.EngineDetail:
    return engine_schema.EngineDetail(
        **engine_out(record).model_dump(),
        source=source,
        revisions=[
            engine_schema.EngineRevisionOut(
                revision=r.revision,
                builtin=r.builtin,
                current=r.revision == record.current_revision,
                source_hash=r.source_hash,
                published_by=r.published_by,
                published_at=r.published_at,
            )
            for r in revisions
        ],
    )


def task_why_out(wait: TaskWait) -> api.TaskWhyOut:
    task = wait.task
    return api.TaskWhyOut(
        job_id=task.job_id,
        block=task.block_index,
        index=task.index,
        status=task.status.value,
        reasons=[api.ReasonOut(text=r.text, workers=r.workers) for r in wait.reasons],
    )


def why_out(wait: JobWait) -> api.WhyOut:
    return api.WhyOut(
        job_id=wait.job.id,
        status=wait.job.status.value,
        reason=wait.reason,
        blocks=[
            api.BlockWaitOut(
                block=b.block_index,
                name=b.name,
                waiting_tasks=b.waiting_tasks,
                reasons=[api.ReasonOut(text=r.text, workers=r.workers) for r in b.reasons],
            )
            for b in wait.blocks
        ],
    )
