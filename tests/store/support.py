"""Helpers of the store suites."""

from __future__ import annotations

from typing import Any

from thresher.core.chunk_plan import ChunkPlan, PlannedLayout
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import BlockSpec
from thresher.store.store import Store, WorkerRegistration
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
    return store.register_worker(facts, token_id=None, now=clock.now())


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
