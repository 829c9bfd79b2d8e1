"""The worker's poll: heartbeat, reports and claim in one call, held open until work appears."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from thresher.controller.farm import Farm, legacy_lanes
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
        engine=a.engine,
        engine_revision=a.engine_revision,
        engine_hash=a.engine_hash,
        lane=a.lane,
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
    if body.lanes is not None:
        free, ahead = list(body.lanes), list(body.ahead_lanes)
    else:
        free, ahead = legacy_lanes(body.want, body.ahead)
    # The reports, the reconciliation and the first claim in one transaction: one commit per
    # poll, and a failure midway leaves nothing half-written (the worker sends it all again).
    with farm.transaction():
        farm.heartbeat(worker_id, started)
        stale = farm.report(worker_id, body.output, body.finished)
        farm.scheduling.note_local_nimby(worker_id, body.nimby)
        reported = {r.attempt_id for r in body.running} | {f.attempt_id for f in body.finished}
        held = store.worker_held(worker_id)
        if any(h.created_at < started and h.id not in reported for h in held):
            store.lose_unreported(worker_id, reported, before=started, now=started)
            farm.dispatch_index.invalidate()  # their tasks are back in the queue
            held = store.worker_held(worker_id)
        # What the worker runs that the store no longer holds (deleted, lost, ended) must die.
        running = {r.attempt_id for r in body.running} - {f.attempt_id for f in body.finished}
        stale = sorted(set(stale) | (running - {h.id for h in held}))
        generation = farm.notifier.generation
        got = farm.dispatch(worker_id, free_lanes=free, ahead_lanes=ahead, held=held)
    deadline = started + min(body.wait_s, settings.poll_hold_s)
    last_touch = started
    while True:
        stop = sorted({h.id for h in held if h.cancel_reason is not None} | set(got.preempted))
        now = clock.now()
        if got.assignments or stop or now >= deadline or farm.notifier.closing:
            break
        if await disconnected():
            break
        if now - last_touch >= settings.heartbeat_s:
            farm.heartbeat(worker_id, now)
            last_touch = now
        # A change the dispatch index has yet to see (a finish) wakes us when it is seen.
        pending = farm.dispatch_index.pending_in()
        wait = min(deadline - now, settings.heartbeat_s, pending if pending is not None else 1e9)
        if await farm.notifier.wait(generation, max(wait, 0.005)):
            held = store.worker_held(worker_id)
        generation = farm.notifier.generation
        with farm.transaction():
            got = farm.dispatch(worker_id, free_lanes=free, ahead_lanes=ahead, held=held)
    nimby, _ = farm.dispatch_index.worker_state(worker_id)
    return api.PollOut(
        assignments=[assignment_out(a) for a in got.assignments],
        stop=stop,
        stale=stale,
        heartbeat_s=settings.heartbeat_s,
        lease_s=settings.lease_s,
        enabled=farm.dispatch_index.worker_enabled(worker_id),
        nimby=nimby.value if nimby else None,
    )
