"""The claim: tasks for a worker's lanes, chosen over the dispatch index and claimed in the store.

For each free lane, `core.dispatch.rank` orders the blocks the lane may take and the store
claims a task of the best one atomically (`Store.claim`); a refusal moves on to the next block.
Lanes that may hold short tasks ahead get them in the same claim (`core.ahead`). With lanes
left unserved, `core.dispatch.preemptions` decides which running attempts a dedicated job with
`preempt` takes over; the store marks them to stop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from thresher.controller.dispatch.index import (
    DispatchIndex,
    IndexedBlock,
    IndexedWorker,
    IndexState,
)
from thresher.controller.dispatch.locality import Locality
from thresher.core.ahead import tasks_ahead
from thresher.core.clock import Clock
from thresher.core.dispatch import LaneView, RunningView, preemptions, rank, refusal
from thresher.core.filters import dedicated_rank
from thresher.core.gpu_lanes import lane_facts
from thresher.core.lanes import free_capacity, lane_loads, worker_capacity
from thresher.core.model import Assignment
from thresher.store.snapshot import HeldAttempt
from thresher.store.store import Refused, Store

Loads = dict[int | tuple[str, int], int]
"""Capacity in use per lane (and per attempt without a lane), as `core.lanes` counts it."""


@dataclass(frozen=True)
class Dispatch:
    """What one poll hands a worker, and the attempts it must stop to make room (preemption)."""

    assignments: list[Assignment] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)


@dataclass
class _Worker:
    """The worker being served: its lanes' loads and its running tasks per job, as they grow."""

    entry: IndexedWorker
    total: int  # its capacity
    loads: Loads
    here: Counter[int]

    def lane(self, lane: int) -> LaneView:
        return LaneView(
            worker_id=self.entry.snap.id,
            hostname=self.entry.snap.hostname,
            facts=lane_facts(self.entry.facts, self.entry.snap.lane_gpus, lane),
            lane=lane,
            engines=self.entry.engines.get(lane),
            free_capacity=free_capacity(self.total, self.loads, lane),
            running_by_job=self.here,
        )


