"""The dispatch index: what may run where, kept in memory and rebuilt from the store.

The database stays the truth. The index is a snapshot (blocks of active jobs, workers, running
attempts, limits, user settings, host errors) turned into the pure views of `core.dispatch`, so
that a poll costs one ranking in memory and one claim transaction per task handed out. It is
rebuilt at once after a change that alters eligibility (a worker or limit edited), within
`index_min_age_s` after other changes (finishes), and at least every `index_max_age_s` (to see
what other controllers sharing one PostgreSQL did). A submission here only adds its job's
blocks (`add_jobs`). Between rebuilds, the claims made here and their finishes update its
counts; a block's last success here takes it out (`finished`) where that is all it changes.
Whatever the index believes, the claim re-checks caps, limits and the task atomically in the
store, so a stale index costs a wasted try, never a broken rule.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from thresher.controller.dispatch.views import (
    LiveFarmView,
    block_filters,
    block_policy,
    block_view,
    changed,
    controller_policy,
    snap_blocks_of,
    snapshot_failures,
    sum_by,
    waiting_on_failures,
    worker_facts,
)
from thresher.controller.settings import ControllerSettings
from thresher.core.ahead import is_short
from thresher.core.clock import Clock
from thresher.core.deps import blocks_waiting
from thresher.core.dispatch import BlockView, FarmView
from thresher.core.error_hosts import HostFailure, avoided_until, sick_since
from thresher.core.filters import WorkerFacts
from thresher.core.lanes import Nimby, effective_engines
from thresher.core.model import Assignment, JobRecord
from thresher.core.ordering import LimitState
from thresher.store.scheduling import UserRecord
from thresher.store.snapshot import SnapBlock, SnapWorker
from thresher.store.store import ClaimCandidate, Store


@dataclass
class IndexedBlock:
    """A block with tasks to dispatch: its snapshot record (with the requeued tasks claimed
    here since taken off), its view for ranking, and its claim candidate."""

    snap: SnapBlock
    view: BlockView
    cand: ClaimCandidate
    exhausted: bool = False  # the store had no task for us; set again by an upstream finish
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
class IndexedWorker:
    """A worker as dispatch sees it; `unavailable` says why it takes no work (or None)."""

    snap: SnapWorker
    facts: WorkerFacts
    engines: dict[int, frozenset[str] | None]
    unavailable: str | None
    nimby: Nimby | None
    sick_since: float | None


@dataclass
class IndexState:
    """The index as built at `built_at`, with the counts of what happened here since."""

    built_at: float
    blocks: dict[int, IndexedBlock]
    workers: dict[int, IndexedWorker]
    running_by_job: Counter[int]
    running_by_user: Counter[str]
    limits: dict[str, LimitState]
    pool_includers: Counter[str]
    online: int
    expires_at: float = math.inf  # when an avoided host is forgiven (the index must change)
    users: Mapping[str, UserRecord] = field(default_factory=dict)  # owners' settings
    # What a block's last success may change beyond the counts (`DispatchIndex.finished`
    # rebuilds for those): jobs with a block including pools (`pool:~p` counts them while they
    # run or wait), and blocks with host errors (a success elsewhere makes them count).
    pool_jobs: set[int] = field(default_factory=set)
    error_blocks: frozenset[int] = frozenset()

    def farm_view(self) -> FarmView:
        return FarmView(
            running_by_job=self.running_by_job,
            running_by_user=self.running_by_user,
            limits=self.limits,
            pool_includers=self.pool_includers,
        )

    @functools.cached_property
    def live_view(self) -> FarmView:
        """The farm view of the index as it is at each moment (read-only views of its counts,
        not copies), built once: for decisions made at once, in this thread, such as a claim's
        ranking (`farm_view` copies four mappings per call)."""
        return LiveFarmView(
            running_by_job=self.running_by_job,
            running_by_user=self.running_by_user,
            limits=self.limits,
            pool_includers=self.pool_includers,
        )

    def count_units(self, names: Sequence[str], hostname: str, step: int) -> None:
        """Units of limits taken (+n) or given back (-n) here since the snapshot."""
        for name in names:
            limit = self.limits.get(name)
            if limit is not None:
                held = dict(limit.in_use_by_host)
                held[hostname] = max(0, held.get(hostname, 0) + step)
                self.limits[name] = replace(limit, in_use_by_host=held)


@dataclass(frozen=True)
class _Claimed:
    """An attempt claimed here, remembered to follow its finish."""

    block_id: int
    block_index: int
    job_id: int
    owner: str
    hostname: str
    limits: tuple[str, ...]


class DispatchIndex:
    """The dispatch index of one controller: built from the store's snapshot, counted forward
    by the claims made here (`note_claims`) and their finishes (`finished`)."""

    def __init__(self, store: Store, clock: Clock, settings: ControllerSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._state: IndexState | None = None
        self._stale_since: float | None = None  # a change the index has not seen yet
        self._claimed: dict[int, _Claimed] = {}  # attempts claimed here, by id
        self._workers: dict[int, IndexedWorker] = {}  # as of the last build (reused if unchanged)
        self._done_since_build: Counter[int] = Counter()  # block id -> successes seen
        self._added: set[int] = set()  # jobs submitted since the build, to take in
        self._taken: set[int] = set()  # jobs taken in since the build (added again: nothing)
        # Jobs being submitted, their blocks as a read would give them (`know_job`).
        self._known: dict[int, tuple[SnapBlock, ...]] = {}
        # Unfinished jobs whose every task is settled (none runs, none waits), or with tasks
        # waiting on a failed block: the controller marks what can never run and checks whether
        # they are final; finishes seen by another controller (or tasks requeued in a block that
        # can never run) end up here.
        self.settled: set[int] = set()
        # Workers found sick by a build, (worker name, since when), for the sweeper's events.
        self.newly_sick: list[tuple[str, float]] = []

    # -- freshness ---------------------------------------------------------------------------

    def invalidate(self, *, at_once: bool = True) -> None:
        """Something changed in the store. `at_once`: rebuild before the next decision (a
        submission, an edited worker); else within `index_min_age_s` (a finish)."""
        if at_once:
            self._state = None
        elif self._stale_since is None:
            self._stale_since = self.clock.now()

    def add_jobs(self, job_ids: Sequence[int]) -> None:
        """Jobs were submitted (committed), and nothing else changed: their blocks join the
        index before the next decision, read alone, without a rebuild. New blocks change no
        other block's eligibility but through the pools their jobs include (`pool:~p`),
        counted as they join; everything else a rebuild would read about them (no attempt,
        no host error yet) is known."""
        if self._state is not None:
            self._added.update(i for i in job_ids if i not in self._taken)

    def know_job(self, job: JobRecord) -> None:
        """A job written in the open transaction, its record as it reads back: if it is then
        added (`add_jobs`), its blocks join the index from it, without a read. A job waiting
        on others is read (whether it waits is the store's to say)."""
        if job.spec.after or self._state is None:
            return
        blocks = snap_blocks_of(job)
        if blocks is not None:
            if len(self._known) > 1000:  # known and never added (the submission failed)
                self._known.clear()
            self._known[job.id] = blocks

    def rolled_back(self) -> None:
        """A transaction that claimed or finished attempts through this index was rolled back:
        forget what it counted and rebuild from the store."""
        self._claimed.clear()
        self._known.clear()
        self.invalidate()

    def refresh_in(self) -> float:
        """Seconds until the index is due to be rebuilt (0: it is due now)."""
        state = self._state
        if state is None:
            return 0.0
        due = min(state.built_at + self.settings.index_max_age_s, state.expires_at)
        if self._stale_since is not None:
            due = min(due, max(self._stale_since, state.built_at) + self.settings.index_min_age_s)
        return max(0.0, due - self.clock.now())

    def pending_in(self) -> float | None:
        """Seconds until a change not yet seen is taken in, or an avoided host is forgiven
        (None: nothing is pending)."""
        state = self._state
        if state is None or self._added:
            return 0.0
        if self._stale_since is None and state.expires_at == math.inf:
            return None
        return self.refresh_in()

    def current(self) -> IndexState:
        """The index, rebuilt first when it is due."""
        if self._state is None or self.refresh_in() <= 0:
            self._rebuild()
        elif self._added:
            self._take_in_added(self._state)
        assert self._state is not None
        return self._state

    def _rebuild(self) -> None:
        self._stale_since = None
        self._done_since_build.clear()
        self._added.clear()
        self._taken.clear()
        self._known.clear()
        self._state = self._build(self.clock.now())

    def _take_in_added(self, state: IndexState) -> None:
        """The blocks of the jobs submitted since the build join the index, as a rebuild
        would have them; a block naming a limit the index does not know (made by another
        controller since) makes it a rebuild."""
        indexed = {b.snap.job_id for b in state.blocks.values()}
        ids = sorted(self._added - indexed)
        self._added.clear()
        self._taken.update(ids)  # its blocks may leave when done: not read again after
        if not ids:
            return
        now = self.clock.now()
        unknown = [i for i in ids if i not in self._known]
        known = [b for i in ids if i in self._known for b in self._known.pop(i)]
        snap_blocks, waiting = self.store.snapshot.job_blocks(unknown) if unknown else ((), {})
        if known:  # in the order a read gives them
            snap_blocks = tuple(sorted([*snap_blocks, *known], key=lambda b: (b.job_id, b.index)))
        if any(name not in state.limits for b in snap_blocks for name in b.limits):
            self._rebuild()
            return
        blocks, expires_at, includers = self._index_blocks(
            snap_blocks, waiting, state.users, {}, now, state.pool_jobs
        )
        state.blocks.update(blocks)
        state.expires_at = min(state.expires_at, expires_at)
        state.pool_includers.update(includers)

    # -- counting forward -------------------------------------------------------------------

    def note_claims(
        self, state: IndexState, block: IndexedBlock, hostname: str, got: Sequence[Assignment]
    ) -> None:
        """Tasks of `block` (of `state`, the index they were chosen from) were claimed here,
        requeued ones first: count them running, and remember them to follow their finishes."""
        if len(self._claimed) > 100_000:
            self._claimed.clear()  # unknown finishes only cost a rebuild
        view = block.view
        claimed = _Claimed(
            block_id=view.block_id,
            block_index=view.block_index,
            job_id=view.job_id,
            owner=view.owner,
            hostname=hostname,
            limits=view.limits,
        )
        for a in got:
            self._claimed[a.attempt_id] = claimed
        n = len(got)
        state.running_by_job[view.job_id] += n
        state.running_by_user[view.owner] += n
        if block.snap.n_queued > 0:
            block.snap = changed(block.snap, n_queued=max(0, block.snap.n_queued - n))
            block.cand = ClaimCandidate(block.snap, view.user_max_running)
        block.view = changed(view, runnable=view.runnable - n)
        state.count_units(view.limits, hostname, +n)

    def finished(self, attempt_id: int, status: str, duration_s: float | None = None) -> bool:
        """An attempt's finish was stored. A success here only moves counts (and its
        `duration_s` into the block's mean run time), done here; its block's last one also
        takes the block out, unless others wait on it (`_block_done`). Anything else may change
        who is eligible (a requeued task, an error host, a block or job done that others wait
        for): the index is rebuilt.

        Returns False when the job is certainly not final (its block still has tasks to
        dispatch), so the caller need not read the job to find out."""
        claimed = self._claimed.pop(attempt_id, None)
        state = self._state
        if status != "succeeded" or claimed is None or state is None:
            self.invalidate()
            return True
        state.running_by_job[claimed.job_id] -= 1
        state.running_by_user[claimed.owner] -= 1
        state.count_units(claimed.limits, claimed.hostname, -1)
        self._done_since_build[claimed.block_id] += 1
        for other in state.blocks.values():  # frame by frame: downstream tasks may be ready
            if other.snap.job_id == claimed.job_id and claimed.block_index in (
                other.snap.after_frames
            ):
                other.exhausted = False
        block = state.blocks.get(claimed.block_id)
        if block is not None and duration_s is not None:
            block.runtime_sum += duration_s
            block.runtime_n += 1
        if block is None:
            self.invalidate()
            return True
        if block.snap.n_done + self._done_since_build[claimed.block_id] >= block.snap.task_count:
            if not _block_done(state, block):
                self.invalidate()
            return True
        return block.view.runnable <= 0 or block.exhausted

    # -- building -------------------------------------------------------------------------------

    def _build(self, now: float) -> IndexState:
        settings = self.settings
        snap = self.store.snapshot.read(now=now, errors_since=now - settings.sick_window_s)
        errors_by_block: dict[int, dict[int, list[float]]] = {}
        for e in snap.errors:
            errors_by_block.setdefault(e.block_id, {}).setdefault(e.worker_id, []).append(e.at)
        failures_by_worker = snapshot_failures(snap, now)
        workers = {
            w.id: self._worker(w, failures_by_worker.get(w.id, []), now)
            for w in snap.workers.values()
        }
        self._workers = workers
        pool_jobs: set[int] = set()
        blocks, expires_at, includers = self._index_blocks(
            snap.blocks, snap.job_waiting, snap.users, errors_by_block, now, pool_jobs
        )
        return IndexState(
            built_at=now,
            blocks=blocks,
            workers=workers,
            running_by_job=sum_by(snap.running, 0),
            running_by_user=sum_by(snap.running, 1),
            limits={name: rec.state() for name, rec in snap.limits.items()},
            pool_includers=includers,
            online=sum(1 for w in workers.values() if w.snap.online and w.snap.enabled),
            expires_at=expires_at,
            users=snap.users,
            pool_jobs=pool_jobs,
            error_blocks=frozenset(errors_by_block),
        )

    def _worker(self, w: SnapWorker, failures: list[HostFailure], now: float) -> IndexedWorker:
        known = self._workers.get(w.id)
        if known is not None and known.snap is w and not failures and known.sick_since is None:
            return known  # the same row as last time, and nothing that could make it sick
        sick = sick_since(failures, now, controller_policy(self.settings), w.sick_cleared_at)
        if sick is not None and (known is None or known.sick_since is None):
            self.newly_sick.append((w.name, sick))
        nimby = Nimby.stricter(w.nimby, w.local_nimby)
        unavailable = None
        if not w.enabled:
            unavailable = "the worker is disabled"
        elif nimby is not None:
            unavailable = f"the worker is {nimby.value} (NIMBY)"
        elif sick is not None:
            unavailable = (
                "the worker is sick (it failed jobs of several users that ran elsewhere);"
                " clear it to use it"
            )
        return IndexedWorker(
            snap=w,
            facts=worker_facts(w),
            engines=effective_engines(w.lanes, w.lane_engines, w.lane_overrides),
            unavailable=unavailable,
            nimby=nimby,
            sick_since=sick,
        )

    def _index_blocks(
        self,
        snap_blocks: Sequence[SnapBlock],
        job_waiting: Mapping[int, str],
        users: Mapping[str, UserRecord],
        errors_by_block: dict[int, dict[int, list[float]]],
        now: float,
        pool_jobs: set[int],
    ) -> tuple[dict[int, IndexedBlock], float, Counter[str]]:
        """The blocks with tasks to dispatch of these jobs (every block of each), when the
        first host they avoid is forgiven, and how many of the jobs include each pool (for
        `pool:~p`). Jobs with nothing left to run, or waiting on failures, join `settled`;
        those with a block including a pool, `pool_jobs`."""
        done: dict[int, dict[int, bool]] = {}
        names: dict[int, dict[int, str]] = {}
        for b in snap_blocks:
            done.setdefault(b.job_id, {})[b.index] = b.done
            names.setdefault(b.job_id, {})[b.index] = b.name
        out: dict[int, IndexedBlock] = {}
        expires_at = math.inf
        includers_by_job: dict[int, frozenset[str]] = {}
        for b in snap_blocks:
            filters, bad = block_filters(b.filters)
            if filters.included_pools:
                pool_jobs.add(b.job_id)
            waiting = (
                bad
                or job_waiting.get(b.job_id)
                or blocks_waiting(b.after, done[b.job_id], names[b.job_id])
            )
            if b.n_running or (b.runnable and not b.paused and waiting is None):
                includers_by_job[b.job_id] = filters.included_pools
            if b.paused or b.runnable <= 0:
                continue
            avoids, forgiven_at = self._avoids(b, errors_by_block.get(b.block_id, {}), now)
            expires_at = min(expires_at, forgiven_at)
            user = users.get(b.owner)
            view = block_view(b, user, filters=filters, waiting=waiting, avoids=avoids)
            out[b.block_id] = IndexedBlock(b, view, ClaimCandidate(b, view.user_max_running))
        includers = Counter(p for pools in includers_by_job.values() for p in pools)
        unsettled = {b.job_id for b in snap_blocks if b.n_running or b.runnable}
        self.settled |= {b.job_id for b in snap_blocks} - unsettled
        self.settled |= waiting_on_failures(snap_blocks)
        return out, expires_at, includers

    def _avoids(
        self, b: SnapBlock, errors: Mapping[int, list[float]], now: float
    ) -> tuple[frozenset[int], float]:
        """The workers the block avoids after their errors (worker id -> times), and when the
        first of them is forgiven."""
        policy = block_policy(
            self.settings, errors_to_avoid=b.errors_to_avoid, forgive_s=b.forgive_s
        )
        avoids = set()
        forgiven_at = math.inf
        for worker_id, times in errors.items():
            until = avoided_until(times, now, policy)
            if until is not None:
                avoids.add(worker_id)
                forgiven_at = min(forgiven_at, until)
        return frozenset(avoids), forgiven_at

    # -- what people see ----------------------------------------------------------------------

    def worker_state(self, worker_id: int) -> tuple[Nimby | None, float | None]:
        """(NIMBY state, sick since) of a worker as dispatch sees it."""
        worker = self.current().workers.get(worker_id)
        if worker is None:
            return None, None
        return worker.nimby, worker.sick_since

    def worker_enabled(self, worker_id: int) -> bool:
        worker = self.current().workers.get(worker_id)
        return worker is not None and worker.snap.enabled

    def local_nimby(self, worker_id: int) -> str | None:
        """The NIMBY state the worker last reported of its machine, as the index has it."""
        worker = self.current().workers.get(worker_id)
        return worker.snap.local_nimby if worker is not None else None


def _block_done(state: IndexState, block: IndexedBlock) -> bool:
    """The last task of `block` succeeded here (its counts already moved): take it out of the
    index as a rebuild would, and say True, where nothing else a rebuild reads can have changed
    with it; else False (rebuild). A block's end changes more only for blocks waiting on it
    whole (their dependencies), jobs waiting on its job (the job may have ended), the pools
    its job includes, and the sickness its host errors count towards; one with a minimum run
    time may not have ended (a success too short is a failure). Failures, retries and edits
    rebuild the index anyway, and so do other controllers' changes (their notifications)."""
    snap = block.snap
    if snap.job_id in state.pool_jobs or snap.block_id in state.error_blocks:
        return False
    if snap.min_runtime_s is not None:  # its success may have been stored as a failure
        return False
    for other in state.blocks.values():
        if snap.job_id in other.snap.job_after or (
            other.snap.job_id == snap.job_id and snap.index in other.snap.after
        ):
            return False
    del state.blocks[snap.block_id]
    return True
