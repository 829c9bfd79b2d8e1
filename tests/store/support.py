"""Helpers of the store suites."""

from __future__ import annotations

from typing import Any

from thresher.core.chunk_plan import ChunkPlan, PlannedLayout
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import Assignment, BlockSpec
from thresher.store.store import ClaimCandidate, Store, WorkerRegistration
from thresher.testing import FakeClock


def add_worker(
    store: Store, name: str, clock: FakeClock, *, hostname: str | None = None, lanes: int = 2
) -> int:
    """Register a 4-core, 8 GB Linux worker at site `hq`; returns its id."""
    facts = WorkerRegistration(
        name=name,
        hostname=hostname or name,
        os="linux",
        cores=4,
        ram_bytes=8 << 30,
        site="hq",
        pools=(),
        attributes={},
        lanes=lanes,
    )
    return store.workers.register(facts, token_id=None, now=clock.now())


def block(name: str, frames: str, chunk: int, **fields: Any) -> BlockSpec:
    """A block spec as compiling a submission makes it: its task count from its frames."""
    if fields.get("chunking") is not None:
        count = PlannedLayout.of(ChunkPlan.from_json(fields["chunking"])).task_count
    else:
        priority = fields.get("priority_frames")
        count = TaskLayout(
            FrameSet.parse(frames),
            chunk,
            priority_frames=FrameSet.parse(priority) if priority else None,
        ).task_count
    return BlockSpec(name=name, frames=frames, chunk=chunk, task_count=count, **fields)


def candidates(store: Store, *, now: float = 0.0) -> list[ClaimCandidate]:
    """Blocks with tasks to take, best job first, as the controller makes them from the
    dispatch snapshot (paused jobs and jobs waiting on others left out)."""
    snap = store.snapshot.read(now=now, errors_since=now)
    ready = [
        b
        for b in snap.blocks
        if b.runnable > 0 and not b.paused and b.job_id not in snap.job_waiting
    ]
    ready.sort(key=lambda b: (-b.priority, b.created_at, b.job_id, b.index))
    caps = {name: user.max_running for name, user in snap.users.items()}
    return [ClaimCandidate(b, caps.get(b.owner)) for b in ready]


def claim(
    store: Store, worker_id: int, *, now: float, avoid_failed_since: float | None = None
) -> Assignment | None:
    """One task for the worker, from the best candidate that has one."""
    for cand in candidates(store, now=now):
        outcome = store.dispatch.claim(
            cand, worker_id=worker_id, now=now, avoid_failed_since=avoid_failed_since
        )
        if outcome.assignment is not None:
            return outcome.assignment
    return None