class Dispatcher:
    """Claims tasks for workers' lanes over one dispatch index."""

    def __init__(self, store: Store, clock: Clock, index: DispatchIndex) -> None:
        self.store = store
        self.clock = clock
        self.index = index
        self.locality = Locality(store)  # site-aware: where each job's data is

    def dispatch(
        self,
        worker_id: int,
        *,
        free_lanes: Sequence[int],
        ahead_lanes: Sequence[int],
        held: Sequence[HeldAttempt],
    ) -> Dispatch:
        """Claim a task for each free lane, then short tasks for the lanes that may hold one
        ahead; then decide which attempts a preempting dedicated job takes over."""
        state = self.index.current()
        entry = state.workers.get(worker_id)
        if entry is None:  # registered after the index was built
            self.index.invalidate()
            state = self.index.current()
            entry = state.workers.get(worker_id)
        if entry is None or entry.unavailable is not None:
            return Dispatch()
        loads = lane_loads((h.lane, h.capacity, h.id) for h in held) if held else {}
        used_lanes = [k for k in loads if isinstance(k, int)] + [*free_lanes, *ahead_lanes]
        total = worker_capacity(
            entry.snap.capacity, entry.snap.lanes, max(used_lanes, default=-1) + 1
        )
        worker = _Worker(
            entry, total, loads, Counter(h.job_id for h in held) if held else Counter()
        )
        retry_elsewhere_s = self.index.settings.retry_elsewhere_s
        avoid_since = self.clock.now() - retry_elsewhere_s if state.online > 1 else None
        out: list[Assignment] = []
        unserved: list[int] = []
        # A free lane gets a task now, and short tasks to hold ahead from the same block in the
        # same claim; lanes that are busy may still take short tasks to hold ahead.
        extra = Counter(ahead_lanes) if ahead_lanes else {}
        # a lane's attempts: one runs, the rest wait
        holding = Counter(h.lane for h in held) if held else Counter()
        plan = [(lane, False, extra.pop(lane, 0)) for lane in free_lanes]
        plan += [(lane, True, n) for lane, n in extra.items()]
        while plan:
            lane, ahead, more = plan.pop(0)
            claimed = self._claim_for(
                state,
                worker,
                lane,
                ahead=ahead,
                more=more,
                holding=max(0, holding[lane] - 1) if ahead else 0,
                avoid_since=avoid_since,
            )
            if claimed is None:
                if not ahead:
                    unserved.append(lane)
                continue
            got, capacity = claimed
            out += got
            loads[lane] = max(loads.get(lane, 0), capacity)
            worker.here.update(a.job_id for a in got)
            if not ahead and more and len(got) == 1:  # the task was long: try short ones
                plan.append((lane, True, more))
        site = entry.snap.site
        self.locality.note_poll(
            worker_id, site, free=len(unserved), lanes=entry.snap.lanes, now=self.clock.now()
        )
        return Dispatch(out, self._preempt(state, worker, unserved, held))

    def _claim_for(
        self,
        state: IndexState,
        worker: _Worker,
        lane: int,
        *,
        ahead: bool,
        more: int,
        holding: int,
        avoid_since: float | None,
    ) -> tuple[list[Assignment], int] | None:
        """The best block's task for the lane (and up to `more` of its short tasks to hold
        ahead), and the capacity each holds. `ahead`: short tasks only, `more` of them at
        least, topping up the `holding` tasks the lane holds ahead already (`core.ahead`)."""
        view = worker.lane(lane)
        hostname = worker.entry.snap.hostname
        farm = state.live_view  # nothing changes the counts while a ranking runs
        tried: set[int] = set()
        while True:
            pool = [
                b.view
                for b in state.blocks.values()
                if not b.exhausted
                and b.view.block_id not in tried
                and b.view.runnable > 0
                and (b.short or not ahead)
                and self._near_data(worker, b)
            ]
            if len(pool) == 1:  # `rank` of one block: the block, unless it is refused
                ranked = pool if refusal(pool[0], view, farm) is None else []
            else:
                ranked = rank(view, pool, farm)
            if not ranked:
                return None
            block = state.blocks[ranked[0].block_id]
            tried.add(block.view.block_id)
            # Ahead: short tasks only, as many as cover a fraction of a second of the block's
            # mean run time when the worker asks for any (`core.ahead`); a free lane: one, and
            # those too if the block's tasks are short.
            held_ahead = tasks_ahead(more, block.mean_runtime_s, holding=holding)
            count = held_ahead if ahead else 1 + held_ahead
            outcome = self.store.dispatch.claim(
                block.cand,
                worker_id=worker.entry.snap.id,
                now=self.clock.now(),
                avoid_failed_since=avoid_since,
                lane=lane,
                hostname=hostname,
                count=min(count, block.view.runnable),
            )
            got = outcome.assignments
            if got:
                self.index.note_claims(state, block, hostname, got)
                return got, block.view.capacity
            if outcome.refused is Refused.NO_TASK:
                # Requeued tasks this worker just failed may still suit other workers.
                if avoid_since is None or block.snap.n_queued <= 0:
                    block.exhausted = True
            else:
                self.index.invalidate(at_once=False)  # our counts were behind the store's

    def _near_data(self, worker: _Worker, block: IndexedBlock) -> bool:
        """Site-aware dispatch: a worker at a site lacking the job's data leaves its tasks to
        lanes where the data is, while that is expected to be quicker (`core.locality`)."""
        return self.locality.allows(
            worker.entry.snap.site,
            block.view.job_id,
            mean_runtime_s=block.mean_runtime_s,
            remaining=block.view.runnable,
            now=self.clock.now(),
        )

    def _preempt(
        self,
        state: IndexState,
        worker: _Worker,
        free_lanes: Sequence[int],
        held: Sequence[HeldAttempt],
    ) -> list[int]:
        """The attempts marked to stop so that a dedicated job with `preempt` gets the worker."""
        busy = sorted({h.lane for h in held if h.lane is not None})
        if not busy:
            return []
        facts = worker.entry.facts
        blocks = [b.view for b in state.blocks.values() if not b.exhausted]
        if not any(b.preempt and dedicated_rank(b.filters, facts) == 0 for b in blocks):
            return []
        running = [
            RunningView(
                attempt_id=h.id,
                job_id=h.job_id,
                lane=h.lane,
                job_priority=h.job_priority,
                started_at=h.created_at,
                stoppable=h.cancel_reason is None,
            )
            for h in held
            if h.lane is not None
        ]
        chosen = preemptions(
            [worker.lane(lane) for lane in free_lanes],
            [worker.lane(lane) for lane in busy],
            running,
            blocks,
            state.live_view,
        )
        if not chosen:
            return []
        return self.store.dispatch.request_stop(chosen, "preempted")
