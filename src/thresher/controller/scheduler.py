"""The dispatch index: what may run where, kept in memory and rebuilt from the store.

The database stays the truth. The index is a snapshot (blocks of active jobs, workers, running
attempts, limits, user settings, host errors) turned into the pure views of `core.dispatch`, so
that a poll costs one ranking in memory and one claim transaction per task handed out. It is
rebuilt at once after a change that alters eligibility (a submission, a worker or limit edited),
within `index_min_age_s` after other changes (finishes), and at least every `index_max_age_s`
(to see what other controllers sharing one PostgreSQL did). Between rebuilds, claims made here
update its counts. Whatever the index believes, the claim re-checks caps, limits and the task
atomically in the store, so a stale index costs a wasted try, never a broken rule.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from thresher.controller.settings import ControllerSettings
from thresher.core.ahead import is_short, tasks_ahead
from thresher.core.clock import Clock
from thresher.core.deps import blocks_waiting
from thresher.core.dispatch import (
    BlockView,
    FarmView,
    LaneView,
    RunningView,
    preemptions,
    rank,
)
from thresher.core.error_hosts import ErrorPolicy, avoided_until, sick_since
from thresher.core.errors import InvalidInput
from thresher.core.filters import (
    FilterSet,
    OperatingSystem,
    WorkerFacts,
    dedicated_rank,
    parse_filters,
)
from thresher.core.lanes import (
    Nimby,
    effective_engines,
    free_capacity,
    lane_loads,
    worker_capacity,
)
from thresher.core.model import Assignment
from thresher.core.ordering import LimitState
from thresher.store.snapshot import DispatchSnapshot, HeldAttempt, SnapBlock, SnapWorker
from thresher.store.store import ClaimCandidate, Refused, Store


def block_policy(
    settings: ControllerSettings, *, errors_to_avoid: int | None, forgive_s: float | None
) -> ErrorPolicy:
    """The error-host policy of a block: its own thresholds, else the controller's."""
    return ErrorPolicy(
        errors_to_avoid=errors_to_avoid or settings.errors_to_avoid,
        forgive_s=forgive_s or settings.forgive_s,
        sick_jobs=settings.sick_jobs,
        sick_window_s=settings.sick_window_s,
    )


def controller_policy(settings: ControllerSettings) -> ErrorPolicy:
    return ErrorPolicy(
        errors_to_avoid=settings.errors_to_avoid,
        forgive_s=settings.forgive_s,
        sick_jobs=settings.sick_jobs,
        sick_window_s=settings.sick_window_s,
    )


def worker_facts(w: SnapWorker) -> WorkerFacts:
    return WorkerFacts.create(
        w.hostname,
        w.site,
        os=_os_or_linux(w.os),
        cores=w.cores,
        ram_bytes=w.ram_bytes,
        gpus=w.gpus,
        pools=w.pools,
        labels=w.labels,
    )


def _os_or_linux(name: str) -> str:
    # Filters know linux, windows and mac; another Unix (a BSD) is closest to linux for `os:`.
    try:
        return OperatingSystem.parse(name).value
    except ValueError:
        return OperatingSystem.LINUX.value


@dataclass
class _Block:
    snap: SnapBlock
    view: BlockView
    cand: ClaimCandidate
    exhausted: bool = False
    # Run times of the successes seen here since the snapshot: a block's first successes make
    # its tasks short (held ahead) at once, not at the next rebuild.
    runtime_sum: float = 0.0
    runtime_n: int = 0

    @property
    def mean_runtime_s(self) -> float | None:
        n = self.snap.runtime_n + self.runtime_n
        return (self.snap.runtime_sum + self.runtime_sum) / n if n else None

    @property
    def short(self) -> bool:
        return is_short(self.mean_runtime_s)


@dataclass
class _Worker:
    snap: SnapWorker
    facts: WorkerFacts
    engines: dict[int, frozenset[str] | None]
    unavailable: str | None
    nimby: Nimby | None
    sick_since: float | None


