"""Domain records to response bodies: the one place that knows both."""

from __future__ import annotations

from thresher.core.model import AttemptRecord, Counts, JobRecord, TaskRecord, WorkerRecord
from thresher.schemas import api


def counts_out(c: Counts) -> api.Counts:
    return api.Counts(**c.as_dict())


def job_out(j: JobRecord) -> api.JobOut:
    return api.JobOut(
        id=j.id,
        name=j.name,
        owner=j.owner,
        priority=j.priority,
        kind=j.kind,
        status=j.status.value,
        status_reason=j.status_reason,
        paused=j.paused,
        after=list(j.after),
        env=dict(j.env),
        cwd=j.cwd,
        payload=dict(j.payload),
        created_at=j.created_at,
        finished_at=j.finished_at,
        counts=counts_out(j.counts),
        blocks=[
            api.BlockOut(
                index=b.index,
                name=b.name,
                frames=b.frames,
                chunk=b.chunk,
                priority_frames=b.priority_frames,
                retries=b.retries,
                max_runtime_s=b.max_runtime_s,
                counts=counts_out(b.counts),
                mean_runtime_s=b.mean_runtime_s,
                host_filters=b.host_filters,
                engine=b.engine,
                capacity=b.capacity,
                limits=list(b.limits),
                min_runtime_s=b.min_runtime_s,
                preview_every=b.preview_every,
                after=list(b.after),
                after_frames=list(b.after_frames),
                errors_to_avoid=b.errors_to_avoid,
                forgive_s=b.forgive_s,
            )
            for b in j.blocks
        ],
        filters=j.filters,
        max_running=j.max_running,
        max_running_per_host=j.max_running_per_host,
        preempt=j.preempt,
        after_name=j.after_name,
        after_global=j.after_global,
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
            )
            for lane, engines in sorted(w.lane_engines.items())
        ],
        nimby=w.nimby,
        local_nimby=w.local_nimby,
        sick_since=w.sick_since,
        pools_declared=None if w.pools_declared is None else list(w.pools_declared),
    )
