"""The worker's poll: heartbeat, reports and claim in one call, held open until work appears."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from thresher.controller.farm import Farm
from thresher.core.model import Assignment
from thresher.schemas import api


def assignment_out(a: Assignment) -> api.AssignmentOut:
    return api.AssignmentOut(
        attempt_id=a.attempt_id,
        token=a.token,
        job_id=a.job_id,
        block=a.block_index,
        index=a.task_index,
        frames=list(a.frames),
        kind=a.kind,
        payload=dict(a.payload),
        env=dict(a.env),
        cwd=a.cwd,
        max_runtime_s=a.max_runtime_s,
    )


async def poll(
    farm: Farm,
    worker_id: int,
    body: api.PollIn,
    *,
    disconnected: Callable[[], Awaitable[bool]],
) -> api.PollOut:
    """Answer at once when there is work or something to stop; else wait for a notification
    up to the hold time, refreshing the worker's lease every heartbeat while it waits."""
    store, clock, settings = farm.store, farm.clock, farm.settings
    started = clock.now()
    store.touch_worker(worker_id, started)
    stale = farm.report(worker_id, body.output, body.finished)
    reported = [r.attempt_id for r in body.running] + [f.attempt_id for f in body.finished]
    store.lose_unreported(worker_id, reported, before=started, now=started)
    deadline = started + min(body.wait_s, settings.poll_hold_s)
    last_touch = started
    while True:
        generation = farm.notifier.generation
        stop = store.attempts_to_stop(worker_id)
        got = farm.claim(worker_id, body.want, body.ahead)
        now = clock.now()
        if got or stop or now >= deadline or await disconnected():
            break
        if now - last_touch >= settings.heartbeat_s:
            store.touch_worker(worker_id, now)
            last_touch = now
        await farm.notifier.wait(generation, min(deadline - now, settings.heartbeat_s))
    worker = store.get_worker(worker_id)
    return api.PollOut(
        assignments=[assignment_out(a) for a in got],
        stop=stop,
        stale=stale,
        heartbeat_s=settings.heartbeat_s,
        lease_s=settings.lease_s,
        enabled=worker.enabled,
    )