@dataclass
class _Index:
    built_at: float
    blocks: dict[int, _Block]
    workers: dict[int, _Worker]
    running_by_job: Counter[int]
    running_by_user: Counter[str]
    limits: dict[str, LimitState]
    pool_includers: Counter[str]
    online: int
    expires_at: float = math.inf  # when an avoided host is forgiven (the index must change)

    def farm_view(self) -> FarmView:
        return FarmView(
            running_by_job=self.running_by_job,
            running_by_user=self.running_by_user,
            limits=self.limits,
            pool_includers=self.pool_includers,
        )


@dataclass(frozen=True)
class _Claimed:
    """An attempt claimed here, remembered to follow its finish."""

    block_id: int
    block_index: int
    job_id: int
    owner: str
    hostname: str
    limits: tuple[str, ...]


def _count_units(index: _Index, names: Sequence[str], hostname: str, step: int) -> None:
    """Units of limits taken (+1) or given back (-1) by this controller since the snapshot."""
    for name in names:
        limit = index.limits.get(name)
        if limit is not None:
            held = dict(limit.in_use_by_host)
            held[hostname] = max(0, held.get(hostname, 0) + step)
            index.limits[name] = replace(limit, in_use_by_host=held)


@dataclass(frozen=True)
class Dispatch:
    """What one poll hands a worker, and the attempts it must stop to make room (preemption)."""

    assignments: list[Assignment] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)


