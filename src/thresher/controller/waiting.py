"""Why a job waits: its status's own reason, else each block's, from the dispatch index."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from thresher.controller.auth import Caller
from thresher.controller.dispatch import DispatchIndex
from thresher.controller.dispatch.index import IndexedWorker
from thresher.controller.visibility import check_visible
from thresher.core.deps import upstream_tasks
from thresher.core.dispatch import LaneView
from thresher.core.frames import TaskLayout
from thresher.core.lanes import free_capacity, lane_loads, worker_capacity
from thresher.core.model import BlockRecord, JobRecord, TaskRecord
from thresher.core.states import JobStatus, TaskStatus
from thresher.core.why import Reason, WorkerLanes, block_waits
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Store

#: What holds a job as a whole, by status, when it is not a block's matter.
_JOB_REASONS = {
    JobStatus.PAUSED: "the job is paused",
    JobStatus.CANCELED: "the job was canceled",
    JobStatus.SUCCEEDED: "the job is done",
    JobStatus.FAILED: "the job failed",
}


@dataclass(frozen=True)
class BlockWait:
    """Why one block of a job has tasks that do not run."""

    block_index: int
    name: str
    waiting_tasks: int
    reasons: list[Reason]


@dataclass(frozen=True)
class JobWait:
    """Why a job is where it is: a reason of its own, or its blocks' reasons."""

    job: JobRecord
    reason: str | None
    blocks: list[BlockWait]


@dataclass(frozen=True)
class TaskWait:
    """Why a task is where it is, most specific reason first."""

    task: TaskRecord
    reasons: list[Reason]


#: Upstream tasks read per span when saying which a task waits on.
_UPSTREAM_LOOKED_AT = 50


def _task_state(task: TaskRecord) -> str:
    if task.status is TaskStatus.RUNNING:
        return f"it runs on {task.last_worker}" if task.last_worker else "it runs"
    return f"the task {task.status.value}"


class Waiting:
    """Answers "why does this job wait?" from the store and the dispatch index."""

    def __init__(self, store: Store, index: DispatchIndex) -> None:
        self.store, self.index = store, index

    def task_why(self, caller: Caller, job_id: int, block: int, index: int) -> TaskWait:
        """Why one task is where it is: its own state, the upstream tasks it waits on (frame
        by frame), the host a retry avoids, then its block's reasons."""
        check_visible(self.store, caller, job_id, self.store.jobs.get(job_id).spec.owner)
        task = self.store.tasks.get(job_id, block, index)
        if task.status not in (TaskStatus.WAITING, TaskStatus.QUEUED):
            return TaskWait(task, [Reason(_task_state(task))])
        wait = self.why(caller, job_id)
        if wait.reason is not None:
            return TaskWait(task, [Reason(wait.reason)])
        job = wait.job
        own = [Reason(text) for text in self._upstream(job, job.blocks[block], index)]
        if task.failures and task.last_worker:
            own.append(Reason(f"failed {task.failures} time(s); a retry avoids {task.last_worker}"))
        of_block = next((b.reasons for b in wait.blocks if b.block_index == block), [])
        return TaskWait(task, own + of_block)

    def _upstream(self, job: JobRecord, block: BlockRecord, index: int) -> list[str]:
        """The upstream tasks (frame by frame) that task `index` of `block` still waits on."""
        layout = self._layout(block)
        out = []
        for up_index in block.spec.after_frames:
            up = job.blocks[up_index]
            spans = upstream_tasks(layout, index, self._layout(up))
            pending = [
                i
                for span in spans
                for i in span[:_UPSTREAM_LOOKED_AT]
                if self.store.tasks.get(job.id, up.index, i).status is not TaskStatus.SUCCEEDED
            ]
            if pending:
                listed = ", ".join(str(i) for i in pending[:5]) + (
                    ", ..." if len(pending) > 5 else ""
                )
                out.append(f"waits on block {up.spec.name}: task(s) {listed} not done")
        return out

    def _layout(self, block: BlockRecord) -> TaskLayout:
        spec = block.spec
        return self.store.db.current_layout(block.id, spec.frames, spec.chunk, spec.priority_frames)

    def why(self, caller: Caller, job_id: int) -> JobWait:
        job = self.store.jobs.get(job_id)
        check_visible(self.store, caller, job_id, job.spec.owner)
        own = job.status_reason or _JOB_REASONS.get(job.status)
        if own is not None:
            return JobWait(job, own, [])
        state = self.index.current()
        by_block = {b.snap.block_id: b for b in state.blocks.values() if b.snap.job_id == job_id}
        held = self.store.workers.held_by_worker()
        workers = [
            _lanes(w, held.get(w.snap.id, [])) for w in state.workers.values() if w.snap.online
        ]
        farm = state.farm_view()
        out = []
        for block in job.blocks:
            waiting = block.counts.runnable
            indexed = by_block.get(block.id)
            if not waiting or indexed is None:
                continue
            reasons = block_waits(indexed.view, workers, farm)
            out.append(BlockWait(block.index, block.spec.name, waiting, reasons))
        return JobWait(job, None, out)


def _lanes(worker: IndexedWorker, held: list[HeldAttempt]) -> WorkerLanes:
    """The worker's lanes as dispatch would see them: each as if free, and those free now."""
    snap = worker.snap
    loads = lane_loads((h.lane, h.capacity, h.id) for h in held)
    total = worker_capacity(snap.capacity, snap.lanes)
    here = Counter(h.job_id for h in held)

    def view(lane: int, capacity: int) -> LaneView:
        return LaneView(
            worker_id=snap.id,
            hostname=snap.hostname,
            facts=worker.facts,
            lane=lane,
            engines=worker.engines.get(lane),
            free_capacity=capacity,
            running_by_job=here,
            unavailable=worker.unavailable,
        )

    lanes = range(snap.lanes)
    return WorkerLanes(
        name=snap.name,
        any_lane=[view(lane, total) for lane in lanes],
        free_lanes=[
            view(lane, free_capacity(total, loads, lane)) for lane in lanes if lane not in loads
        ],
    )