class Scheduler:
    """The dispatch index of one controller, and the claim loop over it."""

    def __init__(self, store: Store, clock: Clock, settings: ControllerSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._index: _Index | None = None
        self._stale_since: float | None = None  # a change the index has not seen yet
        self._claimed: dict[int, _Claimed] = {}  # attempts claimed here, by id
        self._workers: dict[int, _Worker] = {}  # as of the last build (reused when unchanged)
        self._done_since_build: Counter[int] = Counter()  # block id -> successes seen
        # Unfinished jobs whose every task is settled (none runs, none waits): the controller
        # checks whether they are final; finishes seen by another controller end up here.
        self.settled: set[int] = set()

    # -- freshness ---------------------------------------------------------------------------

    def invalidate(self, *, at_once: bool = True) -> None:
        """Something changed in the store. `at_once`: rebuild before the next decision (a
        submission, an edited worker); else within `index_min_age_s` (a finish)."""
        if at_once:
            self._index = None
        elif self._stale_since is None:
            self._stale_since = self.clock.now()

    def rolled_back(self) -> None:
        """A transaction that claimed or finished attempts through this index was rolled back:
        forget what it counted and rebuild from the store."""
        self._claimed.clear()
        self.invalidate()

    def finished(self, attempt_id: int, status: str, duration_s: float | None = None) -> bool:
        """An attempt's finish was stored. A success that leaves its block unfinished only
        moves counts (and its `duration_s` into the block's mean run time), done here; anything
        else may change who is eligible (a requeued task, an error host, a block or job done
        that others wait for): the index is rebuilt.

        Returns False when the job is certainly not final (its block still has tasks to
        dispatch), so the caller need not read the job to find out."""
        claimed = self._claimed.pop(attempt_id, None)
        index = self._index
        if status != "succeeded" or claimed is None or index is None:
            self.invalidate()
            return True
        index.running_by_job[claimed.job_id] -= 1
        index.running_by_user[claimed.owner] -= 1
        _count_units(index, claimed.limits, claimed.hostname, -1)
        self._done_since_build[claimed.block_id] += 1
        for other in index.blocks.values():  # frame by frame: downstream tasks may be ready
            if other.snap.job_id == claimed.job_id and claimed.block_index in (
                other.snap.after_frames
            ):
                other.exhausted = False
        block = index.blocks.get(claimed.block_id)
        if block is not None and duration_s is not None:
            block.runtime_sum += duration_s
            block.runtime_n += 1
        if block is None or block.snap.n_done + self._done_since_build[claimed.block_id] >= (
            block.snap.task_count
        ):
            self.invalidate()
            return True
        return block.view.runnable <= 0 or block.exhausted

    def refresh_in(self) -> float:
        """Seconds until the index is due to be rebuilt (0: it is due now)."""
        index = self._index
        if index is None:
            return 0.0
        now = self.clock.now()
        due = min(index.built_at + self.settings.index_max_age_s, index.expires_at)
        if self._stale_since is not None:
            due = min(due, max(self._stale_since, index.built_at) + self.settings.index_min_age_s)
        return max(0.0, due - now)

    def pending_in(self) -> float | None:
        """Seconds until a change not yet seen is taken in, or an avoided host is forgiven
        (None: nothing is pending)."""
        index = self._index
        if index is None:
            return 0.0
        if self._stale_since is None and index.expires_at == math.inf:
            return None
        return self.refresh_in()

    def index(self) -> _Index:
        if self._index is None or self.refresh_in() <= 0:
            self._stale_since = None
            self._done_since_build.clear()
            self._index = self._build(self.clock.now())
        return self._index

    # -- building -------------------------------------------------------------------------------

    def _build(self, now: float) -> _Index:
        settings = self.settings
        errors_since = now - settings.sick_window_s
        snap = self.store.dispatch_snapshot(now=now, errors_since=errors_since)
        errors_by_block: dict[int, dict[int, list[float]]] = {}
        failures_by_worker: dict[int, list[tuple[int, float]]] = {}
        for e in snap.errors:
            errors_by_block.setdefault(e.block_id, {}).setdefault(e.worker_id, []).append(e.at)
            failures_by_worker.setdefault(e.worker_id, []).append((e.job_id, e.at))
        workers = {
            w.id: self._worker(w, failures_by_worker.get(w.id, []), now)
            for w in snap.workers.values()
        }
        self._workers = workers
        blocks, expires_at, includers = self._blocks(snap, errors_by_block, now)
        return _Index(
            built_at=now,
            blocks=blocks,
            workers=workers,
            running_by_job=_sum_by(snap.running, 0),
            running_by_user=_sum_by(snap.running, 1),
            limits={name: rec.state() for name, rec in snap.limits.items()},
            pool_includers=includers,
            online=sum(1 for w in workers.values() if w.snap.online and w.snap.enabled),
            expires_at=expires_at,
        )

    def _worker(self, w: SnapWorker, failures: list[tuple[int, float]], now: float) -> _Worker:
        known = self._workers.get(w.id)
        if known is not None and known.snap is w and not failures and known.sick_since is None:
            return known  # the same row as last time, and nothing that could make it sick
        policy = controller_policy(self.settings)
        sick = sick_since(failures, now, policy, w.sick_cleared_at)
        nimby = Nimby.stricter(w.nimby, w.local_nimby)
        unavailable = None
        if not w.enabled:
            unavailable = "the worker is disabled"
        elif nimby is not None:
            unavailable = f"the worker is {nimby.value} (NIMBY)"
        elif sick is not None:
            unavailable = "the worker is sick (it failed too many jobs); clear it to use it"
        return _Worker(
            snap=w,
            facts=worker_facts(w),
            engines=effective_engines(w.lanes, w.lane_engines, w.lane_overrides),
            unavailable=unavailable,
            nimby=nimby,
            sick_since=sick,
        )

    def _blocks(
        self,
        snap: DispatchSnapshot,
        errors_by_block: dict[int, dict[int, list[float]]],
        now: float,
    ) -> tuple[dict[int, _Block], float, Counter[str]]:
        done: dict[int, dict[int, bool]] = {}
        names: dict[int, dict[int, str]] = {}
        for b in snap.blocks:
            done.setdefault(b.job_id, {})[b.index] = b.done
            names.setdefault(b.job_id, {})[b.index] = b.name
        out: dict[int, _Block] = {}
        expires_at = math.inf
        includers_by_job: dict[int, frozenset[str]] = {}
        for b in snap.blocks:
            filters, bad = _filters(b.filters)
            waiting = (
                bad
                or snap.job_waiting.get(b.job_id)
                or blocks_waiting(b.after, done[b.job_id], names[b.job_id])
            )
            if b.n_running or (b.runnable and not b.paused and waiting is None):
                includers_by_job[b.job_id] = filters.included_pools
            if b.paused or b.runnable <= 0:
                continue
            policy = block_policy(
                self.settings, errors_to_avoid=b.errors_to_avoid, forgive_s=b.forgive_s
            )
            avoids = set()
            for worker_id, times in errors_by_block.get(b.block_id, {}).items():
                until = avoided_until(times, now, policy)
                if until is not None:
                    avoids.add(worker_id)
                    expires_at = min(expires_at, until)
            user = snap.users.get(b.owner)
            view = BlockView(
                job_id=b.job_id,
                block_id=b.block_id,
                owner=b.owner,
                job_priority=b.priority,
                submitted_at=b.created_at,
                block_index=b.index,
                user_priority=user.priority if user else 0,
                runs=b.engine or b.kind,
                filters=filters,
                capacity=b.capacity,
                limits=b.limits,
                max_running=b.max_running,
                max_running_per_host=b.max_running_per_host,
                user_max_running=user.max_running if user else None,
                waiting=waiting,
                avoids=frozenset(avoids),
                preempt=b.preempt,
                runnable=b.runnable,
            )
            out[b.block_id] = _Block(b, view, ClaimCandidate(b, view.user_max_running))
        includers = Counter(p for pools in includers_by_job.values() for p in pools)
        unsettled = {b.job_id for b in snap.blocks if b.n_running or b.runnable}
        self.settled |= {b.job_id for b in snap.blocks} - unsettled
        return out, expires_at, includers

    # -- dispatch -------------------------------------------------------------------------------

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
        index = self.index()
        worker = index.workers.get(worker_id)
        if worker is None:  # registered after the index was built
            self.invalidate()
            index = self.index()
            worker = index.workers.get(worker_id)
        if worker is None or worker.unavailable is not None:
            return Dispatch()
        now = self.clock.now()
        loads = lane_loads((h.lane, h.capacity, h.id) for h in held)
        used_lanes = [k for k in loads if isinstance(k, int)] + [*free_lanes, *ahead_lanes]
        total = worker_capacity(
            worker.snap.capacity, worker.snap.lanes, max(used_lanes, default=-1) + 1
        )
        here: Counter[int] = Counter(h.job_id for h in held)
        avoid_since = now - self.settings.retry_elsewhere_s if index.online > 1 else None
        out: list[Assignment] = []
        unserved: list[int] = []
        # A free lane gets a task now, and short tasks to hold ahead from the same block in the
        # same claim; lanes that are busy may still take short tasks to hold ahead.
        extra = Counter(ahead_lanes)
        holding = Counter(h.lane for h in held)  # a lane's attempts: one runs, the rest wait
        plan = [(lane, False, extra.pop(lane, 0)) for lane in free_lanes]
        plan += [(lane, True, n) for lane, n in extra.items()]
        while plan:
            lane, ahead, more = plan.pop(0)
            view = self._lane(worker, lane, free_capacity(total, loads, lane), here)
            claimed = self._claim_for(
                index,
                worker,
                view,
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
            here.update(a.job_id for a in got)
            if not ahead and more and len(got) == 1:  # the task was long: try short ones
                plan.append((lane, True, more))
        preempted = self._preempt(index, worker, unserved, held, loads, total, here)
        return Dispatch(out, preempted)

    @staticmethod
    def _lane(worker: _Worker, lane: int, capacity: int, here: Counter[int]) -> LaneView:
        return LaneView(
            worker_id=worker.snap.id,
            hostname=worker.snap.hostname,
            facts=worker.facts,
            lane=lane,
            engines=worker.engines.get(lane),
            free_capacity=capacity,
            running_by_job=here,
        )

    def _claim_for(
        self,
        index: _Index,
        worker: _Worker,
        lane: LaneView,
        *,
        ahead: bool,
        more: int,
        holding: int = 0,
        avoid_since: float | None,
    ) -> tuple[list[Assignment], int] | None:
        """The best block's task for the lane (and up to `more` of its short tasks to hold
        ahead), and the capacity each holds. `ahead`: short tasks only, `more` of them at
        least, topping up the `holding` tasks the lane holds ahead already (`core.ahead`)."""
        tried: set[int] = set()
        while True:
            pool = [
                b.view
                for b in index.blocks.values()
                if not b.exhausted
                and b.view.block_id not in tried
                and b.view.runnable > 0
                and (b.short or not ahead)
            ]
            ranked = rank(lane, pool, index.farm_view())
            if not ranked:
                return None
            block = index.blocks[ranked[0].block_id]
            tried.add(block.view.block_id)
            # Ahead: short tasks only, as many as cover a fraction of a second of the block's
            # mean run time when the worker asks for any (`core.ahead`); a free lane: one, and
            # those too if the block's tasks are short.
            held_ahead = tasks_ahead(more, block.mean_runtime_s, holding=holding)
            count = held_ahead if ahead else 1 + held_ahead
            outcome = self.store.claim(
                block.cand,
                worker_id=worker.snap.id,
                now=self.clock.now(),
                avoid_failed_since=avoid_since,
                lane=lane.lane,
                hostname=worker.snap.hostname,
                count=min(count, block.view.runnable),
            )
            got = outcome.assignments
            if got:
                if len(self._claimed) > 100_000:
                    self._claimed.clear()  # unknown finishes only cost a rebuild
                claimed = _Claimed(
                    block_id=block.view.block_id,
                    block_index=block.view.block_index,
                    job_id=block.view.job_id,
                    owner=block.view.owner,
                    hostname=worker.snap.hostname,
                    limits=block.view.limits,
                )
                for a in got:
                    self._claimed[a.attempt_id] = claimed
                self._note_claims(index, block, worker.snap.hostname, len(got))
                return got, block.view.capacity
            if outcome.refused is Refused.NO_TASK:
                # Requeued tasks this worker just failed may still suit other workers.
                if avoid_since is None or block.snap.n_queued <= 0:
                    block.exhausted = True
            else:
                self.invalidate(at_once=False)  # our counts were behind the store's

    @staticmethod
    def _note_claims(index: _Index, block: _Block, hostname: str, n: int) -> None:
        """`n` of the block's tasks were claimed (requeued ones first): count them running."""
        view = block.view
        index.running_by_job[view.job_id] += n
        index.running_by_user[view.owner] += n
        if block.snap.n_queued > 0:
            block.snap = replace(block.snap, n_queued=max(0, block.snap.n_queued - n))
            block.cand = ClaimCandidate(block.snap, view.user_max_running)
        block.view = replace(view, runnable=view.runnable - n)
        _count_units(index, view.limits, hostname, +n)

    def _preempt(
        self,
        index: _Index,
        worker: _Worker,
        free_lanes: Sequence[int],
        held: Sequence[HeldAttempt],
        loads: dict[int | tuple[str, int], int],
        total: int,
        here: Counter[int],
    ) -> list[int]:
        facts = worker.facts
        blocks = [b.view for b in index.blocks.values() if not b.exhausted]
        if not any(b.preempt and dedicated_rank(b.filters, facts) == 0 for b in blocks):
            return []
        busy = sorted({h.lane for h in held if h.lane is not None})
        if not busy:
            return []
        free = [
            self._lane(worker, lane, free_capacity(total, loads, lane), here) for lane in free_lanes
        ]
        busy_views = [
            self._lane(worker, lane, free_capacity(total, loads, lane), here) for lane in busy
        ]
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
        chosen = preemptions(free, busy_views, running, blocks, index.farm_view())
        if not chosen:
            return []
        return self.store.request_stop(chosen, "preempted")

    # -- what people see ----------------------------------------------------------------------

    def worker_state(self, worker_id: int) -> tuple[Nimby | None, float | None]:
        """(NIMBY state, sick since) of a worker as dispatch sees it."""
        worker = self.index().workers.get(worker_id)
        if worker is None:
            return None, None
        return worker.nimby, worker.sick_since

    def worker_enabled(self, worker_id: int) -> bool:
        worker = self.index().workers.get(worker_id)
        return worker is not None and worker.snap.enabled

    def local_nimby(self, worker_id: int) -> str | None:
        worker = self.index().workers.get(worker_id)
        return worker.snap.local_nimby if worker is not None else None


def _sum_by(counts: Mapping[tuple[int, str], int], part: int) -> Counter[Any]:
    out: Counter[Any] = Counter()
    for key, n in counts.items():
        out[key[part]] += n
    return out


def _filters(text: str) -> tuple[FilterSet, str | None]:
    """The parsed filters, or why the job runs nowhere: filters are refused at submission, so
    only a stored filter that this version no longer reads ends up here."""
    try:
        return parse_filters(text), None
    except InvalidInput as exc:
        return FilterSet(), f"its filters cannot be read: {exc.message}"
